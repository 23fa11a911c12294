"""Inside the network (makemore part 3): the init loss, tanh saturation, gradients, update sizes, BatchNorm,
and the lecture's overfit-one-batch check, for the current run (live) or an uploaded checkpoint."""

from __future__ import annotations

import math

import streamlit as st

from dashboard import actions, datasets, layout, models, state
from dashboard import diagnostics_charts as dc
from mlp_core.config import TrainConfig
from mlp_core.data import DatasetError, NamesDataset
from mlp_core.diagnostics import DiagnosticsPoint, init_verdict, overfit_one_batch, probe, probe_batch
from mlp_core.job import ERROR, FINISHED, RUNNING, STOPPED
from mlp_core.model import MLP, build_model
from mlp_core.registry import CapacityError
from mlp_core.tasks import BackgroundTask, in_worker

PLOT = {"displaylogo": False}

layout.setup_page("Inside the network")
st.caption(
    "What makemore part 3 looks at, measured on one fixed batch of training examples: is the first loss what "
    "a clueless model should score, do the tanh units saturate, how big are the gradients and the updates, "
    "and what BatchNorm changes."
)
run = state.current_run()
settings = state.current_settings()


# ---------------------------------------------------------------------- gathering
def fresh_point(config: TrainConfig, dataset: NamesDataset) -> DiagnosticsPoint:
    """A just-initialised model of these settings (the same weights a run starts from: init is seeded)."""
    config = config.replace(device="cpu")
    ds = dataset.with_block_size(config.block_size)
    return probe(build_model(ds.vocab.size, config), *probe_batch(ds), step=0, lr=config.lr)


def run_points(job) -> list[DiagnosticsPoint]:
    """The run's probes from its snapshot; measured now on the current weights if it has none yet."""
    snap = job.snapshot()
    points = list(snap.diagnostics)
    if not points:  # e.g. a job whose worker has not sent its first update yet
        model: MLP = job.current_model()
        ds = job.dataset.with_block_size(job.config.block_size)
        points.append(probe(model, *probe_batch(ds), step=snap.step, lr=snap.lr))
    if points[0].step != 0:
        points.insert(0, fresh_point(job.config, job.dataset))
    return points


# ---------------------------------------------------------------------- views
def init_check(point: DiagnosticsPoint, what: str) -> None:
    st.subheader("Init check")
    c = st.columns(3)
    c[0].metric(f"loss at step 0 ({what})", f"{point.loss:.3f}")
    c[1].metric("uniform guess ln(V)", f"{point.uniform_loss:.3f}")
    c[2].metric("excess", f"{point.loss - point.uniform_loss:+.3f}")
    verdict = init_verdict(point.loss, point.uniform_loss)
    (st.success if point.loss - point.uniform_loss <= 0.2 else st.warning)(verdict)


def activations(point: DiagnosticsPoint, key: str) -> None:
    for k, layer in enumerate(point.layers):
        c = st.columns(3)
        c[0].metric(f"{layer.name}: saturated", f"{layer.saturated_fraction:.1%}")
        c[1].metric("dead neurons (saturated on every probe example)", f"{layer.dead_neurons} of {layer.neurons}")
        c[2].metric("pre-activation std", f"{layer.preact_std:.2f}")
        st.plotly_chart(dc.layer_histograms(layer), key=f"{key}_hist_{k}", config=PLOT)
        if layer.saturation_map is not None:
            st.plotly_chart(dc.saturation_map(layer), key=f"{key}_map_{k}", config=PLOT)


def network_views(points: list[DiagnosticsPoint], key: str, init_what: str) -> None:
    """Init check, activations, gradients and updates of a list of probes (the first is the init)."""
    init, latest = points[0], points[-1]
    init_check(init, init_what)
    st.subheader("Activations")
    options = ["latest", "init"] if len(points) > 1 else ["init"]
    at = st.radio(
        "Show",
        options,
        format_func={"latest": f"step {latest.step:,} (latest)", "init": "step 0 (init)"}.get,
        key=f"{state.DIAG_AT}_{key}",
        horizontal=True,
    )
    activations(latest if at == "latest" else init, key)
    if len(points) > 1:
        st.plotly_chart(dc.saturation_over_training(points), key=f"{key}_sat", config=PLOT)
    st.subheader("Gradients")
    st.plotly_chart(dc.gradient_histograms(latest), key=f"{key}_grads", config=PLOT)
    st.plotly_chart(dc.grad_data_ratio_figure(latest), key=f"{key}_ratio", config=PLOT)
    st.subheader("Updates")
    st.plotly_chart(dc.update_ratio_figure(points), key=f"{key}_updates", config=PLOT)
    st.caption(
        "One point per probe: the learning rate of that step times the probe batch's gradient. Around −3 the "
        "weights change by about a thousandth of their spread per step; far below, they barely learn."
    )


def current_view(run_id: str, live: bool) -> None:
    run = state.run_by_id(run_id)
    if run is None or run.job is None:
        return
    job = run.job
    snap = state.live_snapshot(job, "page")  # the sidebar's status shows this same snapshot
    st.caption(f"Run {run.job_label} at step {snap.step:,} ({snap.status}) · {run.dataset_label}")
    network_views(run_points(job), "run", "this run")
    if live and not snap.active:
        st.rerun()  # the job ended: one full rerun stops the refreshing


def checkpoint_view() -> None:
    ckpt = run.checkpoint
    try:
        if run.job is not None and run.job.dataset.vocab == ckpt.vocab:
            ds = run.job.dataset.with_block_size(ckpt.config.block_size)
        else:
            block, split = ckpt.config.block_size, ckpt.config.split_seed
            ds = datasets.dataset_for(settings.data, block, split, run, vocab=ckpt.vocab)
    except DatasetError as exc:
        st.error(f"No probe batch for this checkpoint: {exc}. Choose data with its alphabet in the sidebar.")
        return
    step = models.checkpoint_step(ckpt)
    point = probe(ckpt.model, *probe_batch(ds), step=step, lr=ckpt.config.lr)
    st.caption(f"Checkpoint {run.checkpoint_name} (step {step:,}), probed on {ds.vocab.size}-token data.")
    network_views([fresh_point(ckpt.config, ds), point], "ckpt", "a fresh model with its settings")


def sidebar_dataset() -> NamesDataset | None:
    cfg = settings.config
    try:
        return datasets.dataset_for(settings.data, cfg.block_size, cfg.split_seed, run)
    except DatasetError as exc:
        st.info(f"Choose a dataset in the sidebar to see this: {exc}")
        return None


def batchnorm_comparison(dataset: NamesDataset) -> None:
    st.header("With and without BatchNorm, at init")
    cfg = settings.config
    st.caption(
        f"Two fresh models with the sidebar's settings (init {cfg.init}, hidden {cfg.hidden} × {cfg.hidden_layers}),"
        " one with BatchNorm before each tanh: it rescales every pre-activation to zero mean and unit variance on "
        "the batch, so the units start out of saturation whatever the init. It does not touch the output layer: "
        "an overconfident first loss stays."
    )
    cols = st.columns(2)
    for col, norm in zip(cols, ("none", "batchnorm"), strict=True):
        point = fresh_point(cfg.replace(norm=norm), dataset)
        layer = point.layers[0]
        with col:
            st.markdown(f"**norm = {norm}**")
            c = st.columns(3)
            c[0].metric("loss at init", f"{point.loss:.2f}")
            c[1].metric("saturated", f"{layer.saturated_fraction:.1%}")
            c[2].metric("dead", f"{layer.dead_neurons} of {layer.neurons}")
            st.plotly_chart(dc.layer_histograms(layer, f"{layer.name}, norm {norm}"), key=f"cmp_h_{norm}", config=PLOT)
            st.plotly_chart(
                dc.saturation_map(layer, f"saturated (white), norm {norm}"), key=f"cmp_m_{norm}", config=PLOT
            )


def overfit_section(dataset: NamesDataset) -> None:
    st.header("Overfit one batch")
    st.caption(
        "The lecture's sanity check: train the sidebar's settings on a single batch of 32 examples and nothing "
        "else (dropout and weight decay off). A healthy model drives the loss down to the batch's floor. The floor "
        "is not 0: several examples share a context (every name starts with '...') but go on differently, and "
        "one context can get only one prediction. It trains in the background, in a process of its own, and takes "
        "one of the server's training slots while it runs."
    )
    steps = st.number_input("Steps", 100, 20_000, 1000, 100, key=state.DIAG_OVERFIT_STEPS)
    task = run.overfit
    running = task is not None and task.progress.status == RUNNING
    if st.button("Overfit one batch", key="btn_overfit", type="primary", disabled=running):
        cfg = settings.config
        task = BackgroundTask(in_worker(overfit_one_batch, cfg, dataset, steps=int(steps)))
        try:
            actions.driver(run).start_overfit(task)
        except (CapacityError, actions.NotDriving) as exc:
            st.error(f"Not started: {exc}")
        else:
            st.session_state[state.DIAG_OVERFIT] = (f"init {cfg.init}, norm {cfg.norm}", task)
            running = True
    task = run.overfit
    if task is None:
        return
    shown = st.session_state.get(state.DIAG_OVERFIT)  # started here (not in another tab of this run)
    caption = shown[0] if shown is not None and shown[1] is task else "the settings it was started with"
    if running:
        st.fragment(overfit_progress, run_every=0.5)(run.run_id)
        return
    p = task.progress
    if p.status == ERROR:
        st.error(f"Could not run it: {p.message}")
    elif p.status == STOPPED:
        st.warning(f"Stopped at step {p.done:,} of {p.total:,}.")
    elif p.status == FINISHED and task.result is not None:
        result = task.result
        final = float(result.losses[-1])
        gap = final - result.floor
        verdict = "reached its floor" if gap < 0.05 else f"is still {gap:.3f} above its floor"
        loss_text = f"{final:.3f}" if math.isfinite(final) else str(final)
        st.markdown(f"With {caption}: after {int(result.steps[-1]):,} steps the loss is {loss_text}: it {verdict}.")
        st.plotly_chart(dc.overfit_figure(result), key="overfit_chart", config=PLOT)


def overfit_progress(run_id: str) -> None:
    """The overfit's progress and its Stop button; re-runs itself until the task ends, then reruns the page."""
    run = state.run_by_id(run_id)
    task = None if run is None else run.overfit
    if task is None:
        return
    p = task.progress
    text = f"step {p.done:,} of {p.total:,} on one batch" if p.total else "starting a training process…"
    st.progress(p.fraction, text=text)
    st.button("Stop", key="btn_overfit_stop", on_click=task.cancel, help="End the overfit now")
    if p.status != RUNNING:
        st.rerun()


# ---------------------------------------------------------------------- the page
# The current run's probes, or a checkpoint probed here (a run's best-dev weights have no probes of their own).
SOURCE_LABELS = {models.CURRENT: "The current run", models.CHECKPOINT: "The uploaded checkpoint"}
sources = [s for s in models.available(run) if s in SOURCE_LABELS]
if sources:
    if st.session_state.get(state.DIAG_SOURCE) not in sources:
        st.session_state[state.DIAG_SOURCE] = sources[0]
    source = st.radio(
        "Model",
        sources,
        format_func=SOURCE_LABELS.get,
        key=state.DIAG_SOURCE,
        horizontal=True,
    )
    if source == models.CURRENT:
        active = run.job.snapshot().active
        st.fragment(current_view, run_every=state.REFRESH_S if active else None)(run.run_id, active)
    else:
        checkpoint_view()
else:
    st.info(
        "Train a model (sidebar: **Start**) to watch its insides while it learns, or upload a checkpoint on the "
        "Checkpoints page. Below: fresh models with the sidebar's settings."
    )

dataset = sidebar_dataset()
if dataset is not None:
    batchnorm_comparison(dataset)
    overfit_section(dataset)
