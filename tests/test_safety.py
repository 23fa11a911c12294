"""Issue 5, core and CLI: hostile files, absurd settings and interrupted work never crash, run code or lose data."""

from __future__ import annotations

import math
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_checkpoint import HOSTILE, Evil

from mlp_core import cli, data
from mlp_core.checkpoint import CheckpointError, checkpoint_bytes, load_checkpoint, save_checkpoint
from mlp_core.config import BOUNDS, ConfigError, TrainConfig
from mlp_core.job import TrainingJob
from mlp_core.model import build_model
from mlp_core.sampling import sample_names
from mlp_core.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"emb_dim": 4, "hidden": 16, "steps": 40, "eval_every": 20, "device": "cpu"}


# ---------------------------------------------------------------------------- 1. hostile checkpoints, via the CLI
@pytest.fixture(scope="module")
def good_raw(tiny_dataset) -> bytes:
    config = TrainConfig(**SMALL)
    return checkpoint_bytes(build_model(tiny_dataset.vocab.size, config), config, tiny_dataset.vocab)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_cli_refuses_every_hostile_checkpoint_in_one_line(case, good_raw, tmp_path, capsys):
    make = HOSTILE[case][0]
    path = tmp_path / "hostile.safetensors"
    path.write_bytes(make(good_raw, load_checkpoint(good_raw).model))
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(path)
    assert cli.main(["sample", "--checkpoint", str(path), "--n", "3"]) == 2
    # The user reads the loader's own reason, on one line.
    assert one_line_error(capsys) == f"error: {str(refused.value).splitlines()[0]}"


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
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: ") and "pickled PyTorch file" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not marker.exists(), "the pickle's code ran"


def test_hostile_checkpoint_leaves_a_training_run_untouched(tiny_dataset, good_raw, tmp_path):
    job = TrainingJob(TrainConfig(**{**SMALL, "steps": 1_000_000}), tiny_dataset)
    job.start()
    try:
        deadline = time.monotonic() + 60
        while job.snapshot().step == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        marker = tmp_path / "pwned"
        for raw in (pickle.dumps(Evil(marker)), good_raw[:-9], b"\x00" * 64):
            with pytest.raises(CheckpointError):
                load_checkpoint(raw)
        step = job.snapshot().step
        while job.snapshot().step == step and time.monotonic() < deadline:
            time.sleep(0.01)
        assert job.status == "running" and job.snapshot().step > step
        assert not marker.exists()
    finally:
        assert job.stop(5)


# ---------------------------------------------------------------------------- 2. hostile datasets, property-based
def assert_loads_predictably(raw: bytes) -> None:
    try:
        words = data.parse_words(raw, "prop")
    except data.DatasetError as exc:
        assert str(exc).startswith("prop: ") or "prop" in str(exc)
        return
    assert words and all(w and w == w.strip() and "." not in w for w in words)
    assert all(len(w) <= data.MAX_WORD_CHARS for w in words)
    assert len(set("".join(words))) <= data.MAX_DISTINCT_CHARS
    if len(words) >= 3:
        ds = data.make_dataset(words, block_size=3)
        assert sum(len(y) for _, y in ds.splits.values()) == sum(len(w) + 1 for w in words)


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
@given(st.lists(st.text(alphabet="abcxyz ABC\t\r\x00é", min_size=0, max_size=80), max_size=50))
def test_lines_with_nuls_spaces_and_long_lines(lines):
    assert_loads_predictably("\n".join(lines).encode())


def test_edge_files():
    assert data.parse_words(b"a\n", "one") == ["a"]
    with pytest.raises(data.DatasetError, match="line 1 has 100000 characters"):
        data.parse_words(b"a" * 100_000, "huge line")
    many = "\n".join(chr(0x4E00 + i) for i in range(10_000)).encode()
    with pytest.raises(data.DatasetError, match="10000 distinct characters; the limit is 100"):
        data.parse_words(many, "cjk")
    with pytest.raises(data.DatasetError, match="binary"):
        data.parse_words(b"emma\x00\nolivia", "nul")


def test_a_100_mb_upload_is_refused_by_size_before_decoding():
    raw = b"a\n" * 50_000_001  # 100 MB
    start = time.process_time()
    with pytest.raises(data.DatasetError, match="over the 20,000,000-byte limit"):
        data.parse_words(raw, "upload")
    assert time.process_time() - start < 5  # refused without decoding 100 MB (a guard, not a benchmark)


# ---------------------------------------------------------------------------- 3. absurd settings
EDGES = [
    ("block_size", 1),
    ("block_size", 32),
    ("emb_dim", 1),
    ("hidden", 1),
    ("hidden_layers", 4),
    ("batch_size", 1),
    ("batch_size", 5000),  # larger than the tiny training split
    ("lr", 1e-9),
    ("lr", 100.0),
    ("steps", 0),
    ("dropout", 0.9),
    ("eval_every", 1),
    ("weight_decay", 10.0),
]


@pytest.mark.parametrize(("name", "value"), EDGES)
def test_settings_at_the_bounds_run_or_diverge_cleanly(name, value, tiny_dataset):
    config = TrainConfig(**{**SMALL, "steps": 20, "eval_every": 10, name: value})
    trainer = Trainer(config, tiny_dataset)
    while not trainer.finished:
        trainer.advance(10)
    model = trainer.best_model()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    names = sample_names(model, tiny_dataset.vocab, 3, max_len=8)
    assert len(names) == 3
    if trainer.diverged_at is None:
        assert trainer.step == config.steps


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_settings_past_the_bounds_are_refused_by_name(name):
    bound = BOUNDS[name]
    for bad in (bound.low - 1, bound.high * 2 + 1):
        with pytest.raises(ConfigError, match=name):
            TrainConfig(**{name: bad})


def test_a_diverging_job_says_so_and_keeps_its_last_good_weights(tiny_dataset):
    # sgd with lr 1 and weight decay 10 multiplies the weights by -9 per step: overflow within ~40 steps.
    config = TrainConfig(**{**SMALL, "steps": 10_000, "lr": 1.0, "weight_decay": 10.0, "init": "scaled"})
    job = TrainingJob(config, tiny_dataset)
    job.start()
    assert job.wait(60)
    snap = job.snapshot()
    assert snap.status == "diverged"
    assert snap.message.startswith(f"diverged at step {job.trainer.diverged_at}")
    model = job.current_model()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert len(sample_names(model, tiny_dataset.vocab, 5, max_len=8)) == 5


# ---------------------------------------------------------------------------- 4. interrupted work
WRITER = """
import sys, torch
from mlp_core.checkpoint import save_checkpoint
from mlp_core.config import TrainConfig
from mlp_core.data import Vocab
from mlp_core.model import build_model
vocab = Vocab(tuple("abcdefghijklmnopqrstuvwxyz"))
config = TrainConfig(hidden=2048, emb_dim=32, block_size=8)
model = build_model(vocab.size, config)
print("ready", flush=True)
i = 0
while True:
    i += 1
    with torch.no_grad():
        model.b2.fill_(float(i))
    save_checkpoint(sys.argv[1], model, config, vocab, {"step": i})
"""


@pytest.mark.slow
def test_killing_a_checkpoint_writer_never_leaves_a_torn_file(tmp_path):
    target = tmp_path / "model.safetensors"
    rng = random.Random(0)
    for _ in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(target)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.6))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        if target.exists():
            ckpt = load_checkpoint(target)  # the old file or the new one, whole
            step = ckpt.meta["step"]
            assert ckpt.model.b2[0].item() == step
    assert target.exists(), "no checkpoint was ever completed"
    leftovers = [p.name for p in tmp_path.iterdir() if p != target]
    assert all(p.startswith(".model.safetensors.") for p in leftovers), leftovers


def test_stopping_mid_chunk_leaves_a_consistent_model_that_samples(tiny_dataset):
    rng = random.Random(1)
    job = TrainingJob(TrainConfig(**{**SMALL, "steps": 10_000_000}), tiny_dataset)
    for _ in range(5):
        job.resume() if job.status != "idle" else job.start()
        time.sleep(rng.uniform(0.0, 0.2))
        assert job.stop(5)
        for model in (job.current_model(), job.best_model()):
            assert all(torch.isfinite(p).all() for p in model.parameters())
            assert len(sample_names(model, tiny_dataset.vocab, 3, max_len=8)) == 3
    # The published weights are exactly the trainer's after the stop: nothing half-applied.
    state = job.trainer.model.state_dict()
    assert all(torch.equal(state[k].cpu(), v) for k, v in job.current_model().state_dict().items())
    assert math.isfinite(job.snapshot().last_loss)


def test_save_checkpoint_to_an_unwritable_place_is_a_clear_error(tiny_dataset, tmp_path):
    config = TrainConfig(**SMALL)
    model = build_model(tiny_dataset.vocab.size, config)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CheckpointError, match="cannot write checkpoint"):
        save_checkpoint(blocker / "sub" / "m.safetensors", model, config, tiny_dataset.vocab)
