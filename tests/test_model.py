"""The MLP: the lecture's shapes, parameter count, init tensors and initial losses."""

import math

import pytest
import torch

from mlp_core.config import TrainConfig
from mlp_core.data import Vocab, build_windows
from mlp_core.model import MLP, build_model, count_params, resolve_device


@pytest.fixture(scope="module")
def names_windows(lecture_names_path):
    """(X, Y) of the whole of names.txt (the copy shipped in data/) at block size 3, unshuffled, as the notebook
    first builds them."""
    words = lecture_names_path.read_text().split()
    vocab = Vocab.from_words(words)
    assert vocab.size == 27
    return build_windows(words, vocab, 3)


def test_lecture_config_has_11897_params():
    config = TrainConfig()
    model = build_model(27, config)
    assert model.num_params() == count_params(27, config) == 11_897
    assert {n: tuple(p.shape) for n, p in model.named_parameters()} == {
        "C": (27, 10),
        "W1": (30, 200),
        "b1": (200,),
        "W2": (200, 27),
        "b2": (27,),
    }


@pytest.mark.parametrize(("block_size", "emb_dim", "hidden"), [(3, 10, 200), (5, 4, 16), (1, 1, 1)])
def test_output_shape(block_size, emb_dim, hidden):
    config = TrainConfig(block_size=block_size, emb_dim=emb_dim, hidden=hidden)
    model = build_model(27, config)
    idx = torch.randint(0, 27, (7, block_size))
    assert model(idx).shape == (7, 27)
    loss = model.loss(idx, torch.randint(0, 27, (7,)))
    assert loss.shape == () and torch.isfinite(loss)


@pytest.mark.parametrize("layers", [2, 3, 4])
def test_extra_hidden_layers_param_count(layers):
    config = TrainConfig(hidden=16, hidden_layers=layers)
    model = build_model(30, config)
    expected = count_params(30, TrainConfig(hidden=16)) + (layers - 1) * (16 * 16 + 16)
    assert model.num_params() == count_params(30, config) == expected
    names = [n for n, _ in model.named_parameters()]
    assert names[:3] == ["C", "W1", "b1"] and names[-2:] == ["W2", "b2"]
    assert {f"Wh{i}" for i in range(layers - 1)} <= set(names)
    assert model(torch.randint(0, 30, (4, 3))).shape == (4, 30)


def test_lecture_init_reproduces_the_notebooks_tensors():
    # The notebook's final cell, drawn in this order from one generator:
    g = torch.Generator().manual_seed(2147483647)
    C = torch.randn((27, 10), generator=g)
    W1 = torch.randn((30, 200), generator=g)
    b1 = torch.randn(200, generator=g)
    W2 = torch.randn((200, 27), generator=g)
    b2 = torch.randn(27, generator=g)
    model = build_model(27, TrainConfig())
    for name, expected in {"C": C, "W1": W1, "b1": b1, "W2": W2, "b2": b2}.items():
        assert torch.equal(getattr(model, name).detach(), expected), name


def test_same_seed_same_weights_different_seed_different():
    a = build_model(27, TrainConfig(hidden=16, init="scaled", seed=1))
    b = build_model(27, TrainConfig(hidden=16, init="scaled", seed=1))
    c = build_model(27, TrainConfig(hidden=16, init="scaled", seed=2))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.W1, c.W1)


@pytest.mark.lecture_data
def test_notebooks_first_full_data_loss(names_windows):
    # The notebook's first model on all 228,146 examples (C 27x2, W1 6x100: 3,481 params) prints 19.5052.
    X, Y = names_windows
    assert len(X) == 228_146
    model = build_model(27, TrainConfig(emb_dim=2, hidden=100))
    assert model.num_params() == 3481
    with torch.no_grad():
        assert model.loss(X, Y).item() == pytest.approx(19.505229949951172, abs=1e-4)


@pytest.mark.lecture_data
def test_lecture_init_first_loss_is_far_above_uniform(names_windows):
    # Plain randn saturates tanh and makes confident wrong guesses: the loss starts far above log(27).
    # (~26 for the final config; the ~17-19 often quoted is the notebook's smaller first model.)
    X, Y = names_windows
    with torch.no_grad():
        loss = build_model(27, TrainConfig()).loss(X, Y).item()
    assert 20 < loss < 32


@pytest.mark.lecture_data
def test_scaled_init_first_loss_is_uniform_on_names(names_windows):
    X, Y = names_windows
    with torch.no_grad():
        loss = build_model(27, TrainConfig(init="scaled")).loss(X, Y).item()
    assert loss == pytest.approx(math.log(27), abs=0.05)


def test_scaled_init_first_loss_is_close_to_uniform():
    # Needs no data: near-zero logits give -log(1/27) whatever the targets.
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 27, (4096, 3), generator=g)
    y = torch.randint(0, 27, (4096,), generator=g)
    with torch.no_grad():
        scaled = build_model(27, TrainConfig(init="scaled")).loss(idx, y).item()
        lecture = build_model(27, TrainConfig()).loss(idx, y).item()
    assert scaled == pytest.approx(math.log(27), abs=0.05)
    assert lecture > 10


def test_resolve_device(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(RuntimeError, match=r"cuda.*no CUDA GPU is available"):
        resolve_device("cuda")


def test_dropout_only_active_in_train_mode():
    model = build_model(27, TrainConfig(hidden=64, dropout=0.5, init="scaled"))
    idx = torch.randint(0, 27, (16, 3))
    model.eval()
    assert torch.equal(model(idx), model(idx))
    model.train()
    assert not torch.equal(model(idx), model(idx))
    # Without dropout, train mode is deterministic too.
    plain = build_model(27, TrainConfig(hidden=64, init="scaled")).train()
    assert torch.equal(plain(idx), plain(idx))


def test_mlp_is_an_nn_module_with_notebook_names():
    model = MLP(27, TrainConfig(hidden=8))
    assert isinstance(model, torch.nn.Module)
    assert set(model.state_dict()) == {"C", "W1", "b1", "W2", "b2"}
