"""Sample: names from the current weights (also mid-training) or a checkpoint; per-character probabilities."""

import pandas as pd
import streamlit as st

from dashboard import analysis, charts, models, state
from mlp_core.data import DatasetError
from mlp_core.sampling import next_char_distribution, sample_names, score_word

st.title("Sample names")
run = state.current_run()
sources = models.available(run)
if not sources:
    st.info("Train a model (sidebar: **Start**) or upload a checkpoint on the Checkpoints page.")
    st.stop()

if st.session_state.get(state.SAMPLE_SOURCE) not in sources:
    st.session_state[state.SAMPLE_SOURCE] = sources[0]
source = st.radio(
    "Model",
    sources,
    format_func={models.CURRENT: "The current run", models.CHECKPOINT: "The uploaded checkpoint"}.get,
    key=state.SAMPLE_SOURCE,
    horizontal=True,
)
choice = models.choose(run, source)
st.caption(f"Using {choice.caption}.")

c = st.columns(4)
n = c[0].number_input("How many names", min_value=1, max_value=500, value=20, key=state.SAMPLE_N)
temperature = c[1].slider(
    "Temperature",
    0.05,
    3.0,
    1.0,
    0.05,
    key=state.SAMPLE_TEMPERATURE,
    help="Below 1: safer, more common names; above 1: more adventurous (and more misspelled)",
)
seed = c[2].number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, key=state.SAMPLE_SEED)
prefix = c[3].text_input("Starts with (optional)", key=state.SAMPLE_PREFIX, max_chars=16)

if st.button("Sample", key="btn_sample", type="primary"):
    try:
        samples = sample_names(
            choice.model,
            choice.vocab,
            int(n),
            temperature=temperature,
            seed=int(seed),
            prefix=prefix,
            train_words=choice.train_words,
        )
        st.session_state[state.SAMPLES] = (choice.caption, samples)
    except (DatasetError, ValueError) as exc:
        st.error(str(exc))

if state.SAMPLES in st.session_state:
    caption, samples = st.session_state[state.SAMPLES]
    known = [s for s in samples if s.is_new is not None]
    if known:
        new = sum(s.is_new for s in known)
        st.metric("new names (not in the training set)", f"{new} / {len(known)} ({new / len(known):.0%})")
    marks = {True: "new", False: "in training set", None: "?"}
    table = pd.DataFrame(
        {
            "name": [s.name + ("…" if s.truncated else "") for s in samples],
            "new?": [marks[s.is_new] for s in samples],
            "NLL (nats)": [s.nll for s in samples],
        }
    )
    st.dataframe(
        table,
        hide_index=True,
        key="samples_table",
        height=min(35 * (len(table) + 1) + 3, 740),  # every row of a usual sample, no inner scrolling
        column_config={"NLL (nats)": st.column_config.NumberColumn(format="%.2f")},
    )
    st.caption(
        f"From {caption}. NLL: the name's negative log-likelihood under the model (lower = more typical); "
        "'?' = the training words are unknown (a checkpoint with another vocabulary); '…' = cut at 32 characters."
    )

st.subheader("How likely is a name?")
word = st.text_input("Type a name", value="emma", key=state.SCORE_WORD, max_chars=32)
if word:
    try:
        score = score_word(choice.model, choice.vocab, word)
        st.plotly_chart(
            charts.char_probs_figure(
                word,
                list(score.targets),
                list(score.probs),
                title=f"'{word}': NLL {score.nll:.2f} nats, {score.mean_nll:.2f} per character",
            ),
            key="score_chart",
            config={"displaylogo": False},
        )
    except (DatasetError, ValueError) as exc:
        st.error(str(exc))

st.subheader("What comes next?")
context = st.text_input("Context (the start of a name; empty = the first letter)", value="", key=state.NEXT_CONTEXT)
try:
    dist = next_char_distribution(choice.model, choice.vocab, context, temperature=temperature)
    st.plotly_chart(charts.next_char_figure(dist, context), key="next_char_chart", config={"displaylogo": False})
    top = ", ".join(f"{analysis.display_char(ch)} {p:.2f}" for ch, p in sorted(dist, key=lambda cp: -cp[1])[:5])
    st.caption(f"Most likely: {top}. The model sees only the last {choice.model.block_size} characters.")
except (DatasetError, ValueError) as exc:
    st.error(str(exc))
