"""Issue 5, core and CLI: hostile files, hostile data, absurd settings and bad flags never crash or run code.

Every case asserts what the user sees: the CLI exits 2 with exactly one stderr line ("error: ..." with the
reason), no traceback, and a code-running pickle's side effect never happens. Interrupted work (kills, stops,
Ctrl-C) is in test_interrupted.py; the loader's own refusals, message by message, in test_checkpoint.py.
"""

from __future__ import annotations

import math
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_checkpoint import HOSTILE, Evil
from test_cli import run_main

from mlp_core import cli, data
from mlp_core.checkpoint import PICKLE_MESSAGE, CheckpointError, checkpoint_bytes, load_checkpoint
from mlp_core.config import BOUNDS, ConfigError, TrainConfig
from mlp_core.job import TrainingJob
from mlp_core.model import build_model
from mlp_core.sampling import sample_names
from mlp_core.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"emb_dim": 4, "hidden": 16, "steps": 40, "eval_every": 20, "device": "cpu"}


def one_error_line(err: str) -> str:
    """The single stderr line of a refused command (and proof there is no traceback)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error: " in lines[0], err
    assert "Traceback" not in err
    return lines[0]


def finite(model: torch.nn.Module) -> bool:
    return all(torch.isfinite(p).all() for p in model.parameters())


# ---------------------------------------------------------------------------- 1. hostile checkpoints, via the CLI
@pytest.fixture(scope="module")
def good_raw(tiny_dataset) -> bytes:
    config = TrainConfig(**SMALL)
    return checkpoint_bytes(build_model(tiny_dataset.vocab.size, config), config, tiny_dataset.vocab, {"step": 3})


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_cli_refuses_every_hostile_checkpoint_in_one_line(case, good_raw, tmp_path, capsys):
    # The cases of test_checkpoint.py: pickles, torch.save files, random bytes, truncations, an absurd header
    # length, wrong shapes, a wrong vocabulary, missing/extra tensors, metadata that lies about the config...
    make = HOSTILE[case][0]
    path = tmp_path / "hostile.safetensors"
    path.write_bytes(make(good_raw, load_checkpoint(good_raw).model))
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(path)
    code, out, err = run_main(["sample", "--checkpoint", str(path), "--n", "3"], capsys)
    assert code == 2 and out == ""
    # The user reads the loader's own reason, on one line.
    assert one_error_line(err) == f"error: {str(refused.value).splitlines()[0]}"


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_code_running_pickle_is_refused_by_the_cli_and_never_runs(protocol, tmp_path, capsys):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps(Evil(marker), protocol=protocol))
    code, out, err = run_main(["sample", "--checkpoint", str(path)], capsys)
    assert code == 2 and out == ""
    line = one_error_line(err)
    # Protocol 0 has no magic bytes to recognise: it is refused as a broken safetensors header instead.
    assert (line == f"error: {PICKLE_MESSAGE}") if protocol else line.startswith("error: not a safetensors checkpoint")
    with pytest.raises(CheckpointError):  # --debug shows the traceback, and still runs nothing
        cli.main(["sample", "--checkpoint", str(path), "--debug"])
    assert not marker.exists(), "the pickle's code ran"


def test_code_running_pickle_never_runs_in_a_real_cli_process(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(Evil(marker)))
    done = subprocess.run(
        [sys.executable, "-m", "mlp_core", "sample", "--checkpoint", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [f"error: {PICKLE_MESSAGE}"]
    assert not marker.exists(), "the pickle's code ran"


def test_hostile_checkpoints_leave_a_training_run_untouched(tiny_dataset, good_raw, tmp_path, capsys):
    """Load every hostile file while a job trains: it keeps training, and ends with an undisturbed run's weights."""
    config = TrainConfig(**{**SMALL, "steps": 1_000_000, "eval_every": 500})
    job = TrainingJob(config, tiny_dataset)
    marker = tmp_path / "pwned"
    hostile = [make(good_raw, load_checkpoint(good_raw).model) for make, _ in HOSTILE.values()]
    hostile.append(pickle.dumps(Evil(marker)))
    path = tmp_path / "hostile.safetensors"
    job.start()
    try:
        deadline = time.monotonic() + 60
        while job.snapshot().step == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        step_before = job.snapshot().step
        for raw in hostile:
            with pytest.raises(CheckpointError):
                load_checkpoint(raw)
            path.write_bytes(raw)
            assert run_main(["sample", "--checkpoint", str(path)], capsys)[0] == 2
        assert load_checkpoint(good_raw).meta["step"] == 3  # a good file loads beside the run too
        while job.snapshot().step == step_before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert job.status == "running" and job.snapshot().step > step_before
    finally:
        assert job.stop(10)
    assert not marker.exists()
    # Training is deterministic for its seed whatever the chunking: the weights are exactly those of a run
    # that never saw a hostile file.
    at = job.current_weights()  # the worker's last weights and their step
    assert at.step > step_before
    reference = Trainer(config, tiny_dataset)
    while reference.step < at.step:
        reference.advance(at.step - reference.step)
    live = at.model.state_dict()
    assert all(torch.equal(live[k], v) for k, v in reference.model.state_dict().items())


# ---------------------------------------------------------------------------- 2. hostile datasets, property-based
def assert_loads_predictably(raw: bytes) -> None:
    """Either well-formed words (and a dataset when there are 3+), or a DatasetError naming the source."""
    try:
        words = data.parse_words(raw, "prop.txt")
    except data.DatasetError as exc:
        assert str(exc).startswith("prop.txt: ") and "\n" not in str(exc)
        return
    assert words and all(w and w == w.strip() and "." not in w for w in words)
    assert all(len(w) <= data.MAX_WORD_CHARS for w in words)
    assert len(set("".join(words))) <= data.MAX_DISTINCT_CHARS
    if len(words) >= 3:
        ds = data.make_dataset(words, block_size=3)
        assert sum(len(y) for _, y in ds.splits.values()) == sum(len(w) + 1 for w in words)
        assert ds.vocab.size == len(set("".join(words))) + 1


FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.binary(max_size=2000))
def test_random_bytes_load_or_fail_clearly(raw):
    assert_loads_predictably(raw)


@FAST
@given(st.text(max_size=500), st.sampled_from(["utf-8", "latin-1", "utf-16", "utf-8-sig"]))
def test_any_text_in_any_encoding_loads_or_fails_clearly(text, encoding):
    assert_loads_predictably(text.encode(encoding, errors="replace"))


@FAST
@given(st.lists(st.text(alphabet="abcxyz ABC\t\r\x00é.", min_size=0, max_size=80), max_size=50))
def test_lines_with_nuls_dots_spaces_and_long_lines(lines):
    assert_loads_predictably("\n".join(lines).encode())


@FAST
@given(st.lists(st.text(st.characters(codec="utf-8"), min_size=1, max_size=70), min_size=1, max_size=40))
def test_any_unicode_words_load_or_fail_clearly(words):
    assert_loads_predictably("\n".join(words).encode())


def test_edge_files():
    assert data.parse_words(b"a", "one") == ["a"]
    assert data.parse_words("\ufeffzoë\r\n".encode(), "bom") == ["zoë"]
    with pytest.raises(data.DatasetError, match="line 1 has 100000 characters; the limit is 64"):
        data.parse_words(b"a" * 100_000, "huge line")
    many = "\n".join(chr(0x4E00 + i) for i in range(10_000)).encode()
    limit = f"10,000 distinct characters; the limit is {data.MAX_DISTINCT_CHARS:,}"
    with pytest.raises(data.DatasetError, match=limit):
        data.parse_words(many, "cjk")
    with pytest.raises(data.DatasetError, match="need at least 3 words"):
        data.make_dataset(data.parse_words(b"a\nb\n", "two"))


def test_a_100_mb_upload_is_refused_by_size_before_decoding():
    raw = b"a\n" * 50_000_001  # 100 MB of good text
    with pytest.raises(data.DatasetError, match="upload: 100,000,002 bytes is over the 20,000,000-byte limit"):
        data.parse_words(raw, "upload")
    # The same size, starting with a NUL and a byte that is not UTF-8: the size is still the reason given, so
    # it was checked before the content was scanned or decoded.
    raw = b"\x00\xff" + raw[2:]
    with pytest.raises(data.DatasetError, match="over the 20,000,000-byte limit"):
        data.parse_words(raw, "upload")


# ---------------------------------------------------------------------------- 3. absurd settings
EDGES = {
    "block size 1": {"block_size": 1},
    "block size 32": {"block_size": 32},
    "emb dim 1": {"emb_dim": 1},
    "hidden 1": {"hidden": 1},
    "everything minimal": {"block_size": 1, "emb_dim": 1, "hidden": 1, "batch_size": 1},
    "hidden layers 4": {"hidden_layers": 4},
    "deepest, widest context, most dropout": {"block_size": 32, "hidden_layers": 4, "dropout": 0.9, "hidden": 64},
    "batch 1": {"batch_size": 1},
    "batch larger than the training split": {"batch_size": 5000},
    "lr 1e-9": {"lr": 1e-9},
    "lr 100": {"lr": 100.0},
    "lr 100 adamw": {"lr": 100.0, "optimizer": "adamw"},
    "steps 0": {"steps": 0},
    "dropout 0.9": {"dropout": 0.9},
    "eval every step": {"eval_every": 1},
    "weight decay 10": {"weight_decay": 10.0},
    "lr decays to 0 at once": {"decay_at": 0.0, "decay_factor": 0.0},
    "warm-up longer than the run": {"optimizer": "adamw", "schedule": "cosine", "warmup_steps": 1_000_000},
}


@pytest.mark.parametrize("changes", EDGES.values(), ids=EDGES.keys())
def test_settings_at_the_bounds_run_or_diverge_cleanly(changes, tiny_dataset):
    config = TrainConfig(**{**SMALL, "steps": 20, "eval_every": 10, **changes})
    trainer = Trainer(config, tiny_dataset)
    while not trainer.finished:
        trainer.advance(10)
    if trainer.diverged_at is None:
        assert trainer.step == config.steps
    assert finite(trainer.model) and finite(trainer.best_model())
    assert math.isfinite(trainer.evaluate("dev"))
    names = sample_names(trainer.best_model(), tiny_dataset.vocab, 3, max_len=8)
    assert len(names) == 3


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_settings_past_the_bounds_are_refused_by_name(name):
    bound = BOUNDS[name]
    for bad in (bound.low - 1, bound.high * 2 + 1, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match=f"^{name} must be"):
            TrainConfig(**{name: bad})


MAXIMA = {name: BOUNDS[name].high for name in ("block_size", "emb_dim", "hidden", "hidden_layers", "batch_size")}


def test_every_size_at_its_maximum_is_refused_before_allocating(tiny_dataset, monkeypatch, capsys, tmp_path):
    # Each is allowed alone; together they would need hundreds of GB, so the engine refuses with the numbers.
    monkeypatch.delenv("MLP_MAX_MEMORY_GB", raising=False)
    config = TrainConfig(**{**SMALL, **MAXIMA, "optimizer": "adamw"})
    with pytest.raises(ValueError, match=r"^this configuration needs about [\d.]+ GB of memory \(batch 65,536"):
        Trainer(config, tiny_dataset)
    words = tmp_path / "words.txt"
    words.write_text("emma\nava\nzoe\n")
    flags = [x for name, v in MAXIMA.items() for x in ("--" + name.replace("_", "-"), str(int(v)))]
    code, out, err = run_main(["train", "--data", str(words), *flags], capsys)
    assert code == 2 and out == ""
    assert one_error_line(err).startswith("error: this configuration needs about")


def test_a_diverging_job_says_so_and_keeps_its_last_good_weights(tiny_dataset):
    # sgd with lr 1 and weight decay 10 multiplies the weights by -9 per step: overflow within ~40 steps.
    config = TrainConfig(**{**SMALL, "steps": 10_000, "lr": 1.0, "weight_decay": 10.0, "init": "scaled"})
    job = TrainingJob(config, tiny_dataset)
    job.start()
    assert job.wait(60)
    snap = job.snapshot()
    assert snap.status == "diverged" and snap.step == snap.weights_step < snap.diverged_at
    assert snap.message.startswith(f"diverged at step {snap.diverged_at:,}: the loss became NaN/inf; kept the weights")
    for model in (job.current_model(), job.best_model()):
        assert finite(model)
        assert len(sample_names(model, tiny_dataset.vocab, 5, max_len=8)) == 5


def test_cli_trains_zero_steps_and_the_checkpoint_samples(tmp_path, capsys, tiny_words):
    words = tmp_path / "words.txt"
    words.write_text("\n".join(tiny_words[:50]))
    out = tmp_path / "zero.safetensors"
    argv = ["train", "--data", str(words), "--steps", "0", "--hidden", "1", "--emb-dim", "1", "--block-size", "32"]
    code, stdout, err = run_main([*argv, "--quiet", "--json", "--device", "cpu", "--out", str(out)], capsys)
    assert code == 0, err
    assert '"steps": 0' in stdout and load_checkpoint(out).meta["step"] == 0
    code, stdout, _ = run_main(["sample", "--checkpoint", str(out), "--n", "4", "--max-len", "5"], capsys)
    assert code == 0 and len(stdout.splitlines()) == 4


# ---------------------------------------------------------------------------- 5. every CLI error path: one line
@pytest.fixture(scope="module")
def cli_files(tmp_path_factory, tiny_dataset) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli_errors")
    config = TrainConfig(**SMALL)
    ckpt = d / "model.safetensors"
    ckpt.write_bytes(checkpoint_bytes(build_model(tiny_dataset.vocab.size, config), config, tiny_dataset.vocab))
    (d / "two.txt").write_text("emma\nava\n")
    (d / "accents.txt").write_text("zoë\nrenée\nava\n")
    (d / "afile").write_text("not a directory\n")
    return {"ckpt": ckpt, "two": d / "two.txt", "accents": d / "accents.txt", "afile": d / "afile", "dir": d}


USAGE = "(see --help)"
CLI_ERRORS = {
    # sample
    "sample --n 0": (["sample", "--checkpoint", "{ckpt}", "--n", "0"], "error: n must be between 1 and 100,000, got 0"),
    "sample --n too many": (["sample", "--checkpoint", "{ckpt}", "--n", "100001"], "error: n must be between 1"),
    "sample --n not a number": (["sample", "--checkpoint", "{ckpt}", "--n", "ten"], "invalid int value: 'ten'"),
    "sample --temperature 0": (
        ["sample", "--checkpoint", "{ckpt}", "--temperature", "0"],
        "error: temperature must be > 0 (and finite), got 0.0",
    ),
    "sample --temperature -1": (["sample", "--checkpoint", "{ckpt}", "--temperature", "-1"], "error: temperature"),
    "sample --temperature nan": (["sample", "--checkpoint", "{ckpt}", "--temperature", "nan"], "error: temperature"),
    "sample --temperature inf": (["sample", "--checkpoint", "{ckpt}", "--temperature", "inf"], "error: temperature"),
    "sample --prefix unknown chars": (
        ["sample", "--checkpoint", "{ckpt}", "--prefix", "Z9"],
        "error: prefix has character(s) the model does not know: '9Z'",
    ),
    "sample --prefix with the end marker": (
        ["sample", "--checkpoint", "{ckpt}", "--prefix", "a.b"],
        "error: prefix must not contain '.'",
    ),
    "sample --prefix longer than --max-len": (
        ["sample", "--checkpoint", "{ckpt}", "--prefix", "abc", "--max-len", "2"],
        "error: prefix has 3 characters, more than max_len=2",
    ),
    "sample --max-len 0": (
        ["sample", "--checkpoint", "{ckpt}", "--max-len", "0"],
        "error: max_len must be between 1 and 1,000, got 0",
    ),
    "sample --max-len huge": (["sample", "--checkpoint", "{ckpt}", "--max-len", "100000"], "error: max_len must be"),
    "sample --seed -1": (["sample", "--checkpoint", "{ckpt}", "--seed", "-1"], "error: seed must be between 0"),
    "sample --data with characters the model lacks": (
        ["sample", "--checkpoint", "{ckpt}", "--data", "{accents}"],
        "error: the data has characters the model's vocabulary lacks: ",
    ),
    "sample --data with two words": (
        ["sample", "--checkpoint", "{ckpt}", "--data", "{two}"],
        "error: need at least 3 words to split into train/dev/test, got 2",
    ),
    "sample --checkpoint a directory": (["sample", "--checkpoint", "{dir}"], "is a directory, not a checkpoint file"),
    "sample without --checkpoint": (["sample"], "the following arguments are required: --checkpoint"),
    # data build
    "data build --years one year": (
        ["data", "build", "--years", "1990", "--out", "{dir}/n.txt"],
        "error: --years must look like 1990-1999, got '1990'",
    ),
    "data build --years letters": (["data", "build", "--years", "a-b"], "error: --years must look like 1990-1999"),
    "data build --years three parts": (["data", "build", "--years", "1-2-3"], "error: --years must look like"),
    "data build --years reversed": (
        ["data", "build", "--years", "1999-1990", "--out", "{dir}/n.txt"],
        "error: years must satisfy 1880 <= from <= to <= 2017, got 1999-1990",
    ),
    "data build --decade not a decade": (
        ["data", "build", "--decade", "1995"],
        "error: --decade must be a decade's first year like 1990, got 1995",
    ),
    "data build --decade out of range": (
        ["data", "build", "--decade", "1700", "--out", "{dir}/n.txt"],
        "error: years must satisfy 1880 <= from <= to <= 2017, got 1700-1709",
    ),
    "data build --year in the future": (
        ["data", "build", "--year", "3000", "--out", "{dir}/n.txt"],
        "error: years must satisfy 1880 <= from <= to <= 2017, got 3000-3000",
    ),
    "data build --sex X": (["data", "build", "--sex", "X"], "argument --sex: invalid choice: 'X'"),
    "data build --out a directory": (["data", "build", "--out", "{dir}"], "error: cannot write {dir}: Is a directory"),
    "data build --out under a file": (
        ["data", "build", "--out", "{afile}/sub/n.txt"],
        "error: cannot write {afile}/sub/n.txt: Not a directory",
    ),
    # data info
    "data info --block-size 0": (["data", "info", "--block-size", "0"], "error: block_size must be between 1 and 32"),
    "data info --block-size huge": (
        ["data", "info", "--block-size", "100000"],
        "error: block_size must be between 1 and 32",
    ),
    "data info --split-seed -1": (["data", "info", "--split-seed", "-1"], "error: split_seed must be between 0"),
    "data info --data with two words": (["data", "info", "--data", "{two}"], "error: need at least 3 words"),
    # lr-find
    "lr-find --num 1": (
        ["lr-find", "--num", "1"],
        "error: --num (learning rates to try, one step each) must be between 2 and 1,000,000, got 1",
    ),
    "lr-find --num 0": (
        ["lr-find", "--num", "0"],
        "error: --num (learning rates to try, one step each) must be between 2",
    ),
    # Over the sweep's own bound but under the old one (steps' 10,000,000): the message named eval_every.
    "lr-find --num past the sweep's bound": (
        ["lr-find", "--num", "2000000"],
        "error: --num (learning rates to try, one step each) must be between 2 and 1,000,000, got 2,000,000",
    ),
    "lr-find --num too many": (
        ["lr-find", "--num", "100000000"],
        "error: --num (learning rates to try, one step each) must be between 2",
    ),
    "lr-find --start > --end": (
        ["lr-find", "--start", "0", "--end", "-1"],
        "error: --start must be less than --end (both finite), got 0.0 and -1.0",
    ),
    "lr-find --start == --end": (["lr-find", "--start", "-1", "--end", "-1"], "error: --start must be less than"),
    "lr-find --end inf": (["lr-find", "--end", "inf"], "error: --start must be less than --end (both finite)"),
    "lr-find --start nan": (["lr-find", "--start", "nan"], "error: --start must be less than --end (both finite)"),
    "lr-find --data with two words": (["lr-find", "--data", "{two}", "--num", "5"], "error: need at least 3 words"),
    # train
    "train --data with two words": (["train", "--data", "{two}"], "error: need at least 3 words"),
    "train --lr nan": (["train", "--lr", "nan"], "error: lr must be between 1e-09 and 100"),
    "train --lr inf": (["train", "--lr", "inf"], "error: lr must be between 1e-09 and 100"),
    "train --block-size 33": (["train", "--block-size", "33"], "error: block_size must be between 1 and 32"),
    "train --steps -1": (["train", "--steps", "-1"], "error: steps must be between 0 and 10,000,000"),
    "train --batch-size 0": (["train", "--batch-size", "0"], "error: batch_size must be between 1 and 65,536"),
    "train --dropout 1": (["train", "--dropout", "1"], "error: dropout must be between 0 and 0.9"),
    "train --hidden 1.5": (["train", "--hidden", "1.5"], "argument --hidden: invalid int value: '1.5'"),
    "train --device tpu": (["train", "--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    "train --out a directory": (
        ["train", "--data", "{accents}", "--steps", "1", "--hidden", "4", "--out", "{dir}", "--quiet"],
        "error: cannot write checkpoint {dir}: Is a directory",
    ),
    "train --out under a file": (
        [
            "train",
            "--data",
            "{accents}",
            "--steps",
            "1",
            "--hidden",
            "4",
            "--out",
            "{afile}/sub/m.safetensors",
            "--quiet",
        ],
        "error: cannot write checkpoint {afile}/sub/m.safetensors: Not a directory",
    ),
    "unknown command": (["fly"], "argument command: invalid choice: 'fly'"),
    "data without a subcommand": (["data"], "the following arguments are required: data_cmd"),
}


@pytest.mark.parametrize(("argv", "expected"), CLI_ERRORS.values(), ids=CLI_ERRORS.keys())
def test_every_cli_error_is_one_line_without_a_traceback(argv, expected, cli_files, capsys):
    argv = [a.format(**cli_files) for a in argv]
    code, out, err = run_main(argv, capsys)
    assert code == 2 and out == ""
    line = one_error_line(err)
    assert expected.format(**cli_files) in line
    if "invalid" in expected or "required" in expected:  # argparse's own refusals name the usage
        assert line.startswith("python -m mlp_core") and line.endswith(USAGE)
    else:
        assert line.startswith("error: ")
