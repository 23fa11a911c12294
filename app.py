"""makemore MLP explorer: the Streamlit dashboard. Run it with `streamlit run app.py`.

This file is the first page, Train: live loss curves of this session's run, refreshed while it trains in the
background. The other pages are in pages/; dashboard/layout.py sets up every page (sidebar, run, URL).
"""

import streamlit as st

from dashboard import layout

# The heading first, the heavy imports (torch, pandas, plotly) after it: on a fresh server the browser
# shows the page while they load (bench/bench_cold_start.py).
layout.setup_page("Train")

from dashboard import advice, charts, lecture_panel, sidebar, state  # noqa: E402
from mlp_core.baselines import baselines_for  # noqa: E402

LR_REFRESH_S = 5.0  # the lr schedule's "now" marker moves this often while the job trains

run = state.current_run()
if run.job is None:
    st.info(
        "Choose a dataset and hyperparameters in the sidebar (or a preset), then press **Start**. "
        "The loss curves appear here and update live while the model trains in the background."
    )
    settings = state.current_settings()
    # What Start will train with, drawn before it: this is also the page's first Plotly chart, so the browser
    # loads plotly.js (1-3 s on a 2-core machine) while the user reads, not after the click, when the first
    # dev point would wait for it (bench/bench_latency.py).
    st.plotly_chart(
        charts.lr_schedule_figure(settings.config, title="Learning-rate schedule these settings will train with"),
        key="lr_schedule_preview",
        config={"displaylogo": False},
    )
    lecture_panel.render(run, settings)
    st.stop()

st.session_state.setdefault(state.SMOOTHING, 2)
st.session_state.setdefault(state.SKIP_SPIKE, True)
c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
smoothing = c1.slider(
    "Smoothing (centred window, % of the plotted points)",
    0,
    20,
    key=state.SMOOTHING,
    help="A centred moving average of log10(loss): no lag and no start-up bias. 0 shows the raw bucket means.",
)
skip_spike = c2.toggle(
    "Start the view after the initial spike",
    key=state.SKIP_SPIKE,
    help="The lecture's init starts near loss 20: showing it squeezes the interesting 2.0–2.6 into a sliver. "
    "Off: the whole run from step 0.",
)


def live_view(run_id: str, live: bool, smoothing: float, skip_spike: bool) -> None:
    """Metrics and the loss chart from one snapshot; re-runs every REFRESH_S seconds while the job is active."""
    run = state.run_by_id(run_id)
    if run is None or run.job is None:
        return
    job = run.job
    snap = state.live_snapshot(job, "page")  # the sidebar's status shows this same snapshot
    last_eval = snap.evals[-1] if snap.evals else None
    c = st.columns(5)
    c[0].metric(f"step (of {snap.total_steps:,})", f"{snap.step:,}")
    c[1].metric("batch loss", state.fmt_loss(snap.last_loss))
    final_dev = (snap.final_losses or {}).get("dev_loss")  # a loaded model's only dev loss
    c[2].metric("dev loss", state.fmt_loss(last_eval.dev_loss if last_eval else final_dev))
    best_at = f"at step {snap.best_step:,}" if snap.best_step is not None else None
    c[3].metric("best dev", state.fmt_loss(snap.best_dev), best_at, "off", delta_arrow="off")
    c[4].metric("steps/s", f"{snap.steps_per_sec:,.0f}" if snap.steps_per_sec else "—")
    alert = snap.alert
    if alert and snap.active:
        st.warning(f"{alert[:1].upper()}{alert[1:]}.", icon=":material/warning:")
        if state.drives(run):
            st.button("Stop this run", key="btn_alert_stop", on_click=sidebar.act, args=("stop",))
    if snap.message and snap.status in ("diverged", "error"):
        st.error(snap.message)
    elif snap.message and snap.status in ("stopped", "finished"):
        st.info(snap.message)
    if advice.is_loaded(snap):
        st.info(advice.loaded_story(snap, run.dataset_label))
    elif len(snap.train_history) == 0:
        # No step has finished yet (a big model's first steps can take minutes): no empty axes meanwhile.
        st.info(f"**{snap.status}**: the first steps are under way; the loss curve appears after the first of them.")
    elif state.curves_wait(job, snap):
        st.container(height=charts.HEIGHT, border=False)  # the chart's place, kept: its curve comes in 0.25 s
    else:
        baselines = baselines_for(job.dataset)
        fig = charts.train_chart(
            snap.train_history,
            snap.evals,
            snap.best_step,
            snap.best_dev,
            smoothing=smoothing,
            references=charts.reference_losses(baselines),
            title=f"Training loss of run {run.job_label} ({run.dataset_label})",
            skip_spike=skip_spike,
            uniform=baselines.uniform_loss,
        )
        st.plotly_chart(fig, key="train_chart", config={"displaylogo": False})
        lecture = " and the lecture's MLP (2.17, only on its data and split)" if baselines.lecture_dev_loss else ""
        st.caption(
            f"Band: min–max of the minibatch losses in each plotted point ({snap.train_history.count.sum():,.0f} "
            f"steps in {len(snap.train_history):,} buckets). Dev loss on the whole dev split every "
            f"{snap.config.eval_every:,} steps. Dashed lines: uniform guessing, a bigram model of this "
            f"data{lecture}."
        )
    if live and not snap.active:
        st.rerun()  # the job ended: one full rerun stops the refreshing and updates the other views


def lr_view(run_id: str) -> None:
    """The lr schedule with the current step marked: a fragment of its own, redrawn every LR_REFRESH_S while the
    job trains. Its curve never changes and its marker moves slowly: resent with the loss chart every second it
    was ~3 KB and a figure build per refresh for nothing (bench/bench_watched.py)."""
    run = state.run_by_id(run_id)
    if run is None or run.job is None:
        return
    job = run.job
    snap = job.snapshot()
    # Beside the loss curve, not before it (no chart while nothing has trained); not while the run is young either:
    # its first page run must draw fast (state.curves_wait), and the end of youth redraws the page.
    if len(snap.train_history) and not state.young(job, snap):
        st.plotly_chart(
            charts.lr_schedule_figure(snap.config, snap.step), key="lr_schedule_chart", config={"displaylogo": False}
        )


active = run.job.snapshot().active
every = state.refresh_every(run.job)
st.fragment(live_view, run_every=every)(run.run_id, active, smoothing / 100, skip_spike)
st.fragment(lr_view, run_every=every and max(every, LR_REFRESH_S))(run.run_id)
lecture_panel.render(run, state.current_settings())
