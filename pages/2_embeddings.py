"""Embeddings: every character's learned vector in 2-D, replayed over training, with nearest neighbours."""

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import analysis, datasets, embedding_charts, layout, state

EMB_LATEST = "emb_latest_step"  # the newest snapshot's step at the last draw: a slider left there follows new ones

layout.setup_page("Character embeddings")
run = state.current_run()
if run.job is None:
    st.info("Train a model first (sidebar: **Start**): its embedding table C is shown here.")
    st.stop()

job = run.job
snap = job.snapshot()
snaps = snap.embeddings
labels = list(job.dataset.vocab.itos)
dim = snaps[-1].weights.shape[1]
st.caption(
    f"Run {run.job_label}: {len(labels):,} characters × {dim} dimensions. {len(snaps)} snapshots of C so far "
    "(taken evenly over the run)"
    + ("; while it trains, the slider follows the newest one unless you move it back." if snap.active else ".")
)

mode = "raw"
if dim > 2:
    mode = st.radio(
        "Projection",
        ["pca", "raw"],
        format_func={"pca": "PCA to 2-D", "raw": "Two raw dimensions"}.get,
        key=state.EMB_MODE,
        horizontal=True,
        help="PCA is fitted once on the latest snapshot and reused for every snapshot, so the replay is stable. "
        "The axis titles give the share of the shown snapshot's variance along each axis.",
    )
if mode == "raw" and dim >= 2:
    for key in (state.EMB_DIM_X, state.EMB_DIM_Y):
        if st.session_state.get(key, 0) >= dim:  # a new run with a smaller embedding
            del st.session_state[key]
    c1, c2 = st.columns(2)
    dx = c1.selectbox("x: dimension", range(dim), index=0, key=state.EMB_DIM_X)
    dy = c2.selectbox("y: dimension", range(dim), index=1, key=state.EMB_DIM_Y)

steps = [s.step for s in snaps]
ss = st.session_state
if ss.get(state.EMB_STEP) not in steps or ss.get(state.EMB_STEP) == ss.get(EMB_LATEST):
    # A new run, snapshots thinned out, or the slider was at the newest snapshot: show the newest one now
    # (a slider moved back to an earlier step stays there).
    ss[state.EMB_STEP] = steps[-1]
ss[EMB_LATEST] = steps[-1]


def follow(run_id: str, shown: int) -> None:
    """While the run trains: a full rerun when a newer snapshot exists and the slider is on the newest one."""
    run = state.run_by_id(run_id)
    if run is None or run.job is not job:
        return
    latest = job.snapshot().embeddings[-1].step
    if latest != shown and st.session_state.get(state.EMB_STEP) == shown:
        st.rerun()


if snap.active:
    st.fragment(follow, run_every=state.REFRESH_S)(run.run_id, steps[-1])
step = st.select_slider(
    "Snapshot (training step)",
    options=steps,
    key=state.EMB_STEP,
    format_func=lambda s: f"{s:,}",
    help="Drag to replay how the clusters form during training",
)
chosen = snaps[steps.index(step)]

if mode == "pca":
    basis = analysis.pca_basis(snaps[-1].weights)
    all_points = [basis.project(s.weights) for s in snaps]
    # The latest snapshot's directions, but this snapshot's share: at the init they hold far less of it.
    explained = basis.explained_of(chosen.weights)
    x_title = f"PC1 ({explained[0]:.0%} of variance)"
    y_title = f"PC2 ({explained[1]:.0%} of variance)"
elif dim >= 2:
    all_points = [s.weights[:, [dx, dy]] for s in snaps]
    x_title, y_title = f"dimension {dx}", f"dimension {dy}"
else:  # a 1-D embedding: spread along x only
    all_points = [np.column_stack([s.weights[:, 0], np.zeros(len(labels))]) for s in snaps]
    x_title, y_title = "dimension 0", "(1-D embedding)"
c1, c2 = st.columns(2)
zoom = c2.toggle(
    "Zoom into the crowd",
    key=state.EMB_ZOOM,
    help="The axes of the dense part of this snapshot (the lecture's blob of letters), where every label fits; "
    "the characters far from it are left outside the view.",
)
fixed = c1.toggle(
    "Same axes for every snapshot",
    value=True,
    key=state.EMB_FIXED_AXES,
    disabled=zoom,
    help="On: the replay does not rescale (early snapshots can be much wider). Off: zoom to this snapshot.",
)
points = all_points[steps.index(step)]
if zoom:
    x_range, y_range = analysis.crowd_ranges(points)
else:
    x_range, y_range = analysis.axis_ranges(all_points if fixed else [points])
search = st.text_input(
    "Find characters",
    key=state.EMB_SEARCH,
    max_chars=64,
    placeholder="e.g. aeiou",
    help="Type characters to ring them in red on the chart (and always label them)",
)
wanted = job.dataset.vocab.fold_case(search)
missing = sorted({ch for ch in wanted if ch not in labels})
if missing:
    st.caption(f"Not in this data's alphabet: {' '.join(missing)}")
counts = datasets.char_counts(job.dataset)
fig = embedding_charts.embedding_figure(
    points,
    labels,
    x_title=x_title,
    y_title=y_title,
    x_range=x_range,
    y_range=y_range,
    title=f"Character embeddings at step {step:,}",
    counts=counts,
    highlight=set(wanted) & set(labels),
)
st.plotly_chart(fig, key="embedding_chart", config={"displaylogo": False})
notes = []
if embedding_charts.crowded(labels):
    notes.append(
        f"{len(labels):,} characters: labelled are the {embedding_charts.TOP_LABELS} most frequent in the data and "
        "the ones you search for; hover a dot for its character."
    )
notes.append("Labels that would overlap are moved aside, with a short line to their dot.")
unlabelled, outside = fig.layout.meta["unlabelled"], fig.layout.meta["outside"]
if unlabelled:
    notes.append(
        f"No room near their dots for {len(unlabelled)}: {analysis.display_chars(unlabelled)}"
        + (" (hover a dot, or search for it)." if zoom else ": hover a dot, search for it, or **zoom into the crowd**.")
    )
if outside:
    notes.append(f"Outside this view: {analysis.display_chars(outside)}.")
if not embedding_charts.crowded(labels):
    notes.append("Accented vowels count as vowels.")
st.caption(" ".join(notes))

st.subheader("Nearest neighbours")
if st.session_state.get(state.EMB_CHAR) not in labels:
    st.session_state[state.EMB_CHAR] = labels[1] if len(labels) > 1 else labels[0]  # a new run with another vocabulary
c1, c2 = st.columns([1, 3])
char = c1.selectbox("Character", labels, format_func=analysis.display_char, key=state.EMB_CHAR)
k = c1.number_input("How many neighbours", 1, len(labels) - 1, min(5, len(labels) - 1), key=state.EMB_K)
nn = analysis.nearest_neighbours(chosen.weights, labels, char, k)
c2.dataframe(
    pd.DataFrame(
        {"character": [analysis.display_char(c) for c, _ in nn], "cosine similarity": [s for _, s in nn]}
    ).style.format({"cosine similarity": "{:.3f}"}),
    hide_index=True,
)
c2.caption(f"By cosine similarity of the full {dim}-dimensional vectors at step {step:,} (not the 2-D picture).")
