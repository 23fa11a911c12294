"""`python -m mlp_core`: real subprocesses for the commands, in-process main() for the many error cases."""

import functools
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mlp_core import cli, data
from mlp_core.config import TrainConfig
from mlp_core.model import count_params

REPO = Path(__file__).resolve().parents[1]
SUMMARY_KEYS = {"steps", "seconds", "train_loss", "dev_loss", "test_loss", "params", "device", "target_reached_seconds"}


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlp_core", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def last_json(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    """main() in-process; argparse's own exits count as a return code."""
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def words_file(tmp_path_factory, tiny_words) -> Path:
    path = tmp_path_factory.mktemp("cli") / "words.txt"
    path.write_text("\n".join(tiny_words) + "\n")
    return path


@pytest.fixture(scope="module")
def trained(words_file) -> tuple[dict, Path]:
    """One small training run from the terminal, saved to a checkpoint."""
    out = words_file.parent / "model.safetensors"
    proc = run_cli(
        "train", "--data", str(words_file), "--steps", "200", "--hidden", "16", "--eval-every", "100",
        "--device", "cpu", "--json", "--quiet", "--out", str(out),
    )  # fmt: skip
    return last_json(proc), out


def test_train_prints_a_json_summary(trained, tiny_words):
    summary, ckpt = trained
    assert set(summary) >= SUMMARY_KEYS
    assert summary["steps"] == 200 and summary["device"] == "cpu"
    vocab_size = data.Vocab.from_words(tiny_words).size
    assert summary["params"] == count_params(vocab_size, TrainConfig(hidden=16))
    for key in ("train_loss", "dev_loss", "test_loss"):
        assert math.isfinite(summary[key]) and 0 < summary[key] < 30
    assert summary["target_reached_seconds"] is None
    assert summary["seconds"] > 0
    assert ckpt.exists() and summary["checkpoint"] == str(ckpt)


def test_target_dev_loss_reached_at_the_first_evaluation(words_file):
    proc = run_cli(
        "train", "--data", str(words_file), "--steps", "1000", "--hidden", "16", "--eval-every", "100",
        "--init", "scaled", "--target-dev-loss", "10", "--device", "cpu", "--json", "--quiet",
    )  # fmt: skip
    summary = last_json(proc)
    assert summary["target_reached_seconds"] is not None and summary["target_reached_seconds"] >= 0
    assert summary["steps"] == 100 < 1000
    assert summary["target_dev_loss"] == 10


def test_sample_from_a_checkpoint(trained, words_file):
    _, ckpt = trained
    proc = run_cli("sample", "--checkpoint", str(ckpt), "--n", "5", "--data", str(words_file), "--json")
    samples = last_json(proc)["samples"]
    assert len(samples) == 5
    assert all(isinstance(s["name"], str) and isinstance(s["is_new"], bool) for s in samples)
    # Same seed, same names; the human-readable form prints one name per line.
    text = run_cli("sample", "--checkpoint", str(ckpt), "--n", "5")
    assert text.returncode == 0, text.stderr
    assert [line.strip() for line in text.stdout.strip().splitlines()] == [s["name"] for s in samples]


def test_sample_with_a_prefix(trained):
    _, ckpt = trained
    samples = last_json(run_cli("sample", "--checkpoint", str(ckpt), "--n", "5", "--prefix", "ma", "--json"))["samples"]
    assert len(samples) == 5 and all(s["name"].startswith("ma") for s in samples)


def test_lr_find(words_file):
    proc = run_cli("lr-find", "--data", str(words_file), "--hidden", "16", "--num", "50", "--json", "--quiet")
    result = last_json(proc)
    assert len(result["rows"]) == 50
    assert result["rows"][0][0] == -3.0 and result["rows"][-1][0] == 0.0
    assert -3 <= result["suggested_exponent"] <= 0
    assert result["suggested_lr"] == pytest.approx(10 ** result["suggested_exponent"])


def test_data_info(words_file, tiny_words):
    info = last_json(run_cli("data", "info", "--data", str(words_file), "--json"))
    assert info["words"] == len(tiny_words)
    assert info["vocab_size"] == len(set("".join(tiny_words))) + 1
    assert sum(info["examples"].values()) == sum(len(w) + 1 for w in tiny_words)
    assert set(info["examples"]) == {"train", "dev", "test"}


def test_data_download_without_network_is_a_one_line_error(monkeypatch, tmp_path, capsys):
    # Port 9 (discard) on localhost: refused at once, and no test ever touches the network. The real
    # download code runs; only its URL is swapped (a default argument, so wrap the function).
    offline = functools.partial(data.download_lecture_names, url="http://127.0.0.1:9/x")
    monkeypatch.setattr(data, "download_lecture_names", offline)
    monkeypatch.setattr(data, "LECTURE_NAMES_URL", "http://127.0.0.1:9/x")
    code, _, err = run_main(["data", "download", "--dest", str(tmp_path / "names.txt")], capsys)
    assert code != 0
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:"), err
    assert "Traceback" not in err
    assert not (tmp_path / "names.txt").exists()


@pytest.fixture(scope="module")
def junk_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("junk")
    binary = d / "binary.bin"
    binary.write_bytes(bytes(range(256)) * 8)
    latin1 = d / "latin1.txt"
    latin1.write_bytes("zo\xeb\nren\xe9e\n".encode("latin-1"))  # text, but not UTF-8
    ckpt = d / "random.safetensors"
    ckpt.write_bytes(
        torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0)).byte().numpy().tobytes()
    )
    return {"binary": binary, "latin1": latin1, "ckpt": ckpt, "missing": d / "no_such_file.txt"}


BAD_INPUTS = {
    "no command": [],
    "unknown flag": ["train", "--bogus"],
    "block size 0": ["train", "--block-size", "0"],
    "hidden not a number": ["train", "--hidden", "lots"],
    "unknown optimizer": ["train", "--optimizer", "foo"],
    "lr out of range": ["train", "--lr", "1000"],
    "unknown preset": ["train", "--preset", "huge"],
    "missing data file": ["train", "--data", "{missing}"],
    "binary data file": ["train", "--data", "{binary}"],
    "non-UTF-8 data file": ["lr-find", "--data", "{latin1}"],
    "data file is a directory": ["train", "--data", "{dir}"],
    "random-bytes checkpoint": ["sample", "--checkpoint", "{ckpt}"],
    "missing checkpoint": ["sample", "--checkpoint", "{missing}"],
    "bad data info file": ["data", "info", "--data", "{binary}"],
}


@pytest.mark.parametrize("argv", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_is_one_line_on_stderr(argv, junk_files, capsys):
    argv = [a.format(dir=junk_files["missing"].parent, **junk_files) for a in argv]
    code, _, err = run_main(argv, capsys)
    assert code not in (0, None)
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


def test_cuda_without_a_gpu_is_one_line(monkeypatch, words_file, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = run_main(["train", "--data", str(words_file), "--device", "cuda", "--steps", "1"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "cuda" in err


def test_bad_flag_in_a_real_process_and_debug_traceback(words_file):
    proc = run_cli("train", "--data", str(words_file), "--block-size", "0")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "block_size" in proc.stderr
    assert "Traceback" not in proc.stderr
    debug = run_cli("train", "--data", str(words_file), "--block-size", "0", "--debug")
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr and "ConfigError" in debug.stderr


def test_diverged_run_reports_and_keeps_json_strict(words_file, capsys):
    # sgd's L2 term with lr * wd = 10 blows the weights up exponentially: a real divergence.
    argv = [
        "train",
        "--data",
        str(words_file),
        "--hidden",
        "16",
        "--init",
        "scaled",
        "--lr",
        "1",
        "--weight-decay",
        "10",
    ]
    code, out, err = run_main([*argv, "--steps", "500", "--eval-every", "100", "--json", "--quiet"], capsys)
    assert code == 0
    summary = json.loads(out.strip().splitlines()[-1])  # strict JSON: no NaN in it
    assert 0 < summary["diverged_at"] < 500 and summary["steps"] == summary["diverged_at"]
    assert math.isfinite(summary["dev_loss"])  # the last good weights were kept
    assert "diverged at step" in err


def test_help_lists_every_config_flag(capsys):
    code, out, _ = run_main(["train", "--help"], capsys)
    assert code == 0
    for flag in ("--block-size", "--emb-dim", "--hidden", "--optimizer", "--lr", "--seed", "--split-seed", "--device"):
        assert flag in out
