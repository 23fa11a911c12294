"""Shared test fixtures."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

from mlp_core import data
from mlp_core.config import TrainConfig


def pytest_configure(config):
    # Runs the tests make go to a run store of their own, never to a developer's mlp_home/ or tracking server;
    # set in the environment so that the servers and CLI processes the tests start inherit it.
    os.environ["MLP_HOME"] = tempfile.mkdtemp(prefix="mlp-home-tests-")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    # One intra-op thread for the whole suite: the models here are tiny, and on a 2-core machine two OpenMP
    # threads spin against each other (test_trainer.py + test_job.py: 3.6 s with one thread, 6-9 s with two).
    torch.set_num_threads(1)


def pytest_unconfigure(config):
    shutil.rmtree(os.environ.get("MLP_HOME", ""), ignore_errors=True)


# ---------------------------------------------------------------------------- engine tests
# (test_trainer, test_job, test_lr_sweep, test_cli, test_safety)
@pytest.fixture(scope="session")
def tiny_words() -> list[str]:
    """300 real names: the built-in data's most common ones (no network, no ../shared)."""
    return data.builtin_words()[:300]


@pytest.fixture(scope="session")
def tiny_dataset(tiny_words) -> data.NamesDataset:
    """About 1,600 training windows at block size 3: a training step takes well under a millisecond."""
    return data.make_dataset(tiny_words, block_size=3, split_seed=42)


@pytest.fixture
def tiny_config() -> TrainConfig:
    """A small, fast config on the CPU: scaled init (first loss ~log 27), 300 steps, dev loss every 100."""
    return TrainConfig(hidden=16, init="scaled", steps=300, eval_every=100, batch_size=32, seed=1, device="cpu")


# ---------------------------------------------------------------------------- data
# The lecture's names.txt is shipped in data/; ../shared/data/names.txt is the fallback for a checkout
# whose copy is missing or damaged (then the lecture_data tests skip only if both are absent).
SHARED_LECTURE_NAMES = Path(__file__).resolve().parents[2] / "shared/data/names.txt"
LECTURE_NAMES = data.LECTURE_PATH if data.verify_sha256(data.LECTURE_PATH) else SHARED_LECTURE_NAMES


@pytest.fixture(scope="session")
def lecture_names_path() -> Path:
    """The lecture's names.txt (32,033 names); the test is skipped when neither copy is present."""
    if not LECTURE_NAMES.is_file():
        pytest.skip(f"the lecture's names.txt is not present (looked at {data.LECTURE_PATH} and {LECTURE_NAMES})")
    return LECTURE_NAMES


@pytest.fixture(scope="session")
def lecture_words(lecture_names_path) -> list[str]:
    return data.load_words(lecture_names_path)


@pytest.fixture
def small_words() -> list[str]:
    """The first 10 names of the lecture's names.txt, typed in (a fresh list per test, free to mutate)."""
    return ["emma", "olivia", "ava", "isabella", "sophia", "charlotte", "mia", "amelia", "harper", "evelyn"]
