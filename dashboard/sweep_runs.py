"""The Sweep page's drivers: `python -m mlp_core sweep` in a subprocess, one per browser, owned like runs.

A driver runs outside Streamlit's script runs (a page reload or a closed tab does not touch it) and
writes everything into its sweep directory; the page only reads summary.json from there, so it can
reattach after a reload and reopen any past sweep. A sweep belongs to the browser that started it: its
directory records a hash of that browser's id (never the id), and only that browser lists, loads, stops,
resumes or deletes it (sweeps the CLI wrote under the same folder have no owner: every browser sees them).
Its trials take slots of the server's job cap while it runs; its copy of the words is deleted with it, and
dashboard sweeps older than the retention limit are deleted. No Streamlit import here.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlp_core import data
from mlp_core.cli import STOP_WITH_PARENT
from mlp_core.config import TrainConfig, to_dict
from mlp_core.registry import RunRegistry
from mlp_core.store import sweeps_dir
from mlp_core.sweep_space import SweepError
from mlp_core.sweep_store import SUMMARY_FILE, WORDS_FILE, driver_alive, read_summary

ROOT = Path(__file__).resolve().parents[1]
SWEEPS_ROOT = sweeps_dir()  # $MLP_HOME/sweeps, or MLP_SWEEP_DIR
LOG_FILE = "driver.log"
OWNER_FILE = "owner.json"
__all__ = ["WORDS_FILE", "SweepBusy", "SweepLauncher", "past_sweeps"]


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ValueError(f"environment variable {name} must be a number, got {raw!r}") from None
    return value if math.isfinite(value) and value > 0 else default


def retention_days() -> float:
    """Dashboard sweeps (and their copy of the words) are deleted this many days after their last change."""
    return _env_number("MLP_SWEEP_RETENTION_DAYS", 7.0)


def max_trial_steps() -> int:
    """The largest sweep the page starts: trials x steps per trial."""
    return int(_env_number("MLP_MAX_SWEEP_TRIAL_STEPS", 1_000_000))


class SweepBusy(RuntimeError):
    """This browser already has a sweep running."""


# ---------------------------------------------------------------------------- who owns a sweep
def owner_tag(viewer: str) -> str:
    """What a sweep directory records of its browser: a hash of the viewer id, never the id itself."""
    return hashlib.sha256(f"mlp-sweep-owner:{viewer}".encode()).hexdigest()[:32]


def owner_of(sweep_dir: Path) -> str | None:
    """The owner tag of a dashboard sweep; None for a sweep without one (the CLI's)."""
    try:
        owner = json.loads((sweep_dir / OWNER_FILE).read_text()).get("owner")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError):
        return "?"  # unreadable: nobody's (never everybody's)
    return owner if isinstance(owner, str) else "?"


def visible_to(sweep_dir: Path, viewer: str) -> bool:
    owner = owner_of(sweep_dir)
    return owner is None or owner == owner_tag(viewer)


def owns(sweep_dir: Path, viewer: str) -> bool:
    """Only the browser that started a dashboard sweep may stop, resume, delete or load it."""
    return owner_of(sweep_dir) == owner_tag(viewer)


def past_sweeps(root: Path | None = None, viewer: str | None = None) -> list[Path]:
    """Sweep directories under root (default SWEEPS_ROOT) this viewer may see, newest first."""
    root = Path(root if root is not None else SWEEPS_ROOT)
    if not root.is_dir():
        return []
    dirs = [d for d in root.iterdir() if d.is_dir() and (d / SUMMARY_FILE).exists()]
    if viewer is not None:
        dirs = [d for d in dirs if visible_to(d, viewer)]
    return sorted(dirs, key=lambda d: d.name, reverse=True)


def sweep_status(sweep_dir: Path, summary: dict[str, Any] | None, live: bool) -> str:
    """The summary's state, except that a "running" sweep whose driver is gone is "interrupted"."""
    state = (summary or {}).get("state", "starting")
    if state == "running" and not live and driver_alive(summary or {}) is not True:
        return "interrupted"
    return state


# ---------------------------------------------------------------------------- the page's inputs
def space_specs(
    rows: Sequence[dict[str, Any]], choices: dict[str, list[str]], config: TrainConfig, base: TrainConfig
) -> list[str]:
    """--param specs from the search-space table's rows: the swept ranges and choices, and every other setting that
    differs from `base`. A blank, non-numeric or non-finite cell is a SweepError naming the setting."""
    ints = {f for f, t in TrainConfig.__annotations__.items() if t == "int"}
    out, swept = [], set()
    for row in rows:
        name = row.get("setting")
        if not _truthy(row.get("sweep")):
            continue
        bounds = []
        for end in ("low", "high"):
            value = row.get(end)
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise SweepError(f"Search space: {name}'s {end} must be a number, got {value!r}") from None
            if not math.isfinite(number):
                raise SweepError(f"Search space: {name}'s {end} is blank or not a finite number; type a number")
            bounds.append(round(number) if name in ints else number)
        out.append(f"{name}={bounds[0]}:{bounds[1]}" + (":log" if _truthy(row.get("log")) else ""))
        swept.add(name)
    for name, values in choices.items():
        if len(values) > 1:
            out.append(f"{name}={'|'.join(values)}")
            swept.add(name)
    default = to_dict(base)
    for name, value in to_dict(config).items():
        if name not in swept and name not in ("steps", "device") and value != default[name]:
            out.append(f"{name}={value!r}" if isinstance(value, float) else f"{name}={value}")
    return out


def _truthy(value: Any) -> bool:
    return bool(value) and not (isinstance(value, float) and math.isnan(value))


def check_size(trials: Any, steps: Any) -> tuple[int, int]:
    """Trials and steps per trial as whole numbers within the page's and the server's limits, else a SweepError."""
    out = []
    for label, value, low, high in (("Trials", trials, 1, 500), ("Steps per trial", steps, 100, 200_000)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or not float(value).is_integer() or not low <= value <= high:
            raise SweepError(f"{label} must be a whole number between {low:,} and {high:,}; it is {value!r}")
        out.append(int(value))
    limit = max_trial_steps()
    if out[0] * out[1] > limit:
        raise SweepError(
            f"This sweep is {out[0]:,} trials x {out[1]:,} steps = {out[0] * out[1]:,} training steps; this server "
            f"runs sweeps of at most {limit:,} (MLP_MAX_SWEEP_TRIAL_STEPS): fewer trials or fewer steps"
        )
    return out[0], out[1]


# ---------------------------------------------------------------------------- the drivers
class SweepLauncher:
    """Starts and stops each browser's sweep driver (one per browser); safe to share between sessions."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root if root is not None else SWEEPS_ROOT)
        self._lock = threading.Lock()
        self._procs: dict[str, tuple[subprocess.Popen, Path]] = {}  # owner tag -> its driver and directory
        atexit.register(self.shutdown)  # a server that exits takes its sweeps (and their Ray) with them

    def running(self, viewer: str) -> Path | None:
        """This browser's running sweep's directory, or None."""
        entry = self._procs.get(owner_tag(viewer))
        return entry[1] if entry is not None and entry[0].poll() is None else None

    def running_dirs(self) -> set[Path]:
        return {d for p, d in list(self._procs.values()) if p.poll() is None}

    def start(
        self,
        viewer: str,
        words: Sequence[str],
        args: Sequence[str],
        concurrency: int = 1,
        registry: RunRegistry | None = None,
    ) -> Path:
        """Write the words beside a new sweep and start the CLI on them, its trials within the job cap."""
        out = self.root / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
        out.mkdir(parents=True)
        try:
            (out / OWNER_FILE).write_text(json.dumps({"owner": owner_tag(viewer), "created": time.time()}))
            words_path = data.write_words(words, out / WORDS_FILE)
            self._launch(viewer, out, ["--data", str(words_path), *args, "--out", str(out)], concurrency, registry)
        except BaseException:
            shutil.rmtree(out, ignore_errors=True)  # nothing started: keep none of the words
            raise
        return out

    def resume(self, viewer: str, sweep_dir: Path, concurrency: int = 1, registry: RunRegistry | None = None) -> None:
        """Continue this browser's interrupted sweep (`sweep --resume`), its trials within the job cap."""
        if not owns(sweep_dir, viewer):
            raise SweepError("only the browser that started this sweep can resume it")
        self._launch(viewer, sweep_dir, ["--resume", str(sweep_dir)], concurrency, registry, resume=True)

    def _launch(
        self,
        viewer: str,
        out: Path,
        args: list[str],
        concurrency: int,
        registry: RunRegistry | None,
        resume: bool = False,
    ) -> None:
        """Start a driver for this browser, its trials taking `concurrency` slots of the registry's cap (or fewer,
        what the cap leaves: the sweep then runs that many trials at once); CapacityError when none is free."""
        tag = owner_tag(viewer)
        with self._lock:
            if self.running(viewer) is not None:
                raise SweepBusy("your sweep is still running: stop it or wait for it to finish, then start another")
            pending: dict[str, subprocess.Popen | None] = {"proc": None}

            def alive() -> bool:
                proc = pending["proc"]
                return proc is None or proc.poll() is None

            holder = f"sweep:{tag}"
            granted = concurrency
            if registry is not None:
                granted = registry.reserve_slots(holder, concurrency, alive)  # CapacityError when none is free
            cmd = [sys.executable, "-m", "mlp_core", "sweep", *args, "--quiet", "--json"]
            if not resume:
                cmd += ["--concurrency", str(granted)]
            else:  # the sweep's own settings say its concurrency: lower it to what the cap leaves now
                _limit_concurrency(out, granted)
            try:
                pending["proc"] = proc = self._spawn(cmd, out)
            except BaseException:
                if registry is not None:
                    registry.release_slots(holder)
                raise
            self._procs[tag] = (proc, out)

    def _spawn(self, cmd: list[str], out: Path) -> subprocess.Popen:
        # The driver ends with this server, even one killed with SIGKILL (it watches its parent).
        env = {**os.environ, STOP_WITH_PARENT: str(os.getpid())}
        with open(out / LOG_FILE, "ab") as log:
            # Its own session: Streamlit's reruns, and a Stop's SIGINT, reach only this driver and its Ray.
            return subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def stop(self, viewer: str) -> None:
        """Ctrl-C for this browser's driver: Tune stops the trials and saves a resumable state."""
        entry = self._procs.get(owner_tag(viewer))
        if entry is not None and entry[0].poll() is None:
            entry[0].send_signal(signal.SIGINT)

    def delete(self, viewer: str, sweep_dir: Path) -> None:
        """Delete this browser's ended sweep, its copy of the words included."""
        if not owns(sweep_dir, viewer):
            raise SweepError("only the browser that started this sweep can delete it")
        if sweep_dir in self.running_dirs() or driver_alive(read_summary(sweep_dir) or {}):
            raise SweepError("the sweep is running: stop it first")
        shutil.rmtree(sweep_dir, ignore_errors=True)

    def purge_expired(self, now: float | None = None) -> list[Path]:
        """Delete dashboard sweeps unchanged for retention_days() (words included); never a running one or the CLI's."""
        now = time.time() if now is None else now
        limit_s, gone = retention_days() * 86400, []
        if not self.root.is_dir():
            return gone
        running = self.running_dirs()
        for d in self.root.iterdir():
            if not d.is_dir() or owner_of(d) is None or d in running:
                continue
            with contextlib.suppress(OSError):
                changed = max(p.stat().st_mtime for p in (d, *d.iterdir()))
                if now - changed > limit_s and not driver_alive(read_summary(d) or {}):
                    shutil.rmtree(d)
                    gone.append(d)
        return gone

    def shutdown(self, grace_s: float = 20.0) -> None:
        """End every driver and its local Ray (at server exit): Ctrl-C, then its whole process group."""
        procs = [p for p, _ in list(self._procs.values()) if p.poll() is None]
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: only the driver and the Ray it started
                proc.wait(10)

    def failure(self, sweep_dir: Path) -> str | None:
        """The driver's last output line if it ended with an error for this sweep (e.g. a refused setting)."""
        proc = next((p for p, d in list(self._procs.values()) if d == sweep_dir), None)
        if proc is None or proc.poll() in (None, 0):
            return None
        with contextlib.suppress(OSError):
            lines = [ln for ln in (sweep_dir / LOG_FILE).read_text(errors="replace").splitlines() if ln.strip()]
            if lines:
                return lines[-1]
        return f"the sweep driver exited with code {proc.returncode}"


def _limit_concurrency(sweep_dir: Path, granted: int) -> None:
    """Lower a sweep's saved concurrency to `granted` before `--resume` (which reads sweep.json)."""
    from mlp_core.sweep_store import SETTINGS_FILE, _write_json

    path = sweep_dir / SETTINGS_FILE
    with contextlib.suppress(OSError, ValueError, AttributeError):
        raw = json.loads(path.read_text())
        if not isinstance(raw.get("concurrency"), int) or raw["concurrency"] > granted:
            raw["concurrency"] = granted
            _write_json(path, raw)
