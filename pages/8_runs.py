"""Runs: every run this browser started, across restarts (the run store): open, continue, download, rename, delete."""

import time

import streamlit as st

from dashboard import layout

layout.setup_page("Runs")

from dashboard import actions, board_table, run_table, state  # noqa: E402
from mlp_core.board import NAME_MAX, board_name  # noqa: E402
from mlp_core.store import StoreError  # noqa: E402

ACTION_ERRORS = (StoreError, PermissionError, ValueError, RuntimeError, OSError)
RUNS_PER_PAGE = 100

st.caption(
    "Every run you started in this browser, kept in the run store "
    f"(`{state.store().uri}`), so a restart of the server loses nothing. Someone with a run's link can watch it; "
    "only you see it here."
)
# The newest runs first, a page at a time: the store answers in proportion to the runs it sends (1,000 runs of
# one browser took ~2 s to read, bench/bench_store.py), and the newest are the ones a user comes back for.
limit = st.session_state.setdefault("runs_limit", RUNS_PER_PAGE)
try:
    records = state.my_runs(limit + 1)
except StoreError as exc:
    st.error(f"The run store cannot be read: {exc}")
    st.stop()
if not records:
    st.info("No runs yet: press **Start** in the sidebar. Every run you start appears here and survives restarts.")
    st.stop()

more = len(records) > limit
records = records[:limit]
frame = run_table.runs_frame(records)
selection = st.dataframe(
    frame,
    hide_index=True,
    key="runs_page_table",
    on_select="rerun",
    selection_mode="single-row",
    column_config={
        "best dev": st.column_config.NumberColumn(format="%.4f"),
        "train/dev gap": st.column_config.NumberColumn(format="%+.4f", help="dev − train: above ~0.05, overfitting"),
        "started": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
        "step": st.column_config.NumberColumn(format="%d"),
        "run id": st.column_config.TextColumn(help="The run's id in MLflow (`python -m mlp_core runs`)"),
    },
)
if more:
    st.button(
        f"Show {RUNS_PER_PAGE} more (older) runs",
        key="runs_more",
        on_click=lambda: st.session_state.update(runs_limit=limit + RUNS_PER_PAGE),
    )
st.caption(
    f"{'The newest ' if more else ''}{len(records):,} run{'s' if len(records) != 1 else ''}. "
    "Click a column's header to sort; select a row (or "
    "pick the run below) for what you can do with it. "
    "Interrupted: its process ended without it (a restart, a crash); parked: set aside while paused to free its "
    "slot for others. Resume goes on from its last checkpoint."
)
# The run to act on: a row clicked in the table, or picked here (the box follows the table's selection).
by_id = {r.run_id: r for r in records}
rows = selection.selection.rows if selection is not None else []
clicked = records[rows[0]].run_id if rows and rows[0] < len(records) else None
if clicked is not None and st.session_state.get("runs_clicked") != clicked:
    st.session_state["runs_pick"] = st.session_state["runs_clicked"] = clicked
if st.session_state.get("runs_pick") not in by_id:
    st.session_state["runs_pick"] = records[0].run_id
picked = st.selectbox(
    "Run",
    list(by_id),
    key="runs_pick",
    format_func=lambda i: (
        f"{by_id[i].name} · {by_id[i].status} · step {by_id[i].step:,} · "
        f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(by_id[i].start_time))}"
    ),
)
record = by_id[picked]
outcome = st.session_state.pop("runs_outcome", None)
if outcome is not None:
    (st.success if outcome[0] == "ok" else st.error)(outcome[1])


def _act(what: str, store_run_id: str) -> None:
    """A button's callback: every action checks that this browser owns the run first (state.my_run)."""
    session = state.current_run()
    try:
        rec = state.my_run(store_run_id)
        if what in ("open", "continue") and not state.drives(session):
            session = state.own_new_run()  # watching someone's run (a shared link): open yours beside it, not in it
        busy = session.job is not None and session.job.snapshot().active
        if what in ("open", "continue") and busy and session.job.snapshot().run_id != rec.run_id:
            raise ValueError("your current run is training: pause or stop it first (it stays in this list)")
        if what == "open":
            actions.driver(session).open_record(rec)
            message = f"Opened **{rec.name}**: it is now the current run on every page."
        elif what == "continue":
            driver = actions.driver(session)
            driver.open_record(rec)
            if rec.resumable:
                place = driver.request_resume()  # at the cap it waits in the queue (see the sidebar)
                message = f"**{rec.name}** goes on from step {rec.step:,}" + (
                    f" as soon as a slot frees (queued: position {place})." if place else "."
                )
            else:
                driver.continue_job("best")
                message = f"A new run goes on from **{rec.name}**'s best-dev weights; it is the current run."
        elif what == "rename":
            name = actions.rename_stored_run(rec.run_id, st.session_state.get(f"runs_new_name_{rec.run_id}", ""))
            message = f"Renamed to **{name}**."
        elif what == "publish":
            name = board_name(st.session_state.get(f"runs_board_name_{rec.run_id}", ""))
            state.store().publish(rec.run_id, name)
            board_table.changed()
            message = f"On the class board as **{name}**."
        elif what == "unpublish":
            state.store().unpublish(rec.run_id)
            board_table.changed()
            message = f"**{rec.name}** is no longer on the class board."
        elif what == "delete":
            if session.job is not None and session.job.snapshot().run_id == rec.run_id and session.job.live:
                raise ValueError("this run is training: stop it before deleting it")
            state.store().delete(rec.run_id)
            message = f"Deleted **{rec.name}**."
        else:
            return
        st.session_state["runs_outcome"] = ("ok", message)
    except ACTION_ERRORS as exc:
        st.session_state["runs_outcome"] = ("error", str(exc))


def _checkpoint(store_run_id: str, which: str) -> bytes:
    """The selected run's weights (current or best-dev) as a plain safetensors checkpoint."""
    return run_table.checkpoint_of(state.my_run(store_run_id), state.store(), which)


st.subheader(record.name)
st.markdown(
    f"**{record.status}** at step {record.step:,} · dataset {record.dataset or '—'} · "
    f"best dev **{state.fmt_loss(record.best_dev)}** · run id `{record.run_id}`"
)
c = st.columns(4)
c[0].button(
    "Open",
    key="runs_open",
    on_click=_act,
    args=("open", record.run_id),
    help="Make it the current run on every page (Train, Sample, Embeddings, …)",
    width="stretch",
)
c[1].button(
    "Continue training" if not record.resumable else "Resume",
    key="runs_continue",
    on_click=_act,
    args=("continue", record.run_id),
    type="primary",
    help="Interrupted: go on from its last checkpoint, in the same run. Ended: a new run from its best-dev weights",
    width="stretch",
)
safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in record.name)[:60] or "run"
# Bytes made now, for the selected run only: a callable `data` builds the file on click, but Streamlit keeps
# such a file in no session, and a later rerun can delete it before a slow browser fetches it.
try:
    current, best = _checkpoint(record.run_id, "current"), _checkpoint(record.run_id, "best")
except ACTION_ERRORS as exc:  # a damaged checkpoint is a ValueError (CheckpointError)
    current = best = b""
    st.warning(f"This run's weights cannot be downloaded: {exc}")
c[2].download_button(
    "Download weights",
    data=current,
    disabled=not current,
    file_name=f"{safe}_step{record.step}.safetensors",
    mime="application/octet-stream",
    key="runs_download",
    on_click="ignore",
    help="The run's latest weights as a checkpoint (load it on Checkpoints, or `sample --checkpoint`)",
    width="stretch",
)
c[3].download_button(
    "Download best-dev weights",
    data=best,
    disabled=not best,
    file_name=f"{safe}_best.safetensors",
    mime="application/octet-stream",
    key="runs_download_best",
    on_click="ignore",
    width="stretch",
)
r1, r2 = st.columns([3, 1], vertical_alignment="bottom")
r1.text_input("New name", value=record.name, key=f"runs_new_name_{record.run_id}", max_chars=250)
r2.button("Rename", key="runs_rename", on_click=_act, args=("rename", record.run_id), width="stretch")
with st.expander("Class board", expanded=bool(record.board_name)):
    if record.board_name:
        st.markdown(f"On the class board as **{record.board_name}** (best dev {state.fmt_loss(record.best_dev)}).")
        st.button("Take it off the class board", key="runs_unpublish", on_click=_act, args=("unpublish", record.run_id))
    else:
        b1, b2 = st.columns([3, 1], vertical_alignment="bottom")
        b1.text_input(
            "Name on the board",
            key=f"runs_board_name_{record.run_id}",
            max_chars=NAME_MAX,
            placeholder="e.g. Ada's tiny MLP",
            help="What the class sees beside this run's best dev loss: letters, digits, spaces, . - ' "
            "(nothing else about you is shown)",
        )
        b2.button(
            "Publish to the class board",
            key="runs_publish",
            on_click=_act,
            args=("publish", record.run_id),
            width="stretch",
        )
with st.expander("Delete this run"):
    sure = st.checkbox(f"Yes, delete **{record.name}** and its checkpoints", key="runs_delete_sure")
    st.button(
        "Delete",
        key="runs_delete",
        on_click=_act,
        args=("delete", record.run_id),
        disabled=not sure,
        type="primary",
    )
