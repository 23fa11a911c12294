"""The "Inside the network" page through Streamlit's AppTest: init check, BatchNorm comparison, live run,
a checkpoint, and overfitting one batch."""

from mlp_core.checkpoint import checkpoint_bytes
from mlp_core.config import TrainConfig
from mlp_core.data import Vocab
from mlp_core.model import build_model
from tests.test_app import app, clean_caches, fresh_registry, run_of, texts, train_tiny  # noqa: F401

PAGE = "pages/6_diagnostics.py"


def metric(at, label: str, index: int = 0) -> str:
    return [m.value for m in at.metric if m.label == label][index]


def percent(value: str) -> float:
    return float(value.rstrip("%"))


def test_before_any_run_it_compares_batchnorm_at_init():
    at = app()
    at.switch_page(PAGE).run()
    assert not at.exception and not at.error
    assert at.title[0].value == "Inside the network"
    assert "Train a model" in texts(at.info)
    # The sidebar's default is the lecture's init: far more saturation without BatchNorm than with it.
    none, bn = percent(metric(at, "saturated", 0)), percent(metric(at, "saturated", 1))
    assert none > 50 and bn < 6
    assert float(metric(at, "loss at init", 0)) > 10
    assert len(at.get("plotly_chart")) == 4  # histograms and saturation map, per side
    assert at.selectbox(key="hp_norm").value == "none"


def test_a_finished_run_shows_init_check_activations_gradients_updates():
    at = train_tiny(app())
    at.switch_page(PAGE).run()
    assert not at.exception and not at.error
    assert "far above" in texts(at.warning)  # the lecture init starts confidently wrong
    assert float(metric(at, "loss at step 0 (this run)")) > 5
    headers = texts(at.subheader)
    for name in ("Init check", "Activations", "Gradients", "Updates"):
        assert name in headers
    latest = percent(metric(at, "hidden 1: saturated"))
    at.radio(key="diag_at_run").set_value("init").run()
    assert not at.exception
    assert percent(metric(at, "hidden 1: saturated")) != latest
    assert len(at.get("plotly_chart")) >= 8


def test_scaled_init_with_batchnorm_passes_the_init_check_and_overfits_one_batch():
    at = app()
    at.selectbox(key="hp_init").set_value("scaled")
    at.selectbox(key="hp_norm").set_value("batchnorm")
    at = train_tiny(at)
    assert run_of(at).job.config.norm == "batchnorm"
    at.switch_page(PAGE).run()
    assert not at.exception and not at.error
    assert "close to" in texts(at.success)
    assert "dead neurons (saturated on every probe example)" in {m.label for m in at.metric}
    # The overfit check uses the sidebar's settings: the lecture's model size (TINY's 2-d embedding is too small).
    at.number_input(key="hp_emb_dim").set_value(10)
    at.number_input(key="hp_hidden").set_value(200)
    at.number_input(key="diag_overfit_steps").set_value(1000)
    at.button(key="btn_overfit").click().run()
    assert not at.exception and not at.error
    assert "reached its floor" in texts(at.markdown), texts(at.markdown)


def test_an_uploaded_checkpoint_is_probed_and_a_foreign_alphabet_is_explained():
    at = app()
    cfg = TrainConfig(emb_dim=2, hidden=8, norm="batchnorm", init="scaled")
    vocab = Vocab(tuple("abcdefghijklmnopqrstuvwxyz"))  # the sidebar's data (the lecture's names) fits it
    raw = checkpoint_bytes(build_model(vocab.size, cfg), cfg, vocab, meta={"step": 0})
    at.switch_page("pages/5_checkpoints.py").run()
    at.file_uploader(key="ckpt_upload").set_value(("bn.safetensors", raw, "application/octet-stream")).run()
    at.switch_page(PAGE).run()
    assert not at.exception and not at.error
    assert "Checkpoint bn.safetensors" in texts(at.caption)
    assert "close to" in texts(at.success)

    foreign = Vocab(tuple("xyz"))
    raw = checkpoint_bytes(build_model(foreign.size, cfg), cfg, foreign, meta={"step": 0})
    at.switch_page("pages/5_checkpoints.py").run()
    at.file_uploader(key="ckpt_upload").set_value(("xyz.safetensors", raw, "application/octet-stream")).run()
    at.switch_page(PAGE).run()
    assert not at.exception
    assert "No probe batch for this checkpoint" in texts(at.error)
