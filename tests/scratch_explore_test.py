import pytest
from test_app import app, clean_caches, fresh_registry, run_of, texts, wait_for  # noqa
from test_checkpoint import with_metadata
from dashboard import state
from mlp_core.checkpoint import checkpoint_bytes
from mlp_core.config import TrainConfig
from mlp_core.data import Vocab
from mlp_core.model import build_model
import json

def show(at, tag):
    print("\n==", tag, "exc:", [e.value for e in at.exception][:1], "err:", texts(at.error), "warn:", texts(at.warning))

@pytest.mark.parametrize("step", [10_000_000, 10**30, "abc", [1], -5, 2.5, None, True, float("nan")])
def test_meta_step(step):
    vocab = Vocab(tuple("abcdefghijklmnopqrstuvwxyz"))
    cfg = TrainConfig(emb_dim=2, hidden=8)
    raw = checkpoint_bytes(build_model(vocab.size, cfg), cfg, vocab, meta={"step": 0})
    import struct
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8+n])
    meta = json.loads(header["__metadata__"]["meta"]); meta["step"] = step
    raw = with_metadata(raw, meta=json.dumps(meta))
    at = app()
    at.switch_page("app_pages/checkpoints.py").run()
    at.file_uploader(key="ckpt_upload").set_value(("s.safetensors", raw, "application/octet-stream")).run()
    show(at, f"step={step!r}")
    if not at.exception:
        at.button(key="btn_ckpt_train").click().run()
        show(at, "keep training")
        j = run_of(at).job
        if j: j.stop()

def test_xyz():
    vocab = Vocab(tuple("xyz"))
    cfg = TrainConfig(emb_dim=2, hidden=8)
    raw = checkpoint_bytes(build_model(vocab.size, cfg), cfg, vocab, meta={"step": 0})
    at = app()
    at.switch_page("app_pages/checkpoints.py").run()
    at.file_uploader(key="ckpt_upload").set_value(("xyz.safetensors", raw, "application/octet-stream")).run()
    at.button(key="btn_ckpt_train").click().run()
    show(at, "xyz keep training")
