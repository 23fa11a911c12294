"""Hyperparameter sweeps on Ray Tune: the driver, with the Trainer as a trial.

Ray is the engine at the edge: this is the one module that imports it (lazily, so `mlp_core` works
without it). A trial is `_trial`, a function of a config dict that runs the project's own `Trainer`
and reports the dev loss at every evaluation point; scheduling, early stopping (ASHA), retries,
resume and placement on a cluster are Ray's. The search space is `sweep_space`, the directory the
driver fills is `sweep_store` (both re-exported here: `from mlp_core.sweep import ...` keeps working).

The weights travel to the driver inside the trial's last result (a few hundred KB at most), not
through a filesystem: a worker on another machine needs no shared storage for `--out` to fill.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from . import data
from .config import to_dict
from .sweep_space import (  # noqa: F401 (re-exported)
    NOT_SWEPT,
    Param,
    SweepError,
    check_space,
    largest_config,
    parse_param,
    sweepable_fields,
    tune_space,
)
from .sweep_store import (  # noqa: F401 (re-exported)
    BEST_FILE,
    MAX_TRIALS,
    RAY_DIR,
    SETTINGS_FILE,
    SUMMARY_FILE,
    TRIALS_DIR,
    WORDS_FILE,
    Prepared,
    SweepSettings,
    _best,
    _finite,
    _write_bytes,
    _write_json,
    driver_alive,
    load_settings,
    mark_failed,
    prepare,
    process_start,
    read_summary,
    settings_from_json,
    sweep_words,
    trials_at_once,
)

METRIC = "dev_loss"
ADDRESS_TIMEOUT_S = 20.0  # TCP check + Ray's own connect; the whole give-up stays under 30 s
OBJECT_STORE_BYTES = 128 * 1024**2  # the dataset is the only big object (~15 MB at block size 8)


# ---------------------------------------------------------------------------- the trial (runs on a Ray worker)
def _trial(
    config: dict[str, Any],
    dataset: data.NamesDataset,
    base: dict[str, Any],
    threads: int,
    tracking: dict[str, str] | None = None,
) -> None:
    """One trial: the project's Trainer, a report at every evaluation point, the final weights in the last one.

    With `tracking` (the store's URI, the sweep's run id, the dataset's source), the trial is also a child run of
    its sweep's run in the run store, recorded like any other run (mlp_core.recorder).
    """
    import ray
    import torch
    from ray import tune

    from .checkpoint import checkpoint_bytes
    from .config import from_dict
    from .trainer import Trainer

    info = {"node": ray.get_runtime_context().get_node_id(), "pid": os.getpid(), "started": time.time()}
    torch.set_num_threads(threads)
    cfg = from_dict({**base, **config})
    trainer = Trainer(cfg, dataset, diagnostics_every=0)  # no activation probes: a sweep only needs dev loss
    recorder = _trial_recorder(tracking, cfg, dataset)
    status = "stopped"  # unless it ends below: ASHA stopped it (the actor is torn down mid-trial)
    try:
        while not trainer.finished:
            first = trainer.step
            result = trainer.advance(cfg.steps)
            if recorder is not None:
                recorder.observe(trainer, first, result)
            if trainer.diverged_at is not None:
                status = "diverged"
                if recorder is not None:
                    recorder.close(trainer, status)
                    recorder = None
                reason = f"diverged at step {trainer.diverged_at}"
                tune.report({"step": trainer.step, METRIC: math.inf, "stop_reason": reason, **info})
                return
            point = result.evaluated
            if point is None:
                continue
            metrics = {"step": trainer.step, METRIC: point.dev_loss, "train_loss": point.train_loss, **info}
            if trainer.finished:
                status = "finished"
                meta = {"step": trainer.step, "dev_loss": point.dev_loss, "dataset_fingerprint": dataset.fingerprint}
                metrics["weights"] = checkpoint_bytes(trainer.model, cfg, trainer.dataset.vocab, meta)
                metrics["done_training"] = True
            if recorder is not None and trainer.finished:
                recorder.close(trainer, status)
                recorder = None
            tune.report(metrics)
    finally:
        if recorder is not None:
            # Stopped by the scheduler (an exception out of tune.report): the writer finishes in the background.
            # Waiting here kept the actor busy when Ray wanted it for the next trial ("Could not re-use actor"),
            # and the sweep ended with that trial unfinished.
            recorder.close(trainer, status, timeout=0.0)


def _trial_recorder(tracking: dict[str, str] | None, cfg: Any, dataset: data.NamesDataset) -> Any:
    if not tracking:
        return None
    from ray import tune

    from .recorder import RunRecorder, Tracking
    from .store import TAG, run_params

    trial = tune.get_context().get_trial_name() or "trial"
    tags = {"mlflow.parentRunId": tracking["parent"], f"{TAG}source": "sweep", f"{TAG}sweep": tracking["sweep"]}
    params = run_params(cfg, tracking["dataset_name"], tracking["source"], dataset.words)
    return RunRecorder(Tracking(tracking["uri"], None, trial, params, tags), cfg.steps)


def _sweep_run(prepared: Prepared, out: Path, summary: dict[str, Any], address: str | None) -> dict[str, str] | None:
    """The sweep's own run in the store (its trials are child runs), created once and kept across --resume.

    Trials write to the store from Ray's workers: a local SQLite store is reachable only from a local Ray.
    None (and a line on stderr) when the sweep is not tracked or the store cannot be used.
    """
    import sys

    from .store import TAG, RunStore, StoreError, tracking_uri

    if os.environ.get("MLP_TRACK", "1") == "0":
        return None
    store = RunStore(tracking_uri())
    if address and store.local:
        print("sweep: trials on a Ray cluster are not recorded in a local run store (set MLFLOW_TRACKING_URI)",
              file=sys.stderr)  # fmt: skip
        return None
    s = prepared.settings
    source = f"file:{Path(s.data).resolve()}" if s.data else "lecture"
    try:
        parent = summary.get("store_run_id")
        if not parent:
            params = {"trials": s.trials, "steps": s.steps, "params": " ".join(s.params), "preset": s.preset}
            parent = store.create_run(f"sweep {out.name}", params, {f"{TAG}source": "sweep-driver"})
            summary["store_run_id"] = parent
    except StoreError as exc:
        print(f"sweep: not recorded in the run store: {exc}", file=sys.stderr)
        return None
    name = Path(s.data).name if s.data else "names.txt (lecture)"
    return {"uri": store.uri, "parent": parent, "sweep": out.name, "source": source, "dataset_name": name}


# ---------------------------------------------------------------------------- the driver's record
class _Active:
    """The running sweep's driver-side state; the Ray callback (pickled into Ray's state) looks it up here."""

    out: Path | None = None
    on_change: Callable[[dict[str, Any]], None] | None = None


def _make_recorder(base_cls: type) -> type:
    class Recorder(base_cls):  # type: ignore[misc, valid-type]
        """Keeps summary.json and the trials' checkpoints up to date, on the driver, from Tune's events."""

        def __init__(self) -> None:
            self._summary: dict[str, Any] | None = None
            self._last_write = 0.0

        def __getstate__(self) -> dict[str, Any]:
            return {}  # Tune pickles its callbacks into the experiment; the state lives in summary.json

        def __setstate__(self, state: dict[str, Any]) -> None:
            self.__init__()

        # -- helpers
        @property
        def summary(self) -> dict[str, Any]:
            if self._summary is None:
                self._summary = read_summary(_Active.out) or {"trials": {}}
                self._summary.setdefault("trials", {})
            return self._summary

        def _entry(self, trial: Any) -> dict[str, Any]:
            entry = self.summary["trials"].setdefault(
                trial.trial_id, {"id": trial.trial_id, "status": "pending", "steps": 0, "curve": [], "retries": 0}
            )
            entry["config"] = {k: v for k, v in trial.config.items()}
            return entry

        def _save(self, force: bool = False) -> None:
            now = time.time()
            if not force and now - self._last_write < 0.5:
                return
            self._last_write = now
            self.summary["updated"] = now
            self.summary["best"] = _best(self.summary["trials"])
            _write_json(_Active.out / SUMMARY_FILE, self.summary)
            if _Active.on_change is not None:
                _Active.on_change(self.summary)

        # -- Tune's events
        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            entry = self._entry(trial)
            entry.update(status="running", curve=[], steps=0, reason=None)
            self._save(force=True)

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            entry = self._entry(trial)
            weights = result.pop("weights", None)  # Tune lets callbacks edit the result: keep bytes out of its logs
            step = int(result.get("step", 0))
            dev = result.get(METRIC)
            entry.update(steps=step, node=result.get("node"), pid=result.get("pid"), started=result.get("started"))
            if "stop_reason" in result:
                entry["reason"] = result["stop_reason"]
            elif dev is not None:
                entry["curve"].append([step, dev, time.time()])  # [step, dev loss, wall time]
                entry["dev_loss"] = dev
                entry["train_loss"] = result.get("train_loss")
            if weights is not None:
                path = _Active.out / TRIALS_DIR / f"{trial.trial_id}.safetensors"
                path.parent.mkdir(exist_ok=True)
                _write_bytes(path, weights)
                entry["checkpoint"] = str(path.relative_to(_Active.out))
                entry["done_training"] = True
            self._save(force=weights is not None)

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            entry = self._entry(trial)
            if entry.get("done_training"):
                entry["status"] = "completed"
            else:
                entry["status"] = "stopped"
                entry.setdefault("reason", None)
                entry["reason"] = entry["reason"] or f"stopped early by the scheduler at step {entry['steps']}"
            entry["finished"] = time.time()
            self._save(force=True)

        def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            entry = self._entry(trial)
            entry["retries"] = entry.get("retries", 0) + 1
            entry.update(status="retrying", reason=f"worker failed, retry {entry['retries']}: {_error_line(trial)}")
            self._save(force=True)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            entry = self._entry(trial)
            entry.update(status="errored", reason=_error_line(trial), finished=time.time())
            self._save(force=True)

        def on_experiment_end(self, trials: list, **info: Any) -> None:
            self._save(force=True)

    return Recorder


def _error_line(trial: Any) -> str:
    """The last line of a trial's traceback (its error's message)."""
    with contextlib.suppress(Exception):
        lines = [ln.strip() for ln in Path(trial.error_file).read_text().splitlines() if ln.strip()]
        if lines:
            return lines[-1][:300]
    return "the trial failed"


# ---------------------------------------------------------------------------- connecting to Ray
def check_address(address: str, what: str = "--address") -> None:
    """A host:port that does not answer is reported in seconds, not after Ray's minute of retries; `what` names
    where the address came from in the message (the CLI's flag, or MLP_RAY_ADDRESS for a dashboard)."""
    match = re.fullmatch(r"(?:ray://)?\[?([^\]]+?)\]?:(\d+)", address.strip())
    if match is None:
        if address.strip() == "auto":
            return
        raise SweepError(f"{what} must look like HOST:PORT (or auto), got {address!r}")
    host, port = match.group(1), int(match.group(2))
    try:
        with socket.create_connection((host, port), timeout=min(10.0, ADDRESS_TIMEOUT_S)):
            pass
    except OSError as exc:
        raise SweepError(f"cannot reach a Ray cluster at {address}: {exc.strerror or exc}") from None


def _local_env() -> None:
    """Keep a local Ray on loopback only (a Ray head reachable from the network is the ShadowRay hole).

    Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 as "local only" and then takes 127.0.0.1 as the node
    address for every process it starts (they inherit this environment); measured with Ray 2.60: without
    it, even with _node_ip_address="127.0.0.1", Ray listens on all interfaces.
    """
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray._private.ray_constants as rc

    rc.ENABLE_RAY_CLUSTER = False  # the constant is read once at import; this process may have imported Ray


def _quiet_env() -> None:
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # no experiment banner / result tables on stdout
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # summary.json is our log
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")  # a killed driver loses at most ~2 s of state
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_gcs_rpc_server_reconnect_timeout_s", str(int(ADDRESS_TIMEOUT_S)))
    import logging

    for name in ("ray", "ray.tune", "ray.train", "ray.air"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _connect(address: str | None, num_cpus: int, what: str = "--address") -> str:
    """ray.init locally (loopback only) or against a cluster; returns the address for the summary."""
    import mlp_core

    _quiet_env()
    if address:
        check_address(address, what)
    else:
        _local_env()
    import ray

    runtime_env = {"py_modules": [mlp_core], "excludes": ["__pycache__", "*.pyc"]}
    common = dict(log_to_driver=False, logging_level="ERROR", runtime_env=runtime_env, include_dashboard=False)
    if address:
        try:
            ray.init(address=address, **common)
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ... depending on how it failed
            raise SweepError(f"cannot join the Ray cluster at {address}: {str(exc).strip().splitlines()[0]}") from None
        return address
    env_address = os.environ.pop("RAY_ADDRESS", None)  # local means local, whatever the shell exported
    try:
        ray.init(num_cpus=num_cpus, object_store_memory=OBJECT_STORE_BYTES, **common)
    finally:
        if env_address is not None:
            os.environ["RAY_ADDRESS"] = env_address
    return ray.get_runtime_context().gcs_address


# ---------------------------------------------------------------------------- running a sweep
def start(prepared: Prepared, out: str | Path, *, overwrite: bool = False) -> None:
    """Create the sweep directory with its settings (nothing of Ray yet)."""
    settings, out = prepared.settings, Path(out)
    if (out / SETTINGS_FILE).exists() and not overwrite:
        raise SweepError(f"{out} already holds a sweep; continue it with --resume {out} or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    if settings.data and Path(settings.data).resolve() != (out / WORDS_FILE).resolve():
        data.write_words(prepared.words, out / WORDS_FILE)  # the directory holds its data: loadable anywhere
    _write_json(out / SETTINGS_FILE, asdict(settings))


def run(
    prepared: Prepared,
    out: str | Path,
    *,
    address: str | None = None,
    resume: bool = False,
    on_change: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run (or resume) the sweep to the end; returns the final summary (the CLI's --json object)."""
    s, out = prepared.settings, Path(out).resolve()
    t0 = time.perf_counter()
    # Local Ray gets the CPUs the trials ask for: concurrency x cpus-per-trial, else the machine's (at least
    # one trial's worth, or a trial asking for more CPUs than the machine has would wait forever).
    asked = math.ceil(s.cpus_per_trial * s.concurrency) if s.concurrency else 0
    local_cpus = asked or max(os.cpu_count() or 1, math.ceil(s.cpus_per_trial))
    connected = _connect(address, local_cpus)
    import ray

    try:
        summary = _run_tune(prepared, out, resume, on_change, connected if address else None)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        cluster = {
            "address": connected,
            "nodes": len(nodes),
            "cpus": ray.cluster_resources().get("CPU", 0),
        }
    finally:
        ray.shutdown()
    return _final(summary, out, cluster, time.perf_counter() - t0)


def _run_tune(
    prepared: Prepared,
    out: Path,
    resume: bool,
    on_change: Callable[[dict[str, Any]], None] | None,
    address: str | None = None,
) -> dict[str, Any]:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

    s, base = prepared.settings, prepared.base
    Recorder = _make_recorder(tune.Callback)
    _Active.out, _Active.on_change = out, on_change
    summary = read_summary(out) or {}
    summary.update(settings=asdict(s), state="running", trials=summary.get("trials", {}))
    # Who drives it: a reader tells a live driver from one killed with SIGKILL (its summary still says running).
    summary.update(driver_pid=os.getpid(), driver_start=process_start(os.getpid()), error=None)
    summary.setdefault("started", time.time())
    tracking = _sweep_run(prepared, out, summary, address)
    _write_json(out / SUMMARY_FILE, summary)

    threads = max(1, int(s.cpus_per_trial))
    trainable = tune.with_resources(
        tune.with_parameters(_trial, dataset=prepared.dataset, base=to_dict(base), threads=threads, tracking=tracking),
        {"cpu": s.cpus_per_trial},
    )
    ray_dir = out / RAY_DIR
    try:
        if resume:
            if not tune.Tuner.can_restore(str(ray_dir)):
                raise SweepError(f"{out} has no Ray experiment state to resume (did the sweep start?)")
            tuner = tune.Tuner.restore(str(ray_dir), trainable, resume_unfinished=True, resume_errored=True)
        else:
            max_steps = max([base.steps] + [int(p.high) for p in prepared.params if p.field == "steps" and p.high])
            if s.scheduler == "asha":
                grace = max(1, min(max_steps, base.eval_every, max_steps // 4 or 1))
                scheduler = ASHAScheduler(time_attr="step", max_t=max_steps, grace_period=grace, reduction_factor=2)
            else:
                scheduler = FIFOScheduler()
            if s.search == "tpe":
                from ray.tune.search.optuna import OptunaSearch

                search = OptunaSearch(seed=s.seed)
                if s.concurrency:
                    search = ConcurrencyLimiter(search, max_concurrent=s.concurrency)
            else:
                search = BasicVariantGenerator(random_state=s.seed, max_concurrent=s.concurrency or 0)
            tuner = tune.Tuner(
                trainable,
                param_space=tune_space(prepared.params),
                tune_config=tune.TuneConfig(
                    metric=METRIC,
                    mode="min",
                    num_samples=s.trials,
                    scheduler=scheduler,
                    search_alg=search,
                    reuse_actors=True,
                ),
                run_config=tune.RunConfig(
                    name=RAY_DIR,
                    storage_path=str(out),
                    verbose=0,
                    callbacks=[Recorder()],
                    # Retry a trial whose worker died; fail_fast stays off (it would make the run unrestorable).
                    failure_config=tune.FailureConfig(max_failures=3, fail_fast=False),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                ),
            )
        tuner.fit()
    finally:
        _Active.out, _Active.on_change = None, None
    summary = read_summary(out) or summary
    ended = sum(t.get("status") in ("completed", "stopped", "errored") for t in summary["trials"].values())
    # Tune ends fit() quietly on Ctrl-C / SIGINT (the dashboard's Stop): the state on disk stays resumable.
    summary["state"] = "finished" if ended >= s.trials else "interrupted"
    _write_json(out / SUMMARY_FILE, summary)
    return summary


def _final(summary: dict[str, Any], out: Path, cluster: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The CLI's --json object; also copies the best trial's checkpoint to best.safetensors."""
    trials = list(summary.get("trials", {}).values())
    best = _best(summary.get("trials", {}))
    best_path = None
    if best is not None:
        src = out / summary["trials"][best["id"]]["checkpoint"]
        best_path = out / BEST_FILE
        shutil.copyfile(src, best_path)
    base = SweepSettings(**summary["settings"]).base_config()
    result = {
        "trials": len(trials),
        "completed": sum(t["status"] == "completed" for t in trials),
        "stopped_early": sum(t["status"] == "stopped" for t in trials),
        "errored": sum(t["status"] == "errored" for t in trials),
        "best_dev_loss": best["dev_loss"] if best else None,
        "best_config": to_dict(base.replace(**best["config"])) if best else None,
        "best_steps": best["steps"] if best else None,
        "best_checkpoint": str(best_path) if best_path else None,
        "seconds": round(seconds, 3),
        "nodes_used": len({t["node"] for t in trials if t.get("node")}),
        "cluster": cluster,
        "out": str(out),
    }
    summary["result"] = result
    _write_json(out / SUMMARY_FILE, summary)
    return result


__all__ = [
    "BEST_FILE",
    "SUMMARY_FILE",
    "Param",
    "SweepError",
    "SweepSettings",
    "check_address",
    "check_space",
    "load_settings",
    "parse_param",
    "prepare",
    "read_summary",
    "run",
    "start",
    "tune_space",
]
