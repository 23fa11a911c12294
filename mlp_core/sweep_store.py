"""The sweep directory, one format whoever started the sweep (the CLI or the Sweep page).

    sweep.json        the settings, enough to `--resume` it
    summary.json      the live state the CLI and the dashboard read (trials, curves, best)
    ray/              Ray Tune's experiment state (what `Tuner.restore` reads)
    trials/<id>.safetensors   each finished trial's final weights (mlp_core checkpoints)
    best.safetensors  a copy of the best one

Files are written atomically: a reader (the dashboard) never sees half a file. No Ray here.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import data
from .config import BOUNDS, PRESETS, TrainConfig, preset
from .model import check_memory
from .processes import process_start
from .sweep_space import Param, SweepError, check_space, largest_config, parse_param

SETTINGS_FILE = "sweep.json"
SUMMARY_FILE = "summary.json"
RAY_DIR = "ray"
TRIALS_DIR = "trials"
BEST_FILE = "best.safetensors"
WORDS_FILE = "words.txt"  # the sweep's own copy of its data (none for the built-in names)
MAX_TRIALS = 10_000


# ---------------------------------------------------------------------------- settings
@dataclass
class SweepSettings:
    """What a sweep was asked to do; saved as sweep.json so `--resume DIR` needs nothing else."""

    data: str | None = None  # None: the built-in names
    preset: str = "fast"
    trials: int = 8
    steps: int | None = None  # None: the preset's
    params: list[str] = field(default_factory=list)
    scheduler: str = "asha"
    search: str = "random"
    concurrency: int | None = None
    cpus_per_trial: float = 1.0
    seed: int = 0

    def base_config(self) -> TrainConfig:
        """The preset with the sweep's steps; trials run on the CPU they were given."""
        base = preset(self.preset)
        return base.replace(steps=self.steps if self.steps is not None else base.steps, device="cpu")

    def space(self) -> list[Param]:
        return [parse_param(s) for s in self.params]


@dataclass
class Prepared:
    settings: SweepSettings
    base: TrainConfig
    params: list[Param]
    dataset: data.NamesDataset
    words: list[str] = field(default_factory=list)


def prepare(settings: SweepSettings) -> Prepared:
    """Validate everything and load the data; raises SweepError/ConfigError/DatasetError before Ray starts."""
    if settings.preset not in PRESETS:
        raise SweepError(f"unknown preset {settings.preset!r}; choose one of {', '.join(PRESETS)}")
    if not 1 <= settings.trials <= MAX_TRIALS:
        raise SweepError(f"--trials must be between 1 and {MAX_TRIALS:,}, got {settings.trials}")
    if settings.steps is not None and not 1 <= settings.steps <= BOUNDS["steps"].high:
        raise SweepError(f"--steps must be between 1 and {int(BOUNDS['steps'].high):,}, got {settings.steps}")
    if settings.scheduler not in ("asha", "fifo"):
        raise SweepError(f"--scheduler must be asha or fifo, got {settings.scheduler!r}")
    if settings.search not in ("random", "tpe"):
        raise SweepError(f"--search must be random or tpe, got {settings.search!r}")
    if settings.concurrency is not None and settings.concurrency < 1:
        raise SweepError(f"--concurrency must be at least 1, got {settings.concurrency}")
    cpus = settings.cpus_per_trial
    if not (isinstance(cpus, (int, float)) and math.isfinite(cpus) and 0 < cpus <= 1024):
        raise SweepError(f"--cpus-per-trial must be a number above 0, got {cpus}")
    if settings.search == "tpe":
        try:
            import optuna  # noqa: F401
        except ImportError:
            raise SweepError("--search tpe needs optuna, which is not installed (pip install optuna)") from None
    base = settings.base_config()
    params = settings.space()
    check_space(params, base)
    words = data.load_words(settings.data) if settings.data else data.builtin_words()
    name = Path(settings.data).name if settings.data else "builtin"
    dataset = data.make_dataset(words, block_size=base.block_size, split_seed=base.split_seed, name=name)
    # The space's largest model, as many at once as run concurrently, refused by name.
    check_memory(dataset.vocab.size, largest_config(params, base), copies=trials_at_once(settings))
    return Prepared(settings, base, params, dataset, list(words))


def trials_at_once(settings: SweepSettings) -> int:
    """How many trials run concurrently on a local Ray: --concurrency, else one per CPU (at most --trials)."""
    cpus = max(1, int((os.cpu_count() or 1) / max(settings.cpus_per_trial, 1e-9)))
    return max(1, min(settings.concurrency or cpus, settings.trials))


def load_settings(sweep_dir: str | Path) -> SweepSettings:
    path = Path(sweep_dir) / SETTINGS_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise SweepError(f"{sweep_dir} is not a sweep directory (no {SETTINGS_FILE})") from None
    except (OSError, ValueError) as exc:
        raise SweepError(f"cannot read {path}: {exc}") from None
    return settings_from_json(raw, path)


# The JSON type of each sweep.json field (None: may be null): a hand-edited or damaged file is refused by name.
_SETTING_TYPES: dict[str, tuple[type, ...]] = {
    "data": (str, type(None)),
    "preset": (str,),
    "trials": (int,),
    "steps": (int, type(None)),
    "params": (list,),
    "scheduler": (str,),
    "search": (str,),
    "concurrency": (int, type(None)),
    "cpus_per_trial": (int, float),
    "seed": (int,),
}


def settings_from_json(raw: Any, path: str | Path = SETTINGS_FILE) -> SweepSettings:
    """SweepSettings from sweep.json's object; a field of the wrong type is a SweepError naming it."""
    if not isinstance(raw, dict):
        raise SweepError(f"cannot read {path}: it holds {type(raw).__name__}, not an object of settings")
    unknown = sorted(set(raw) - set(_SETTING_TYPES))
    if unknown:
        raise SweepError(f"cannot read {path}: unknown setting {unknown[0]!r}")
    for name, value in raw.items():
        types = _SETTING_TYPES[name]
        ok = isinstance(value, types) and not isinstance(value, bool)
        if name == "params":
            ok = ok and all(isinstance(v, str) for v in value)
        if not ok:
            want = {"data": "a path or null", "preset": "a preset name", "params": "a list of FIELD=... strings"}
            what = want.get(name, "a number" if float in types else "a whole number")
            raise SweepError(f"cannot read {path}: {name} must be {what}, got {json.dumps(value)}")
    return SweepSettings(**raw)


def sweep_words(sweep_dir: str | Path) -> list[str]:
    """The words a sweep trained on, whoever started it: its words.txt, else the data its sweep.json names."""
    own = Path(sweep_dir) / WORDS_FILE
    if own.is_file():
        return data.load_words(own)
    settings = load_settings(sweep_dir)
    return data.load_words(settings.data) if settings.data else data.builtin_words()


def driver_alive(summary: dict[str, Any]) -> bool | None:
    """Whether the driver that wrote this summary still runs; None when the summary does not say who it was."""
    pid, started = summary.get("driver_pid"), summary.get("driver_start")
    if not isinstance(pid, int) or not isinstance(started, int):
        return None
    return process_start(pid) == started


def read_summary(sweep_dir: str | Path) -> dict[str, Any] | None:
    """The sweep's summary.json, or None while there is none (or it cannot be read)."""
    try:
        return json.loads((Path(sweep_dir) / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, obj: Any) -> None:
    """Atomically: a reader (the dashboard) never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(_finite(obj), f, allow_nan=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_bytes(path: Path, raw: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(raw)
    os.replace(tmp, path)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _best(trials: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The finished trial with the lowest final dev loss (its checkpoint holds exactly those weights)."""
    done = [t for t in trials.values() if t.get("checkpoint") and t.get("dev_loss") is not None]
    if not done:
        return None
    best = min(done, key=lambda t: t["dev_loss"])
    return {"id": best["id"], "dev_loss": best["dev_loss"], "steps": best["steps"], "config": best["config"]}


def mark_failed(out: str | Path, message: str) -> None:
    """Record in summary.json that the driver stopped with an error (the dashboard shows it)."""
    summary = read_summary(out)
    if summary is not None:
        summary.update(state="failed", error=message)
        with contextlib.suppress(OSError):
            _write_json(Path(out) / SUMMARY_FILE, summary)


__all__ = [
    "BEST_FILE",
    "SETTINGS_FILE",
    "SUMMARY_FILE",
    "Prepared",
    "SweepSettings",
    "load_settings",
    "mark_failed",
    "prepare",
    "read_summary",
]
