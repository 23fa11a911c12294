"""Inside the network: saturation, init loss, BatchNorm, overfitting one batch, and the `diagnose` command."""

import json
import math
import pickle
from pathlib import Path

import pytest
import safetensors.torch
import torch

from mlp_core import data
from mlp_core.checkpoint import checkpoint_bytes, load_checkpoint, save_checkpoint
from mlp_core.config import TrainConfig, to_dict
from mlp_core.diagnostics import (
    DiagnosticsPoint,
    init_verdict,
    loss_floor,
    overfit_one_batch,
    probe,
    probe_batch,
)
from mlp_core.model import build_model, count_params
from mlp_core.sampling import sample_names
from mlp_core.trainer import Trainer
from tests.test_cli import run_main

LN27 = math.log(27)


@pytest.fixture(scope="module")
def names() -> data.NamesDataset:
    """3,000 built-in names: the 27-character alphabet of the lecture, without ../shared."""
    ds = data.make_dataset(data.builtin_words()[:3000], block_size=3, split_seed=42)
    assert ds.vocab.size == 27
    return ds


def at_init(dataset: data.NamesDataset, **settings) -> DiagnosticsPoint:
    config = TrainConfig(device="cpu", **settings)
    return probe(build_model(dataset.vocab.size, config), *probe_batch(dataset))


def trained(dataset: data.NamesDataset, steps: int = 200, **settings) -> Trainer:
    config = TrainConfig(device="cpu", hidden=64, steps=steps, eval_every=50, **settings)
    trainer = Trainer(config, dataset)
    while not trainer.finished:
        trainer.advance(steps)
    return trainer


# ---------------------------------------------------------------------------- the lecture's observations
def test_lecture_init_saturates_far_more_than_scaled_init(names):
    lecture, scaled = at_init(names, init="lecture"), at_init(names, init="scaled")
    (lec,), (sca,) = lecture.layers, scaled.layers
    assert lec.saturated_fraction > 0.5 and sca.saturated_fraction < 0.3
    assert lec.saturated_fraction > 2.5 * sca.saturated_fraction
    assert lec.preact_std > 3 * sca.preact_std
    assert lec.saturation_map.shape == (200, 64) and lec.saturation_map.dtype == bool
    assert lec.saturation_map.mean() > 2 * sca.saturation_map.mean()
    # A histogram's counts cover every value, out-of-range ones included (in the end bins).
    assert lec.preact.counts.sum() == lec.act.counts.sum() == 256 * 200
    assert lec.act.counts[[0, -1]].sum() > sca.act.counts[[0, -1]].sum()


@pytest.mark.parametrize("init", ["lecture", "scaled"])
def test_batchnorm_reduces_saturation(names, init):
    plain, normed = at_init(names, init=init), at_init(names, init=init, norm="batchnorm")
    assert normed.layers[0].saturated_fraction < 0.06  # unit-variance pre-activations: P(|z| > 2.09) is 3.7%
    assert normed.layers[0].saturated_fraction < plain.layers[0].saturated_fraction / 4
    assert normed.layers[0].preact_std == pytest.approx(1.0, abs=0.02)


def test_init_loss_is_near_ln27_for_scaled_init_and_far_above_for_lecture_init(names):
    scaled, lecture = at_init(names, init="scaled"), at_init(names, init="lecture")
    assert scaled.uniform_loss == pytest.approx(LN27)
    assert abs(scaled.loss - LN27) < 0.05
    assert lecture.loss > LN27 + 5
    assert "close to" in init_verdict(scaled.loss, scaled.uniform_loss)
    assert "far above" in init_verdict(lecture.loss, lecture.uniform_loss)


def test_dead_neurons_and_gradient_ratios(names):
    point = at_init(names, init="lecture", hidden=50, hidden_layers=2)
    assert [layer.name for layer in point.layers] == ["hidden 1", "hidden 2"]
    for layer in point.layers:
        always = layer.saturation_map.all(axis=1).sum()  # on the map's 64 examples: at least the dead ones
        assert 0 <= layer.dead_neurons <= always <= layer.neurons
    params = {p.name: p for p in point.params}
    assert set(params) == {"C", "W1", "b1", "Wh0", "bh0", "W2", "b2"}
    w1 = params["W1"]
    assert w1.shape == (30, 50) and w1.grad_data_ratio == pytest.approx(w1.grad_std / w1.data_std)
    assert math.isnan(w1.update_ratio)  # probed with lr 0: no update to size
    model = build_model(27, TrainConfig(hidden=50, device="cpu"))
    w1 = next(p for p in probe(model, *probe_batch(names), lr=0.1).params if p.name == "W1")
    assert w1.update_ratio == pytest.approx(math.log10(0.1 * w1.grad_data_ratio))
    scaled = {p.name: p for p in at_init(names, init="scaled").params}
    assert math.isnan(scaled["b2"].grad_data_ratio)  # a zero-initialised bias has no spread to compare with


# ---------------------------------------------------------------------------- the trainer's hook
def test_trainer_records_diagnostics_and_they_change_nothing(names):
    settings = {"init": "scaled", "norm": "batchnorm", "dropout": 0.2, "hidden_layers": 2}
    on = trained(names, **settings)
    config = TrainConfig(device="cpu", hidden=64, steps=200, eval_every=50, **settings)
    off = Trainer(config, names, diagnostics_every=0)
    while not off.finished:
        off.advance(200)
    assert [p.step for p in on.diagnostics] == [0, 50, 100, 150, 200] and off.diagnostics == []
    state_on, state_off = on.model.state_dict(), off.model.state_dict()
    assert all(torch.equal(state_on[k], state_off[k]) for k in state_on)  # running statistics included
    last = on.diagnostics[-1]
    assert all(math.isfinite(p.update_ratio) for p in last.params)
    assert last.lr == on.lr_at(200)
    # Only the init point and the latest keep a saturation map; every point crosses a process boundary.
    assert [p.layers[0].saturation_map is not None for p in on.diagnostics] == [True, False, False, False, True]
    copy = pickle.loads(pickle.dumps(on.diagnostics))
    assert copy[-1].layers[1].act.counts.tolist() == last.layers[1].act.counts.tolist()


def test_diagnostics_stay_bounded(names, monkeypatch):
    monkeypatch.setattr("mlp_core.diagnostics.MAX_POINTS", 8)
    config = TrainConfig(device="cpu", hidden=16, steps=100, eval_every=100)
    trainer = Trainer(config, names, diagnostics_every=5)
    trainer.advance(100)
    steps = [p.step for p in trainer.diagnostics]
    assert len(steps) <= 8 and steps[0] == 0 and steps[-1] == 100 and steps == sorted(steps)


# ---------------------------------------------------------------------------- overfit one batch
def test_loss_floor_on_a_hand_made_batch():
    x = torch.tensor([[0, 0, 0]] * 4 + [[1, 2, 3]] * 2 + [[4, 4, 4]])
    y = torch.tensor([1, 1, 2, 3, 5, 5, 7])
    # '...' is followed by 1 twice, 2 once and 3 once; the other contexts always by the same character.
    h = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    assert loss_floor(x, y) == pytest.approx(4 * h / 7)
    assert loss_floor(x[4:], y[4:]) == 0.0  # no context with two different successors: the floor is 0


def test_overfit_one_batch_reaches_its_floor(names):
    config = TrainConfig(device="cpu", hidden=64, init="scaled", optimizer="adamw", lr=0.01, schedule="constant")
    calls = []
    result = overfit_one_batch(config, names, steps=600, seed=3, progress=lambda d, t: calls.append((d, t)))
    assert result.batch_size == 32 and result.steps[0] == 0 and result.steps[-1] == 600
    assert result.floor > 0.05  # 32 examples of names always repeat the '...' context
    assert result.losses[0] > result.floor + 2
    assert result.losses[-1] < result.floor + 0.05
    assert calls[-1] == (600, 600)


# ---------------------------------------------------------------------------- batchnorm in inference
def test_batchnorm_uses_running_statistics_in_eval_mode(names):
    trainer = trained(names, init="scaled", norm="batchnorm")
    model = trainer.model
    assert not torch.equal(model.bnmean1, torch.zeros(64))  # the statistics moved from their init
    x = names.splits["dev"][0][:50]
    model.eval()
    with torch.no_grad():
        together = model(x)
        alone = torch.cat([model(x[i : i + 1]) for i in range(len(x))])
    assert torch.allclose(together, alone, atol=1e-5)  # no batch dependence once trained
    model.train()
    names_ = sample_names(model, names.vocab, 5, seed=0)
    assert len(names_) == 5 and model.training  # sampling runs in eval mode and puts the mode back


def test_batchnorm_trains_with_a_batch_of_one(names):
    trainer = trained(names, steps=20, init="scaled", norm="batchnorm", batch_size=1)
    assert trainer.diverged_at is None and math.isfinite(trainer.evaluate("dev"))


def test_batchnorm_parameters_are_counted_and_biases_dropped():
    for layers in (1, 3):
        config = TrainConfig(hidden=16, hidden_layers=layers, norm="batchnorm")
        model = build_model(27, config)
        assert (
            model.num_params()
            == count_params(27, config)
            == count_params(27, config.replace(norm="none")) + 16 * layers
        )
        names_ = {n for n, _ in model.named_parameters()}
        assert "b1" not in names_ and {f"bngain{k}" for k in range(1, layers + 1)} <= names_
        assert {n for n, _ in model.named_buffers()} == {
            f"bn{s}{k}" for s in ("mean", "var") for k in range(1, layers + 1)
        }


def test_checkpoint_round_trip_keeps_batchnorm_running_statistics(names, tmp_path):
    # AdamW: the fast fused update path must carry BatchNorm's gain and shift like any other parameter.
    trainer = trained(names, init="scaled", norm="batchnorm", hidden_layers=2, optimizer="adamw", lr=0.01)
    assert trainer.evaluate("dev") < 2.8
    path = save_checkpoint(tmp_path / "bn.safetensors", trainer.model, trainer.config, names.vocab)
    ckpt = load_checkpoint(path)
    assert ckpt.config.norm == "batchnorm" and not ckpt.model.training
    saved, loaded = trainer.model.state_dict(), ckpt.model.state_dict()
    assert {"bnmean1", "bnvar1", "bnmean2", "bnvar2", "bngain1", "bnbias2"} <= set(loaded)
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    assert trainer.evaluate("dev", model=ckpt.model) == pytest.approx(trainer.evaluate("dev"))


def test_a_checkpoint_from_before_norm_loads_as_norm_none(names, tmp_path):
    config = TrainConfig(device="cpu", hidden=16)
    model = build_model(names.vocab.size, config)
    header_len = int.from_bytes(checkpoint_bytes(model, config, names.vocab)[:8], "little")
    assert header_len > 0
    old_config = {k: v for k, v in to_dict(config).items() if k != "norm"}  # written before the field existed
    metadata = {
        "format": "mlp_core.checkpoint",
        "version": "1",
        "config": json.dumps(old_config),
        "vocab": json.dumps(list(names.vocab.chars)),
        "meta": json.dumps({"step": 0}),
    }
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    path = tmp_path / "old.safetensors"
    path.write_bytes(safetensors.torch.save(tensors, metadata=metadata))
    ckpt = load_checkpoint(path)
    assert ckpt.config.norm == "none" and ckpt.config == config
    assert torch.equal(ckpt.model.W1, model.W1)


# ---------------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def words_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("diag") / "words.txt"
    path.write_text("\n".join(data.builtin_words()[:500]) + "\n")
    return path


@pytest.mark.parametrize("init", ["lecture", "scaled"])
def test_train_json_reports_the_init_loss(words_file, capsys, init):
    argv = ["train", "--data", str(words_file), "--steps", "20", "--hidden", "16", "--eval-every", "10"]
    code, out, _ = run_main([*argv, "--init", init, "--device", "cpu", "--json", "--quiet"], capsys)
    assert code == 0
    summary = json.loads(out.strip().splitlines()[-1])
    if init == "scaled":
        assert abs(summary["init_loss"] - LN27) < 0.1
    else:
        assert summary["init_loss"] > LN27 + 3


@pytest.mark.parametrize("norm", ["none", "batchnorm"])
def test_diagnose_prints_the_documented_json(words_file, tmp_path, capsys, norm):
    ckpt = tmp_path / "m.safetensors"
    argv = ["train", "--data", str(words_file), "--steps", "10", "--hidden", "16", "--device", "cpu", "--quiet"]
    assert run_main([*argv, "--norm", norm, "--hidden-layers", "2", "--out", str(ckpt)], capsys)[0] == 0
    code, out, err = run_main(["diagnose", "--checkpoint", str(ckpt), "--data", str(words_file), "--json"], capsys)
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert set(result) == {"uniform_loss", "loss", "layers", "params"}
    assert result["uniform_loss"] == pytest.approx(LN27)
    assert [layer["name"] for layer in result["layers"]] == ["hidden 1", "hidden 2"]
    for layer in result["layers"]:
        assert {"name", "preact_std", "act_std", "saturated_fraction", "dead_neurons"} <= set(layer)
        assert 0 <= layer["saturated_fraction"] <= 1
    params = {p["name"]: p for p in result["params"]}
    assert params["W1"]["shape"] == [30, 16] and params["W1"]["grad_data_ratio"] > 0
    assert ("bngain1" in params) == (norm == "batchnorm")
    code, out, _ = run_main(["diagnose", "--checkpoint", str(ckpt), "--data", str(words_file)], capsys)
    assert code == 0 and "saturated" in out and "hidden 2" in out and "W1" in out


def test_diagnose_bad_input_is_one_line(tmp_path, words_file, capsys):
    code, out, err = run_main(["diagnose", "--checkpoint", str(tmp_path / "missing.safetensors")], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and "not found" in err
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint at all")
    code, _, err = run_main(["diagnose", "--checkpoint", str(junk), "--json"], capsys)
    assert code == 2 and err.startswith("error:") and err.count("\n") == 1
    config = TrainConfig(hidden=8, device="cpu")
    vocab = data.Vocab.from_words(["abc"])
    ckpt = save_checkpoint(tmp_path / "abc.safetensors", build_model(vocab.size, config), config, vocab)
    code, _, err = run_main(["diagnose", "--checkpoint", str(ckpt), "--data", str(words_file)], capsys)
    assert code == 2 and "vocabulary lacks" in err and err.count("\n") == 1
    code, _, err = run_main(["diagnose"], capsys)
    assert code == 2 and err.count("\n") == 1
