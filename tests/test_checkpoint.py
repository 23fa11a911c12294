"""Checkpoints: exact round trips, atomic writes, and a clear refusal of every hostile or broken file."""

import io
import json
import os
import pathlib
import pickle
import random
import struct

import pytest
import safetensors.torch
import torch

from mlp_core import checkpoint as ckpt_mod
from mlp_core.checkpoint import (
    MAX_CHECKPOINT_BYTES,
    CheckpointError,
    checkpoint_bytes,
    describe_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from mlp_core.config import TrainConfig, to_dict
from mlp_core.data import Vocab
from mlp_core.model import build_model

WORDS = ["emma", "olivia", "ava", "isabella", "sophia", "zoe"]
CONFIG = TrainConfig(emb_dim=4, hidden=16, seed=3)


@pytest.fixture(scope="module")
def vocab():
    return Vocab.from_words(WORDS)


@pytest.fixture(scope="module")
def model(vocab):
    return build_model(vocab.size, CONFIG)


@pytest.fixture(scope="module")
def raw(model, vocab) -> bytes:
    return checkpoint_bytes(model, CONFIG, vocab, meta={"step": 7, "dev_loss": 2.5})


def split(raw: bytes) -> tuple[dict, bytes]:
    """(header dict, tensor data) of a safetensors file."""
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def join(header: dict, data: bytes) -> bytes:
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def with_metadata(raw: bytes, **changes) -> bytes:
    """The same tensors under edited metadata (None removes a key)."""
    header, data = split(raw)
    meta = header["__metadata__"]
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    return join(header, data)


def with_config(raw: bytes, **changes) -> bytes:
    header, _ = split(raw)
    config = {**json.loads(header["__metadata__"]["config"]), **changes}
    return with_metadata(raw, config=json.dumps(config))


def with_tensors(raw: bytes, edit) -> bytes:
    """Re-save with the tensors changed by edit(dict) and the original metadata."""
    header, _ = split(raw)
    tensors = safetensors.torch.load(raw)
    edit(tensors)
    return safetensors.torch.save(tensors, metadata=header["__metadata__"])


# ---------------------------------------------------------------------------- round trip
def test_round_trip_through_a_file(tmp_path, vocab):
    config = CONFIG.replace(hidden_layers=2, dropout=0.2, optimizer="adamw", lr=3e-3, schedule="cosine")
    model = build_model(vocab.size, config).train()
    meta = {"step": 1234, "train_loss": 2.1, "best_dev_loss": float("inf"), "dataset_name": "names", "tags": [1, "a"]}
    path = save_checkpoint(tmp_path / "sub" / "m.safetensors", model, config, vocab, meta)
    assert path == tmp_path / "sub" / "m.safetensors" and model.training
    for source in (path, str(path), path.read_bytes()):
        ck = load_checkpoint(source)
        assert ck.config == config and ck.vocab == vocab
        assert ck.meta["step"] == 1234 and ck.meta["tags"] == [1, "a"] and ck.meta["dataset_name"] == "names"
        assert ck.meta["best_dev_loss"] is None  # JSON has no infinity
        assert "created" in ck.meta
        assert not ck.model.training
        x = torch.randint(0, vocab.size, (64, config.block_size))
        with torch.no_grad():
            assert torch.equal(ck.model(x), model.eval()(x))
        assert {k: v.dtype for k, v in ck.model.state_dict().items()} == dict.fromkeys(
            model.state_dict(), torch.float32
        )


def test_file_layout_is_plain_safetensors(raw, model, vocab):
    header, _ = split(raw)
    meta = header["__metadata__"]
    assert meta["format"] == "mlp_core.checkpoint" and meta["version"] == "1"
    assert json.loads(meta["config"]) == to_dict(CONFIG)
    assert json.loads(meta["vocab"]) == list(vocab.chars)
    assert json.loads(meta["meta"])["step"] == 7
    tensors = safetensors.torch.load(raw)
    assert set(tensors) == {"C", "W1", "b1", "W2", "b2"}
    assert all(torch.equal(tensors[k], v) for k, v in model.state_dict().items())


def test_header_length_that_looks_like_pickle_magic_still_loads(model, vocab):
    """A valid file whose 8-byte header length starts with b'\\x80\\x04' is not mistaken for a pickle."""
    for pad in range(400):
        raw = checkpoint_bytes(model, CONFIG, vocab, meta={"pad": "x" * pad})
        if raw[:2] == b"\x80\x04":
            assert load_checkpoint(raw).meta["pad"] == "x" * pad
            return
    pytest.fail("no padding gave a header length of 0x480")


def test_describe(raw, model):
    info = describe_checkpoint(load_checkpoint(raw))
    assert info["params"] == model.num_params()
    assert info["vocab_size"] == len(set("".join(WORDS))) + 1
    assert (info["hidden"], info["block_size"], info["step"], info["dev_loss"]) == (16, 3, 7, 2.5)
    assert info["train_loss"] is None


# ---------------------------------------------------------------------------- writing
def test_atomic_write_keeps_the_old_file(tmp_path, model, vocab, monkeypatch):
    path = save_checkpoint(tmp_path / "m.safetensors", model, CONFIG, vocab, {"step": 1})
    before = path.read_bytes()

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(CheckpointError, match=r"cannot write checkpoint .*No space left"):
        save_checkpoint(path, model, CONFIG, vocab, {"step": 2})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temp file left behind


def test_saving_refuses_a_model_that_would_not_load(model, vocab):
    with pytest.raises(CheckpointError, match="W1 has shape"):
        checkpoint_bytes(model, CONFIG.replace(hidden=17), vocab)
    broken = build_model(vocab.size, CONFIG)
    with torch.no_grad():
        broken.W2[0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="W2 contains NaN/inf"):
        checkpoint_bytes(broken, CONFIG, vocab)


# ---------------------------------------------------------------------------- hostile and broken input
class Evil:
    """Unpickling this creates a file: proof that a loader ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def torch_saved(model, legacy=False) -> bytes:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()


def random_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


PICKLED = "this looks like a pickled PyTorch file \\(torch.save\\); for safety only mlp_core safetensors"
HOSTILE = {
    "empty": (lambda r, m: b"", "too short"),
    "too short": (lambda r, m: b"abc", "too short"),
    "absurd header length": (
        lambda r, m: struct.pack("<Q", 2**40) + b"{}",
        "not a safetensors checkpoint \\(a .safetensors file starts with the length",
    ),
    "header just over the limit": (
        lambda r, m: struct.pack("<Q", 1024 * 1024 + 8) + b"{}" * 10,
        "not a safetensors checkpoint \\(a .safetensors",
    ),
    "header longer than the file": (lambda r, m: struct.pack("<Q", 100) + b"{}", "truncated checkpoint: the header"),
    "header not JSON": (lambda r, m: struct.pack("<Q", 8) + b"{not js}", "header is not JSON"),
    "header not UTF-8": (lambda r, m: struct.pack("<Q", 4) + b"{\xff\xfe}", "header is not JSON"),
    "header a JSON list": (lambda r, m: join([1, 2], b""), "not a JSON object"),  # type: ignore[arg-type]
    "random bytes": (lambda r, m: random_bytes(4096, 1), "not a safetensors checkpoint \\(a .safetensors"),
    "a text file": (lambda r, m: b"emma\nolivia\nava\n" * 100, "not a safetensors checkpoint \\(a .safetensors"),
    "pickle": (lambda r, m: pickle.dumps({"W1": [1.0]}), PICKLED),
    "torch.save zip": (lambda r, m: torch_saved(m), PICKLED),
    "torch.save legacy pickle": (lambda r, m: torch_saved(m, legacy=True), PICKLED),
    "truncated file": (lambda r, m: r[:-7], "truncated checkpoint: the tensors need"),
    "cut inside the header": (lambda r, m: r[:100], "truncated checkpoint: the header"),
    "trailing garbage": (lambda r, m: r + b"\0" * 16, "do not cover the file exactly"),
    "bad tensor entry": (
        lambda r, m: join({**split(r)[0], "W1": {"dtype": "F32"}}, split(r)[1]),
        "entry for tensor 'W1'",
    ),
    "no metadata": (lambda r, m: safetensors.torch.save(safetensors.torch.load(r)), "no format marker"),
    "unknown format": (lambda r, m: with_metadata(r, format="other.thing"), "unknown format 'other.thing'"),
    "future version": (lambda r, m: with_metadata(r, version="2"), "unsupported checkpoint version '2'"),
    "metadata lacks vocab": (lambda r, m: with_metadata(r, vocab=None), "metadata lacks vocab"),
    "meta not JSON": (lambda r, m: with_metadata(r, meta="{oops"), "'meta' is not valid JSON"),
    "config not JSON": (lambda r, m: with_metadata(r, config="hidden=16"), "'config' is not valid JSON"),
    "config a list": (lambda r, m: with_metadata(r, config="[16]"), "config is not a JSON object"),
    "meta a list": (lambda r, m: with_metadata(r, meta="[]"), "meta is not a JSON object"),
    "config out of range": (lambda r, m: with_config(r, hidden=0), "config is invalid: hidden must be between 1"),
    "config unknown key": (lambda r, m: with_config(r, evil=1), "config is invalid: unknown setting\\(s\\): evil"),
    "config wrong type": (lambda r, m: with_config(r, emb_dim=[4]), "config is invalid: emb_dim must be a number"),
    "vocab a string": (lambda r, m: with_metadata(r, vocab='"abc"'), "list of single characters"),
    "vocab multi-char": (lambda r, m: with_metadata(r, vocab='["ab", "c"]'), "list of single characters"),
    "vocab repeats": (lambda r, m: with_metadata(r, vocab='["a", "a"]'), "without repeats"),
    "vocab with end marker": (lambda r, m: with_metadata(r, vocab='[".", "a"]'), "without '.'"),
    "vocab empty": (lambda r, m: with_metadata(r, vocab="[]"), "non-empty"),
    "metadata lies about hidden": (
        lambda r, m: with_config(r, hidden=100),
        "tensor W1 has shape \\(12, 16\\), but the checkpoint's config and vocabulary need \\(12, 100\\)",
    ),
    "vocab size does not match C": (
        lambda r, m: with_metadata(r, vocab='["a", "b"]'),
        "tensor C has shape \\(13, 4\\), but .* need \\(3, 4\\)",
    ),
    "missing tensor": (lambda r, m: with_tensors(r, lambda t: t.pop("b2")), "missing tensor\\(s\\): b2"),
    "extra tensor": (lambda r, m: with_tensors(r, lambda t: t.update(evil=torch.zeros(2))), "unexpected .*'evil'"),
    "wrong shape": (
        lambda r, m: with_tensors(r, lambda t: t.update(b1=torch.zeros(17))),
        "tensor b1 has shape \\(17,\\)",
    ),
    "integer weights": (
        lambda r, m: with_tensors(r, lambda t: t.update(b2=t["b2"].long())),
        "tensor b2 has dtype I64; weights must be floating point",
    ),
    "NaN weights": (
        lambda r, m: with_tensors(r, lambda t: t["W1"].view(-1)[5].fill_(float("nan"))),
        "W1 contains NaN/inf",
    ),
    "inf weights": (
        lambda r, m: with_tensors(r, lambda t: t["C"].view(-1)[0].fill_(float("-inf"))),
        "C contains NaN/inf",
    ),
}


@pytest.fixture
def never_unpickle(monkeypatch):
    """Any attempt to unpickle or torch.load fails the test loudly."""

    def forbidden(*args, **kwargs):
        raise AssertionError("load_checkpoint tried to unpickle")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    monkeypatch.setattr(torch, "load", forbidden)


@pytest.mark.parametrize(("make", "message"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_bytes_are_refused_with_a_clear_message(make, message, raw, model, tmp_path, never_unpickle):
    data = make(raw, model)
    path = tmp_path / "bad.safetensors"
    path.write_bytes(data)
    for source in (data, path):
        with pytest.raises(CheckpointError, match=message) as info:
            load_checkpoint(source)
        assert "\n" not in str(info.value)


def test_a_code_running_pickle_never_runs(tmp_path, never_unpickle):
    armed = pickle.dumps(Evil(tmp_path / "proof"))
    payload = pickle.dumps([Evil(tmp_path / "pwned")])
    pickle_loads = pickle._loads  # the pure-Python unpickler, untouched by the fixture
    pickle_loads(armed)
    assert (tmp_path / "proof").exists(), "the payload must really run code when unpickled"
    path = tmp_path / "evil.safetensors"
    path.write_bytes(payload)
    for source in (payload, path, str(path)):
        with pytest.raises(CheckpointError, match=PICKLED):
            load_checkpoint(source)
    assert not (tmp_path / "pwned").exists()
    # A protocol-0 pickle has no magic bytes, but is still only ever read as a (broken) safetensors header.
    with pytest.raises(CheckpointError):
        load_checkpoint(pickle.dumps(Evil(tmp_path / "pwned"), protocol=0))
    assert not (tmp_path / "pwned").exists()


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CheckpointError, match=r"checkpoint file not found: .*nope\.safetensors"):
        load_checkpoint(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="a path or bytes"):
        load_checkpoint(42)  # type: ignore[arg-type]


def test_oversized_file_is_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "huge.safetensors"
    with path.open("wb") as f:
        f.truncate(MAX_CHECKPOINT_BYTES + 1)  # sparse: no disk, no memory

    def no_reading(self, *args, **kwargs):
        raise AssertionError("the file was opened")

    monkeypatch.setattr(pathlib.Path, "open", no_reading)
    with pytest.raises(CheckpointError, match="too large \\(268,435,457 bytes"):
        load_checkpoint(path)


def test_oversized_bytes_are_refused(raw, monkeypatch):
    monkeypatch.setattr(ckpt_mod, "MAX_CHECKPOINT_BYTES", len(raw) - 1)
    with pytest.raises(CheckpointError, match="too large"):
        load_checkpoint(raw)
