"""Checkpoints: one safetensors file holding the weights plus JSON metadata (config, vocabulary, training facts).

Loading never unpickles anything and never calls torch.load: a checkpoint may come from a stranger's upload.
Every check that can be done on the header is done before the tensor bytes are touched, and each failure is a
CheckpointError whose one-line message says what is wrong.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import struct
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from .config import ConfigError, TrainConfig, from_dict, to_dict
from .data import Vocab
from .model import MLP, count_params, resolve_device

FORMAT = "mlp_core.checkpoint"
VERSION = "1"
MAX_CHECKPOINT_BYTES = 256 * 1024 * 1024
MAX_HEADER_BYTES = 1024 * 1024
METADATA_KEYS = ("format", "version", "config", "vocab", "meta")
# Weights must be floating point; they are converted to float32 on load.
FLOAT_DTYPES = {"F32": 4, "F64": 8, "F16": 2, "BF16": 2}
PICKLE_MESSAGE = (
    "this looks like a pickled PyTorch file (torch.save); for safety only mlp_core safetensors checkpoints are accepted"
)


class CheckpointError(ValueError):
    """A checkpoint cannot be saved or loaded; the message says why in one line."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (in eval mode), how it was configured, its vocabulary and training facts."""

    model: MLP
    config: TrainConfig
    vocab: Vocab
    meta: dict[str, Any]


# ---------------------------------------------------------------------------- saving
def _jsonable(value: Any) -> Any:
    """meta as strict JSON: NaN/inf become null (JSON has no such numbers), numpy/torch scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)  # a Path, a datetime, ...: keep it readable rather than fail the save


def checkpoint_bytes(model: MLP, config: TrainConfig, vocab: Vocab, meta: dict[str, Any] | None = None) -> bytes:
    """The checkpoint as bytes (for a download button, or to write to a file)."""
    meta = _jsonable(dict(meta or {}))
    meta.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    tensors = {name: t.detach().to("cpu", torch.float32).contiguous() for name, t in model.state_dict().items()}
    # Refuse to write what load_checkpoint would refuse to read.
    expected = expected_shapes(config, vocab)
    _check_names(set(tensors), expected)
    for name, shape in expected.items():
        if tuple(tensors[name].shape) != shape:
            raise CheckpointError(
                f"the model does not match its config and vocabulary: {name} has shape "
                f"{tuple(tensors[name].shape)}, expected {shape}"
            )
        if not torch.isfinite(tensors[name]).all():
            raise CheckpointError(f"tensor {name} contains NaN/inf: the model has diverged, not saving it")
    metadata = {
        "format": FORMAT,
        "version": VERSION,
        "config": json.dumps(to_dict(config)),
        "vocab": json.dumps(list(vocab.chars)),
        "meta": json.dumps(meta, allow_nan=False),
    }
    return safetensors.torch.save(tensors, metadata=metadata)


def save_checkpoint(
    path: str | Path, model: MLP, config: TrainConfig, vocab: Vocab, meta: dict[str, Any] | None = None
) -> Path:
    """Write the checkpoint atomically: a crash mid-write leaves the old file (if any) as it was."""
    return write_atomic(path, checkpoint_bytes(model, config, vocab, meta))


def write_atomic(path: str | Path, raw: bytes) -> Path:
    """Write bytes to path atomically and durably: a crash mid-write leaves the old file (if any) as it was."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)  # make the rename itself durable
    except OSError as exc:
        raise CheckpointError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return path


def check_writable(path: str | Path) -> Path:
    """Refuse, before any work, a checkpoint path that save_checkpoint could not write (CheckpointError).

    Creates the missing parent folders (as saving would) and a probe file that is removed at once.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"cannot write checkpoint {path}: Is a directory")  # worded as the OS says it
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CheckpointError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None
    return path


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every OS / filesystem lets a directory be opened
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ---------------------------------------------------------------------------- loading
def expected_shapes(config: TrainConfig, vocab: Vocab) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of the model this config and vocabulary build (computed without allocating it)."""
    with torch.device("meta"):
        model = MLP(vocab.size, config)
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def load_checkpoint(source: str | Path | bytes, device: str | torch.device = "cpu") -> Checkpoint:
    """Load and validate a checkpoint from a path or from bytes; CheckpointError says what is wrong.

    Whatever a crafted file makes fail (the checks below name every case we know of) still ends as a
    CheckpointError: the CLI, the upload page and callers of this function catch only that.
    """
    try:
        return _load(source, device)
    except CheckpointError:
        raise
    except (RecursionError, MemoryError, OverflowError, ValueError, TypeError, KeyError, IndexError) as exc:
        raise CheckpointError(f"malformed checkpoint ({type(exc).__name__}: {_one_line(exc)})") from None


def _load(source: str | Path | bytes, device: str | torch.device) -> Checkpoint:
    data = _read(source)
    header, data_start = _parse_header(data)
    _check_layout(header, len(data) - data_start)
    config, vocab, meta = _parse_metadata(header.get("__metadata__"))
    entries = {name: entry for name, entry in header.items() if name != "__metadata__"}
    expected = expected_shapes(config, vocab)
    _check_names(set(entries), expected)
    for name, shape in expected.items():
        dtype, actual = entries[name]["dtype"], tuple(entries[name]["shape"])
        if dtype not in FLOAT_DTYPES:
            raise CheckpointError(f"tensor {name} has dtype {dtype}; weights must be floating point")
        if actual != shape:
            raise CheckpointError(
                f"tensor {name} has shape {actual}, but the checkpoint's config and vocabulary need {shape}"
            )
    try:
        tensors = safetensors.torch.load(bytes(data))
    except Exception as exc:  # the Rust parser's own error type; the header checks above make this rare
        raise CheckpointError(f"corrupt safetensors data: {_one_line(exc)}") from None
    for name in expected:
        tensors[name] = tensors[name].to(torch.float32)
        if not torch.isfinite(tensors[name]).all():
            raise CheckpointError(f"tensor {name} contains NaN/inf: the saved model had diverged, refusing to load it")
    model = MLP(vocab.size, config)
    model.load_state_dict(tensors)
    model.to(resolve_device(device) if isinstance(device, str) else device)
    model.eval()
    return Checkpoint(model=model, config=config, vocab=vocab, meta=meta)


def _read(source: str | Path | bytes | bytearray | memoryview, limit: int | None = None) -> bytes:
    limit = MAX_CHECKPOINT_BYTES if limit is None else limit
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > limit:
            raise CheckpointError(f"checkpoint is too large ({len(data):,} bytes; at most {limit:,})")
        return data
    if not isinstance(source, (str, Path)):
        raise CheckpointError(f"a checkpoint is a path or bytes, got {type(source).__name__}")
    path = Path(source)
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise CheckpointError(f"{path} is a directory, not a checkpoint file")
        if size > limit:
            raise CheckpointError(f"{path} is too large ({size:,} bytes; a checkpoint is at most {limit:,})")
        with path.open("rb") as f:
            data = f.read(limit + 1)  # bounded even if the file grows after the stat
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file not found: {path}") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise CheckpointError(f"{path} is too large (more than {limit:,} bytes)")
    return data


def _parse_header(data: bytes) -> tuple[dict[str, Any], int]:
    """The safetensors header (8-byte little-endian length, then JSON), checked before safetensors sees it."""
    # torch.save writes a zip (PK..) or, in its legacy format, a pickle (protocol 2+: b'\x80'); a pickle can
    # run code when loaded, so it is named and refused here, never opened.
    looks_pickled = data[:1] == b"\x80" or data[:4] == b"PK\x03\x04"
    if len(data) < 8:
        raise CheckpointError(PICKLE_MESSAGE if looks_pickled else f"too short to be a checkpoint ({len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    plausible = n <= MAX_HEADER_BYTES and 8 + n <= len(data) and data[8:9] == b"{"
    if looks_pickled and not plausible:
        raise CheckpointError(PICKLE_MESSAGE)
    if n > MAX_HEADER_BYTES:
        raise CheckpointError(
            "not a safetensors checkpoint (a .safetensors file starts with the length of a JSON header; "
            "this file's first bytes are not one)"
        )
    if 8 + n > len(data):
        raise CheckpointError(f"truncated checkpoint: the header needs {n:,} bytes but only {len(data) - 8:,} follow")
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError("not a safetensors checkpoint: its header is not JSON") from None
    except RecursionError:  # e.g. 100,000 nested '[': the parser recurses per level
        raise CheckpointError("not a safetensors checkpoint: its header is nested too deeply") from None
    if not isinstance(header, dict):
        raise CheckpointError("not a safetensors checkpoint: its header is not a JSON object")
    return header, 8 + n


def _check_layout(header: dict[str, Any], data_len: int) -> None:
    """Every tensor entry well-formed, and their byte ranges tile the data exactly (else truncated/corrupt)."""
    spans = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        ok = (
            isinstance(entry, dict)
            and isinstance(entry.get("dtype"), str)
            and _int_list(entry.get("shape"))
            and _int_list(entry.get("data_offsets"))
            and len(entry["data_offsets"]) == 2
            and 0 <= entry["data_offsets"][0] <= entry["data_offsets"][1]
        )
        if not ok:
            raise CheckpointError(f"corrupt safetensors header: bad entry for tensor {name!r}")
        begin, end = entry["data_offsets"]
        size = FLOAT_DTYPES.get(entry["dtype"])
        if size is not None and end - begin != size * math.prod(entry["shape"]):
            raise CheckpointError(f"corrupt safetensors header: tensor {name!r} has the wrong byte length")
        spans.append((begin, end))
    spans.sort()
    end = max((e for _, e in spans), default=0)
    if end > data_len:
        raise CheckpointError(
            f"truncated checkpoint: the tensors need {end:,} bytes of data but only {data_len:,} remain"
        )
    tiled = all(a[1] == b[0] for a, b in itertools.pairwise(spans)) and (not spans or spans[0][0] == 0)
    if not tiled or end != data_len:
        raise CheckpointError("corrupt safetensors data: the tensors' byte ranges do not cover the file exactly")


def _int_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)


def _parse_metadata(metadata: Any) -> tuple[TrainConfig, Vocab, dict[str, Any]]:
    if not isinstance(metadata, dict) or metadata.get("format") is None:
        raise CheckpointError("not an mlp_core checkpoint: its metadata has no format marker")
    if metadata["format"] != FORMAT:
        raise CheckpointError(f"not an mlp_core checkpoint: unknown format {metadata['format']!r}")
    missing = [k for k in METADATA_KEYS if k not in metadata]
    if missing:
        raise CheckpointError(f"checkpoint metadata lacks {', '.join(missing)}")
    if metadata["version"] != VERSION:
        raise CheckpointError(
            f"unsupported checkpoint version {metadata['version']!r} (this program reads version {VERSION})"
        )
    fields = {}
    for key in ("config", "vocab", "meta"):
        try:
            fields[key] = json.loads(metadata[key])
        except (TypeError, json.JSONDecodeError):
            raise CheckpointError(f"checkpoint metadata {key!r} is not valid JSON") from None
        except RecursionError:
            raise CheckpointError(f"checkpoint metadata {key!r} is nested too deeply") from None
    if not isinstance(fields["config"], dict):
        raise CheckpointError("checkpoint config is not a JSON object")
    try:
        config = from_dict(fields["config"])
    except (ConfigError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint config is invalid: {_one_line(exc)}") from None
    chars = fields["vocab"]
    if not isinstance(chars, list) or not all(isinstance(c, str) and len(c) == 1 for c in chars):
        raise CheckpointError("checkpoint vocab must be a list of single characters")
    if not chars or len(set(chars)) != len(chars) or "." in chars:
        raise CheckpointError("checkpoint vocab must be non-empty, without repeats, and without '.' (the end marker)")
    if not isinstance(fields["meta"], dict):
        raise CheckpointError("checkpoint meta is not a JSON object")
    return config, Vocab(tuple(chars)), fields["meta"]


def _check_names(names: set[str], expected: dict[str, tuple[int, ...]]) -> None:
    missing = [n for n in expected if n not in names]
    if missing:
        raise CheckpointError(f"checkpoint is missing tensor(s): {', '.join(missing)}")
    extra = sorted(names - set(expected))
    if extra:
        shown = ", ".join(repr(n) for n in extra[:5]) + (" ..." if len(extra) > 5 else "")
        raise CheckpointError(f"checkpoint has unexpected tensor(s): {shown}")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ---------------------------------------------------------------------------- describing
def describe_checkpoint(ckpt: Checkpoint) -> dict[str, Any]:
    """A flat summary for a table in a UI: size, architecture, training facts."""
    c, m = ckpt.config, ckpt.meta
    return {
        "params": count_params(ckpt.vocab.size, c),
        "vocab_size": ckpt.vocab.size,
        "characters": "".join(ckpt.vocab.chars),
        "block_size": c.block_size,
        "emb_dim": c.emb_dim,
        "hidden": c.hidden,
        "hidden_layers": c.hidden_layers,
        "init": c.init,
        "optimizer": c.optimizer,
        "lr": c.lr,
        "step": m.get("step"),
        "train_loss": m.get("train_loss"),
        "dev_loss": m.get("dev_loss"),
        "best_dev_loss": m.get("best_dev_loss", m.get("best_dev")),
        "dataset": m.get("dataset_name", m.get("dataset")),
        "created": m.get("created"),
    }


__all__ = [
    "MAX_CHECKPOINT_BYTES",
    "MAX_HEADER_BYTES",
    "Checkpoint",
    "CheckpointError",
    "check_writable",
    "checkpoint_bytes",
    "describe_checkpoint",
    "expected_shapes",
    "load_checkpoint",
    "save_checkpoint",
]
