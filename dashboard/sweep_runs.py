"""The Sweep page's driver: `python -m mlp_core sweep` in a subprocess, one at a time per server.

The driver runs outside Streamlit's script runs (a page reload or a closed tab does not touch it) and
writes everything into its sweep directory; the page only reads summary.json from there, so it can
reattach after a reload and reopen any past sweep. No Streamlit import here.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from mlp_core import data
from mlp_core.cli import STOP_WITH_PARENT
from mlp_core.sweep import SUMMARY_FILE

ROOT = Path(__file__).resolve().parents[1]
SWEEPS_ROOT = Path(os.environ.get("MLP_SWEEP_DIR", ROOT / "sweeps"))
LOG_FILE = "driver.log"
WORDS_FILE = "words.txt"


class SweepBusy(RuntimeError):
    """A sweep is already running on this server."""


class SweepLauncher:
    """Starts and stops the server's one sweep driver; safe to share between sessions."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root if root is not None else SWEEPS_ROOT)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._dir: Path | None = None
        atexit.register(self.shutdown)  # a server that exits takes its sweep (and that sweep's Ray) with it

    def running(self) -> Path | None:
        """The running sweep's directory, or None."""
        with self._lock:
            return self._dir if self._proc is not None and self._proc.poll() is None else None

    def start(self, words: Sequence[str], args: Sequence[str]) -> Path:
        """Write the words beside the sweep and start the CLI on them; SweepBusy if one is running."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                raise SweepBusy(
                    f"a sweep is already running on this server ({self._dir.name}); "
                    "wait for it to finish or stop it, then start yours"
                )
            out = self.root / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
            out.mkdir(parents=True)
            words_path = data.write_words(words, out / WORDS_FILE)
            cmd = [sys.executable, "-m", "mlp_core", "sweep", "--data", str(words_path), *args]
            cmd += ["--out", str(out), "--quiet", "--json"]
            # The driver ends with this server, even one killed with SIGKILL (it watches its parent).
            env = {**os.environ, STOP_WITH_PARENT: str(os.getpid())}
            with open(out / LOG_FILE, "wb") as log:
                # Its own session: Streamlit's reruns, and a Stop's SIGINT, reach only this driver and its Ray.
                self._proc = subprocess.Popen(
                    cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            self._dir = out
            return out

    def stop(self) -> None:
        """Ctrl-C for the driver: Tune stops the trials and saves a resumable state."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.send_signal(signal.SIGINT)

    def shutdown(self, grace_s: float = 20.0) -> None:
        """End the driver and its local Ray (at server exit): Ctrl-C, then its whole process group."""
        self.stop()
        with self._lock:
            proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: only the driver and the Ray it started
            proc.wait(10)

    def failure(self, sweep_dir: Path) -> str | None:
        """The driver's last output line if it ended with an error for this sweep (e.g. a refused setting)."""
        with self._lock:
            proc = self._proc if self._dir == sweep_dir else None
        if proc is None or proc.poll() in (None, 0):
            return None
        lines = [ln for ln in (sweep_dir / LOG_FILE).read_text(errors="replace").splitlines() if ln.strip()]
        return lines[-1] if lines else f"the sweep driver exited with code {proc.returncode}"


def past_sweeps(root: Path | None = None) -> list[Path]:
    """Sweep directories under root (default SWEEPS_ROOT), newest first."""
    root = Path(root if root is not None else SWEEPS_ROOT)
    if not root.is_dir():
        return []
    dirs = [d for d in root.iterdir() if d.is_dir() and (d / SUMMARY_FILE).exists()]
    return sorted(dirs, key=lambda d: d.name, reverse=True)
