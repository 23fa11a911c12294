"""The "Inside the network" page through Streamlit's AppTest: init check, BatchNorm comparison, live run,
a checkpoint, and overfitting one batch."""

from dashboard import state
from mlp_core.checkpoint import checkpoint_bytes
from mlp_core.config import TrainConfig
from mlp_core.data import Vocab
from mlp_core.model import build_model
from mlp_core.trainer import Trainer
from tests.test_app import app, clean_caches, fresh_registry, run_of, texts, train_tiny, wait_for  # noqa: F401

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


def no_training_in_the_server(monkeypatch) -> None:
    """The server's own Trainer cannot take a step: only a worker process (forked from elsewhere) can train."""

    def refuse(*args, **kwargs):
        raise AssertionError("the server process trained")

    monkeypatch.setattr(Trainer, "advance", refuse)


def overfit_ended(at) -> None:
    """Rerun the page (as its refresh does) until the overfit running in the background has ended."""
    task = run_of(at).overfit
    assert task is not None, texts(at.error)
    assert task.wait(180), "the overfit did not end"
    at.run()


def test_scaled_init_with_batchnorm_passes_the_init_check_and_overfits_one_batch(monkeypatch):
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
    no_training_in_the_server(monkeypatch)
    at.button(key="btn_overfit").click().run()
    assert not at.exception and not at.error
    overfit_ended(at)
    assert not at.exception and not at.error
    assert "reached its floor" in texts(at.markdown), texts(at.markdown)


def test_overfit_one_batch_trains_in_a_worker_with_progress_and_stop(monkeypatch):
    """The largest overfit the page allows takes minutes of CPU: a worker trains it, the page shows its progress,
    Stop ends it, and it holds one of the server's training slots meanwhile."""
    no_training_in_the_server(monkeypatch)
    at = app()
    at.number_input(key="hp_hidden").set_value(1000)
    at.switch_page(PAGE).run()
    at.number_input(key="diag_overfit_steps").set_value(20_000)
    at.button(key="btn_overfit").click().run()
    assert not at.exception and not at.error
    task = run_of(at).overfit
    wait_for(lambda: task.progress.done > 0 or task.progress.status != "running", 120)
    at.run()
    assert task.progress.status == "running", task.progress.message
    assert any(p.proto.text.startswith("step ") and "of 20,000" in p.proto.text for p in at.get("progress"))
    assert at.button(key="btn_overfit").disabled
    assert state.registry().active_jobs() == 1  # it counts against the cap like a training job
    at.button(key="btn_overfit_stop").click().run()
    assert task.wait(10) and task.progress.status == "stopped"
    at.run()
    assert not at.exception and "Stopped at step" in texts(at.warning)
    assert state.registry().active_jobs() == 0 and not at.button(key="btn_overfit").disabled


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
