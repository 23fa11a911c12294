"""Sweep: a hyperparameter search on Ray Tune around the sidebar's settings, live; its best model one click away."""

import copy
import math
import os
import time
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import actions, advice, charts, datasets, layout, models, state, sweep_charts, sweep_runs
from dashboard.sweep_runs import SweepBusy, SweepLauncher, past_sweeps
from mlp_core import data, sweep
from mlp_core.baselines import baselines_for
from mlp_core.checkpoint import CheckpointError, load_checkpoint
from mlp_core.config import BOUNDS, CHOICES, PRESETS, ConfigError, TrainConfig, to_dict
from mlp_core.data import DatasetError, Vocab
from mlp_core.model import check_memory
from mlp_core.registry import CapacityError

# Numeric settings offered as ranges: (field, swept by default, log scale by default).
RANGES = (
    ("lr", True, True),
    ("hidden", True, True),
    ("emb_dim", False, False),
    ("block_size", False, False),
    ("batch_size", False, True),
    ("dropout", False, False),
    ("weight_decay", False, False),
)
CHOICE_FIELDS = ("optimizer", "schedule", "init")
BASE = "fast"  # the CLI's --preset; every sidebar setting that differs from it is passed as a fixed --param
K_SPACE, K_TRIALS, K_STEPS, K_SCHED, K_VIEW = "sweep_space", "sweep_trials", "sweep_steps", "sweep_sched", "sweep_view"
K_OUTCOME = "sweep_outcome"
K_RESUME_OUTCOME = "sweep_resume_outcome"
NUMBER = st.column_config.NumberColumn(format="%g")


@st.cache_resource(show_spinner=False)
def launcher() -> SweepLauncher:
    """The server's sweep drivers (shared by every session; each browser sees and drives only its own)."""
    return SweepLauncher()


layout.setup_page("Hyperparameter sweep")
st.markdown(
    "Many short trainings with settings drawn from the ranges below, run by **Ray Tune** on this machine "
    "(one CPU each); **ASHA** stops trials that are clearly behind at each evaluation so the budget goes to "
    "the promising ones. Settings not swept are the sidebar's. The sweep runs on the server and keeps going "
    "if you leave or reload this page; the CLI does the same: `python -m mlp_core sweep`."
)
run = state.current_run()
settings = state.current_settings()
cfg = settings.config
viewer = state.viewer_id()
launcher().purge_expired()  # dashboard sweeps past MLP_SWEEP_RETENTION_DAYS go, with their copy of the words
busy = launcher().running(viewer)


def default_space(config: TrainConfig) -> pd.DataFrame:
    """Ranges around the sidebar's values (x/3..x*3 on a log scale, x/2..x*2 otherwise), rounded and in bounds."""
    rows = []
    for name, swept, log in RANGES:
        v = getattr(config, name)
        lo, hi = (v / 3, v * 3) if log else (v / 2, v * 2)
        if name == "dropout":
            lo, hi = 0.0, max(0.2, v)
        if name == "weight_decay":
            lo, hi = 0.0, max(0.1, v)
        b = BOUNDS[name]
        lo, hi = (min(max(float(f"{x:.2g}"), b.low), b.high) for x in (lo, hi))
        if isinstance(v, int):
            lo, hi = max(round(lo), 1), round(hi)
        rows.append({"setting": name, "sweep": swept, "low": lo, "high": hi, "log": log})
    return pd.DataFrame(rows)


with st.expander("Search space", expanded=busy is None):
    st.caption("Tick a setting to sweep it between low and high (log: drawn uniformly in log space).")
    space = st.data_editor(
        default_space(cfg),
        key=K_SPACE,
        hide_index=True,
        disabled=["setting"],
        column_config={"low": NUMBER, "high": NUMBER},
    )
    cols = st.columns(len(CHOICE_FIELDS))
    choices = {
        name: col.multiselect(name, CHOICES[name], default=[getattr(cfg, name)], key=f"sweep_choice_{name}")
        for name, col in zip(CHOICE_FIELDS, cols, strict=True)
    }
    c1, c2, c3 = st.columns(3)
    trials = c1.number_input("Trials", min_value=1, max_value=500, value=12, step=1, key=K_TRIALS)
    steps = c2.number_input("Steps per trial", min_value=100, max_value=200_000, value=1500, step=100, key=K_STEPS)
    scheduler = c3.selectbox("Scheduler", ["asha", "fifo"], key=K_SCHED, help="fifo: every trial runs to the end")
    b1, b2, _ = st.columns([1, 1, 4])
    if b1.button("Start sweep", key="btn_sweep_start", type="primary", disabled=busy is not None):
        try:
            n_trials, n_steps = sweep_runs.check_size(trials, steps)
            args = ["--preset", BASE, "--trials", str(n_trials), "--steps", str(n_steps), "--scheduler", scheduler]
            params = sweep_runs.space_specs(space.to_dict("records"), choices, cfg, PRESETS[BASE])
            preset_base = sweep.SweepSettings(preset=BASE, steps=n_steps).base_config()
            parsed = [sweep.parse_param(p) for p in params]
            sweep.check_space(parsed, preset_base)  # refuse here, not in a log
            _key, words = datasets.words_for(settings.data, run)
            at_once = max(1, min(n_trials, os.cpu_count() or 1))
            # Every trial that runs at once holds its model: the memory check covers them all.
            check_memory(Vocab.from_words(words).size, sweep.largest_config(parsed, preset_base), copies=at_once)
            args += [a for p in params for a in ("--param", p)]
            busy = launcher().start(viewer, words, args, concurrency=at_once, registry=state.registry())
            st.session_state[K_VIEW] = busy.name
        except (sweep.SweepError, ConfigError, DatasetError, SweepBusy, CapacityError, ValueError, OSError) as exc:
            st.error(str(exc))
    if b2.button("Stop sweep", key="btn_sweep_stop", disabled=busy is None):
        launcher().stop(viewer)  # only this browser's own sweep

if busy is not None:
    st.info(f"Your sweep **{busy.name}** is running on this server.", icon=":material/progress_activity:")

sweeps = past_sweeps(launcher().root, viewer)  # this browser's sweeps (and the CLI's), never another browser's
if busy is not None and busy not in sweeps:
    sweeps.insert(0, busy)  # started a moment ago: its summary.json may not be written yet
if not sweeps:
    st.info("No sweeps yet: set the space above and press **Start sweep**.")
    st.stop()
names = [d.name for d in sweeps]
if st.session_state.get(K_VIEW) not in names:
    st.session_state[K_VIEW] = busy.name if busy is not None else names[0]
view = st.selectbox(
    "Sweep",
    names,
    key=K_VIEW,
    help=f"Your past sweeps stay here for {sweep_runs.retention_days():g} days (MLP_SWEEP_RETENTION_DAYS).",
)
sweep_dir = sweeps[names.index(view)]


def use_settings(config: dict) -> None:
    """Callback: the best trial's settings into the sidebar (keeping this session's device)."""
    state.apply_config(TrainConfig(**config).replace(device=state.current_settings().config.device))
    st.session_state[K_OUTCOME] = ("ok", "The sidebar now holds the best trial's settings: press **Start** to train.")


@actions.guarded(K_OUTCOME)
def load_best(driver: actions.Driver, sweep_dir: Path) -> None:
    """Callback: the best checkpoint becomes this session's model (Sample, Embeddings, Checkpoints)."""
    settings = state.current_settings()
    try:
        if not sweep_runs.visible_to(sweep_dir, state.viewer_id()):
            raise ValueError("this sweep belongs to another browser")
        ckpt = load_checkpoint(sweep_dir / sweep.BEST_FILE)
        step = models.checkpoint_step(ckpt)
        words = sweep.sweep_words(sweep_dir)  # the page's and the CLI's sweeps alike
        cfg = ckpt.config.replace(steps=step, device=settings.config.device)
        ds = data.make_dataset(words, cfg.block_size, cfg.split_seed, vocab=ckpt.vocab, name=sweep_dir.name)
        label = f"best of {sweep_dir.name}"
        driver.start_new_job(cfg, ds, copy.deepcopy(ckpt.model), start_step=step, dataset_label=label)
        driver.load_checkpoint(ckpt, f"{label} (dev {ckpt.meta.get('dev_loss', float('nan')):.4f})")
        st.session_state[state.SAMPLE_SOURCE] = models.CURRENT
        st.session_state[K_OUTCOME] = ("ok", f"Loaded the {label}: the Sample and Embeddings pages now use it.")
    except (CheckpointError, DatasetError, CapacityError, ConfigError, sweep.SweepError, ValueError, OSError) as exc:
        st.session_state[K_OUTCOME] = ("error", f"Cannot load the best model: {exc}")


def resume_sweep(sweep_dir: Path) -> None:
    """Callback: continue this browser's interrupted sweep (its trials within the job cap)."""
    try:
        launcher().resume(state.viewer_id(), sweep_dir, concurrency=os.cpu_count() or 1, registry=state.registry())
        st.session_state[K_RESUME_OUTCOME] = ("ok", f"Resuming {sweep_dir.name}: finished trials are kept.")
    except (sweep.SweepError, SweepBusy, CapacityError, OSError) as exc:
        st.session_state[K_RESUME_OUTCOME] = ("error", f"Cannot resume the sweep: {exc}")


def delete_sweep(sweep_dir: Path) -> None:
    """Callback: delete this browser's ended sweep and its copy of the words."""
    try:
        launcher().delete(state.viewer_id(), sweep_dir)
        st.session_state[K_RESUME_OUTCOME] = ("ok", f"Deleted {sweep_dir.name} and its copy of the words.")
    except (sweep.SweepError, OSError) as exc:
        st.session_state[K_RESUME_OUTCOME] = ("error", f"Cannot delete the sweep: {exc}")


def sweep_view(sweep_dir: Path, live: bool) -> None:
    summary = sweep.read_summary(sweep_dir)
    failure = launcher().failure(sweep_dir)
    if failure:
        st.error(f"The sweep stopped: {failure}")
    if summary is None:
        st.info("Starting Ray… the first trials appear in a few seconds.")
        return
    trials = list(summary.get("trials", {}).values())
    s = summary.get("settings", {})
    total = s.get("trials", len(trials))
    ended = sum(t.get("status") in sweep_charts.FINISHED for t in trials)
    fields = [p.split("=", 1)[0] for p in s.get("params", []) if ":" in p or "|" in p]
    status = sweep_runs.sweep_status(sweep_dir, summary, live and launcher().running(state.viewer_id()) == sweep_dir)
    st.progress(min(1.0, ended / max(total, 1)), text=f"{status}: {ended} / {total} trials ended")
    if status == "interrupted" and summary.get("state") == "running":
        st.warning("The sweep's driver is gone (killed, or its server stopped): its trials are not running.")
    if summary.get("state") == "failed":
        st.error(f"The sweep failed: {summary.get('error')}")
    best = summary.get("best")
    c = st.columns(4)
    c[0].metric("best dev loss", f"{best['dev_loss']:.4f}" if best else "—")
    c[1].metric("completed", sum(t.get("status") == "completed" for t in trials))
    c[2].metric("stopped early", sum(t.get("status") == "stopped" for t in trials))
    c[3].metric("running", sum(t.get("status") == "running" for t in trials))
    # A plain table (not a canvas grid): every cell is text a reader, a screenshot and a test can see.
    rows = pd.DataFrame(sweep_charts.trial_rows(trials, fields))
    for name in rows.columns:  # as text: dev loss to 4 decimals, swept numbers to 3 significant digits
        if rows[name].dtype.kind == "f":
            fmt = "{:.4f}" if name == "dev loss" else "{:.3g}"
            rows[name] = rows[name].map(lambda v, fmt=fmt: "—" if pd.isna(v) else fmt.format(v))
    with st.container(key="sweep_table"):
        st.table(rows.style.hide(axis="index") if len(rows) else rows)
    started = summary.get("started", time.time())
    # Side by side while the parallel chart has few axes; with more, it takes the full width to stay readable.
    g1, g2 = st.columns(2) if len(fields) <= 3 else (st.container(), st.container())
    g1.plotly_chart(sweep_charts.best_so_far_figure(trials, started), key="sweep_best_chart")
    g2.plotly_chart(sweep_charts.parallel_figure(trials, fields), key="sweep_parallel_chart")
    refs = [*(reference_lines() if trials else ()), *((("your run (sidebar)", REFERENCE[0]),) if REFERENCE[0] else ())]
    st.plotly_chart(sweep_charts.curves_figure(trials, best and best["id"], refs), key="sweep_curves_chart")
    if live and summary.get("state") != "running" and launcher().running(state.viewer_id()) != sweep_dir:
        st.rerun()  # the sweep ended: one full rerun turns on the buttons below and stops refreshing


def reference_dev() -> tuple[float | None, str]:
    """The dev loss of this session's latest run of exactly the sidebar's settings, and which run that was."""
    for s in reversed(run.history()):
        if s.config.replace(device="auto") == settings.config.replace(device="auto"):
            dev = s.dev_loss if math.isfinite(s.dev_loss) else s.best_dev
            if math.isfinite(dev):
                return dev, f"run {s.label}, {s.steps:,} steps"
    return None, ""


def uniform_loss() -> float:
    job = run.job
    return baselines_for(job.dataset).uniform_loss if job is not None else math.log(27)


def reference_lines() -> list[tuple[str, float]]:
    """Uniform guessing, the bigram model and the lecture's MLP, for the data of this session's run."""
    if run.job is None:
        return [("uniform guessing (27 characters)", math.log(27))]
    return charts.reference_losses(baselines_for(run.job.dataset))


REFERENCE = reference_dev()
live = busy is not None and busy == sweep_dir
st.fragment(sweep_view, run_every=1.0 if live else None)(sweep_dir, live)

summary = sweep.read_summary(sweep_dir) or {}
status = sweep_runs.sweep_status(sweep_dir, summary, live)
mine = sweep_runs.owns(sweep_dir, viewer)
if not live and mine and status in ("interrupted", "failed"):
    r1, r2, _ = st.columns([1, 1, 3])
    r1.button("Resume sweep", key="btn_sweep_resume", on_click=resume_sweep, args=(sweep_dir,))
    r2.button("Delete sweep", key="btn_sweep_delete", on_click=delete_sweep, args=(sweep_dir,))
elif not live and mine and status == "finished":
    st.button("Delete sweep", key="btn_sweep_delete", on_click=delete_sweep, args=(sweep_dir,))
best = summary.get("best")
if best is not None and not live:
    full = to_dict(sweep.SweepSettings(**summary["settings"]).base_config().replace(**best["config"]))
    st.markdown(f"**Best trial** {best['id']}: dev {best['dev_loss']:.4f} after {best['steps']:,} steps.")
    ref_dev, ref_label = REFERENCE
    st.markdown(
        f"**Reference**, the sidebar's own settings ({ref_label}): dev {ref_dev:.4f}."
        if ref_dev is not None
        else "**Reference**: the sidebar's settings have not been trained in this session yet."
    )
    trial_devs = [t["dev_loss"] for t in summary.get("trials", {}).values() if isinstance(t.get("dev_loss"), float)]
    notes = advice.sweep_verdict(
        best["dev_loss"],
        int(summary.get("settings", {}).get("steps") or best["steps"]),
        settings.config.steps,
        ref_dev,
        uniform_loss(),
        trial_devs,
    )
    for level, text in notes:
        getattr(st, level)(text)
    beaten = any(level == "error" for level, _ in notes)
    b1, b2, _ = st.columns([3, 2, 4])
    b1.button(
        "Use these settings anyway" if beaten else "Use these settings",
        key="btn_sweep_use",
        on_click=use_settings,
        args=(full,),
    )
    if (sweep_dir / sweep.BEST_FILE).is_file():  # written when the sweep ends: none for an interrupted one
        b2.button("Load best model", key="btn_sweep_load", on_click=load_best, args=(sweep_dir,))
    else:
        b2.caption("No best model file yet: it is written when the sweep ends (resume it to finish).")
for key in (K_OUTCOME, K_RESUME_OUTCOME):
    state.show_outcome(key)
