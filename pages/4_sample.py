"""Sample: names from the current weights (also mid-training) or a checkpoint; per-character probabilities."""

import pandas as pd
import streamlit as st

from dashboard import analysis, layout, models, sample_charts, state
from mlp_core.data import DatasetError
from mlp_core.sampling import next_char_distribution, novelty, sample_names, score_word

layout.setup_page("Sample names")
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
    format_func=models.LABELS.get,
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


def folded(text: str) -> str:
    """text in the model's alphabet: 'Anna' on lowercase data is 'anna', and the page says so."""
    fitted = choice.vocab.fold_case(text)
    if fitted != text:
        st.caption(f"'{text}' is read as '{fitted}': the data does not have those letters in that case (case folded).")
    return fitted


prefix = folded(prefix)
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
        st.session_state[state.SAMPLES] = (choice.caption, samples, choice.held_out_words)
    except (DatasetError, ValueError) as exc:
        st.error(str(exc))

if state.SAMPLES in st.session_state:
    caption, samples, held_out = st.session_state[state.SAMPLES]
    held_out = held_out or frozenset()
    counted = novelty(samples, held_out)
    if counted.samples:
        # By distinct name: at a low temperature one name drawn 17 times is one new name, not 17.
        n_new, n_distinct = counted.distinct_new, counted.distinct
        st.metric("distinct new names (not in the training set)", f"{n_new} / {n_distinct} ({n_new / n_distinct:.0%})")
        repeats = ""
        if counted.repeats:
            name, times = counted.most_common
            repeats = (
                f" {counted.samples} samples gave {n_distinct} distinct names: **{counted.repeats} repeat"
                f"{'s' if counted.repeats != 1 else ''}** ('{name}' ×{times}); a low temperature makes the model "
                "pick its favourite name again and again."
            )
        held = (
            f"Of the {n_new} new names, {counted.new_held_out} are real names from the held-out dev/test words "
            "(the model never saw them, yet made them up) and "
            f"{n_new - counted.new_held_out} are in none of the data's words."
            if n_new and held_out
            else ""
        )
        if held or repeats:
            st.caption(held + repeats)

    def mark(s) -> str:
        if s.is_new is None:
            return "?"
        if not s.is_new:
            return "in training set"
        return "new (a real held-out name)" if s.name in held_out else "new"

    table = pd.DataFrame(
        {
            "name": [s.name + ("…" if s.truncated else "") for s in samples],
            "new?": [mark(s) for s in samples],
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
if st.session_state.get(state.SCORE_WORD, "emma") == "emma" and not set("emma") <= set(choice.vocab.chars):
    # The lecture's example means nothing in another alphabet: start from one of the data's own names.
    st.session_state[state.SCORE_WORD] = min(choice.held_out_words or choice.train_words or {""})
word = st.text_input("Type a name", value="emma", key=state.SCORE_WORD, max_chars=32)


def case_hint(word: str) -> str:
    """When the data starts its words in the other case than this word does, say so ("" otherwise)."""
    words = choice.train_words or choice.held_out_words
    first, other = word[:1], word[:1].swapcase()
    if not words or len(other) != 1 or other == first or other not in choice.vocab.stoi:
        return ""
    cased = [w[0] for w in words if w[:1].lower() != w[:1].upper()]  # words that start with a cased letter
    same = sum(c.isupper() == first.isupper() for c in cased)
    if len(cased) - same < 10 * max(same, 1):
        return ""
    theirs, yours = ("an upper-case", "a lower-case") if first.islower() else ("a lower-case", "an upper-case")
    fixed = other + word[1:]
    return (
        f"Case matters to this model: {len(cased) - same:,} of the data's {len(cased):,} words start with {theirs} "
        f"letter and {same:,} with {yours} one, so '{first}' as a first letter looks very unlikely to it "
        f"(p('{first}') ≈ 0). Try '{fixed}', or lower-case the words at upload (sidebar: Dataset) and train again."
    )


if word:
    word = folded(word)
    if hint := case_hint(word):
        st.warning(hint, icon=":material/match_case:")
    try:
        score = score_word(choice.model, choice.vocab, word)
        st.plotly_chart(
            sample_charts.char_probs_figure(
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
c1, c2 = st.columns([3, 2])
context = c1.text_input("Context (the start of a name; empty = the first letter)", value="", key=state.NEXT_CONTEXT)
use_t = c2.toggle(
    f"Apply the sampling temperature (T = {temperature:g})",
    value=False,
    key=state.NEXT_USE_TEMPERATURE,
    help="Off: the model's own distribution (T = 1). On: the distribution the sampler above draws from.",
)
next_t = temperature if use_t else 1.0
context = folded(context)
try:
    dist = next_char_distribution(choice.model, choice.vocab, context, temperature=next_t)
    st.plotly_chart(
        sample_charts.next_char_figure(dist, context, temperature=next_t),
        key="next_char_chart",
        config={"displaylogo": False},
    )
    top = ", ".join(f"{analysis.display_char(ch)} {p:.2f}" for ch, p in sorted(dist, key=lambda cp: -cp[1])[:5])
    heat = "the model's own distribution (T = 1)" if next_t == 1 else f"at the sampling temperature T = {next_t:g}"
    st.caption(f"Most likely: {top}; {heat}. The model sees only the last {choice.model.block_size} characters.")
except (DatasetError, ValueError) as exc:
    st.error(str(exc))
