"""LR sweep: the lecture's learning-rate range test, run in the background, with a suggested learning rate."""

import streamlit as st

from dashboard import actions, charts, datasets, layout, state
from mlp_core.data import DatasetError
from mlp_core.job import ERROR, FINISHED, RUNNING, STOPPED
from mlp_core.lr_sweep import at_left_edge, default_range, lr_range_test
from mlp_core.registry import CapacityError
from mlp_core.tasks import BackgroundTask, in_worker

layout.setup_page("Learning-rate range test")
st.markdown(
    "From a fresh init, take one minibatch step per candidate learning rate, with the rate growing "
    "exponentially (the lecture: 1,000 steps from 10⁻³ to 10⁰), and record each step's loss. The loss "
    "falls, flattens, then blows up once the rate is too large; a good rate sits at the bottom of the valley. "
    "It uses the sidebar's dataset, model, optimizer and batch size."
)
run = state.current_run()
settings = state.current_settings()

SWEEP_DEFAULT = "sweep_default_range"  # the (from, to) last filled in for the optimizer: replaced when it changes

# The range follows the optimizer (AdamW's valley is ~100x lower than SGD's) until the user types their own.
ss = st.session_state
wanted = default_range(settings.config.optimizer)
if ss.get(SWEEP_DEFAULT) != wanted and (ss.get(state.SWEEP_FROM), ss.get(state.SWEEP_TO)) in (
    ss.get(SWEEP_DEFAULT),
    (None, None),
):
    ss[state.SWEEP_FROM], ss[state.SWEEP_TO] = wanted
ss[SWEEP_DEFAULT] = wanted

c1, c2, c3 = st.columns(3)
# No min/max on the inputs (a browser keeps an out-of-range number on screen without sending it): checked on click.
LIMITS = {"From log10(lr)": (-8.0, 1.0), "To log10(lr)": (-7.0, 2.0), "Steps (one per lr)": (20, 5000)}
lo = c1.number_input(
    "From log10(lr)",
    step=0.5,
    key=state.SWEEP_FROM,
    help=f"-8 to 1 (default for {settings.config.optimizer}: {wanted[0]:g})",
)
hi = c2.number_input(
    "To log10(lr)",
    step=0.5,
    key=state.SWEEP_TO,
    help=f"-7 to 2 (default for {settings.config.optimizer}: {wanted[1]:g})",
)
num = c3.number_input("Steps (one per lr)", value=1000, step=100, key=state.SWEEP_STEPS, help="20 to 5,000")
range_errors = [state.range_error(label, v, *LIMITS[label]) for label, v in zip(LIMITS, (lo, hi, num), strict=True)]
range_errors = [e for e in range_errors if e]

sweep = run.sweep
running = sweep is not None and sweep.progress.status == RUNNING
b1, b2 = st.columns([1, 4])
if b1.button("Run LR sweep", key="btn_sweep", type="primary", disabled=running):
    if range_errors:
        st.error("Not started: " + " ".join(range_errors))
    elif lo >= hi:
        st.error("'From' must be below 'To'.")
    else:
        cfg = settings.config
        try:
            driver = actions.driver(run)  # a watcher starts nothing in the run it watches
            ds = datasets.dataset_for(settings.data, cfg.block_size, cfg.split_seed, run)
            # In a worker process, like every training step: the server only forwards its progress and curve.
            task = BackgroundTask(in_worker(lr_range_test, cfg, ds, lo, hi, int(num)))
            driver.start_lr_sweep(task, cfg)
            sweep, running = task, True
        except (actions.NotDriving, DatasetError, CapacityError, ValueError, RuntimeError) as exc:
            st.error(str(exc))
if b2.button("Cancel", key="btn_sweep_cancel", disabled=not running):
    try:
        actions.driver(run).cancel_lr_sweep()
        running = False
    except actions.NotDriving as exc:
        st.error(str(exc))


def use_lr(lr: float) -> None:
    """Put the suggested lr into the sidebar (and so into the URL on this rerun)."""
    st.session_state[state.HP + "lr"] = lr
    st.session_state[state.SWEEP_LR_USED] = lr


def progress_view(run_id: str) -> None:
    """The sweep's progress and partial curve; re-runs itself until the sweep ends."""
    run = state.run_by_id(run_id)
    if run is None or run.sweep is None:
        return
    p = run.sweep.progress
    st.progress(p.fraction, text=f"Sweeping… {p.done:,} / {p.total:,} steps")
    if p.partial is not None:
        exps, losses = p.partial
        st.plotly_chart(charts.lr_sweep_figure(exps, losses), key="sweep_chart", config={"displaylogo": False})
    if p.status != RUNNING:
        st.rerun()


if running:
    st.fragment(progress_view, run_every=0.5)(run.run_id)
elif sweep is not None:
    p = sweep.progress
    if p.status == FINISHED and sweep.result is not None:
        r = sweep.result
        st.plotly_chart(
            charts.lr_sweep_figure(r.exponents, r.losses, r.smoothed, r.suggested_exponent),
            key="sweep_chart",
            config={"displaylogo": False},
        )
        lr = float(f"{r.suggested_lr:.3g}")
        st.success(f"Suggested learning rate: **{lr:g}** (10^{r.suggested_exponent:.2f}). Rule: {r.rule}.")
        if at_left_edge(r.exponents, r.suggested_exponent):
            st.warning(
                f"The suggestion is at the left edge of the range (10^{r.exponents[0]:g}): the valley may go on below "
                "it. Lower **From log10(lr)** and sweep again.",
                icon=":material/first_page:",
            )
        if run.sweep_config is not None:
            st.caption(f"Swept with: {charts.run_caption(run.sweep_config)}, init {run.sweep_config.init}.")
        st.button("Use this LR", key="btn_use_lr", type="primary", on_click=use_lr, args=(lr,))
        if st.session_state.get(state.SWEEP_LR_USED) == lr and st.session_state.get(state.HP + "lr") == lr:
            st.info(f"The sidebar's learning rate is now {lr:g}: press **Start** to train with it.")
    elif p.status == ERROR:
        st.error(f"The sweep failed: {p.message}")
    elif p.status == STOPPED:
        st.warning("The sweep was cancelled.")
