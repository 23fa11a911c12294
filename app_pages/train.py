"""Train: live loss curves of this session's run, refreshed while it trains in the background."""

import streamlit as st

from dashboard import charts, state

st.title("Train")
run = state.current_run()
if run.job is None:
    st.info(
        "Choose a dataset and hyperparameters in the sidebar (or a preset), then press **Start**. "
        "The loss curves appear here and update live while the model trains in the background."
    )
    st.stop()

st.session_state.setdefault(state.SMOOTHING, 2)
smoothing = st.slider(
    "Smoothing (centred window, % of the plotted points)",
    0,
    20,
    key=state.SMOOTHING,
    help="A centred moving average of log10(loss): no lag and no start-up bias. 0 shows the raw bucket means.",
)


def live_view(run_id: str, live: bool, smoothing: float) -> None:
    """Metrics and the loss chart; re-runs every REFRESH_S seconds while the job is active."""
    run = state.run_by_id(run_id)
    if run is None or run.job is None:
        return
    job = run.job
    snap = job.snapshot()
    last_eval = snap.evals[-1] if snap.evals else None
    c = st.columns(5)
    c[0].metric(f"step (of {snap.total_steps:,})", f"{snap.step:,}")
    c[1].metric("batch loss", state.fmt_loss(snap.last_loss))
    c[2].metric("dev loss", state.fmt_loss(last_eval.dev_loss) if last_eval else "—")
    c[3].metric(
        "best dev", state.fmt_loss(snap.best_dev), f"step {snap.best_step:,}" if snap.best_step else None, "off"
    )
    c[4].metric("steps/s", f"{snap.steps_per_sec:,.0f}")
    if snap.message and snap.status in ("diverged", "error"):
        st.error(snap.message)
    fig = charts.train_chart(
        snap.train_history,
        snap.evals,
        snap.best_step,
        snap.best_dev,
        smoothing=smoothing,
        vocab_size=job.dataset.vocab.size,
        title=f"Training loss of run {run.job_label} ({run.dataset_label})",
    )
    st.plotly_chart(fig, key="train_chart", config={"displaylogo": False})
    st.caption(
        f"Band: min–max of the minibatch losses in each plotted point ({snap.train_history.count.sum():,.0f} steps "
        f"in {len(snap.train_history):,} buckets). Dev loss on the whole dev split every "
        f"{snap.config.eval_every:,} steps. Dashed lines: uniform guessing, the lecture's bigram and its MLP."
    )
    if live and not snap.active:
        st.rerun()  # the job ended: one full rerun stops the refreshing and updates the other views


active = run.job.snapshot().active
st.fragment(live_view, run_every=state.REFRESH_S if active else None)(run.run_id, active, smoothing / 100)
