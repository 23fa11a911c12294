"""TrainConfig: the lecture's defaults, every bound and choice enforced with a message naming the field."""

import json
import math

import numpy as np
import pytest

from mlp_core.config import (
    BOUNDS,
    CHOICES,
    PRESETS,
    ConfigError,
    TrainConfig,
    field_names,
    from_dict,
    preset,
    to_dict,
)

INT_FIELDS = {name for name in BOUNDS if TrainConfig.__dataclass_fields__[name].type in ("int", int)}


def test_defaults_are_the_lectures_final_cell():
    c = TrainConfig()
    # The notebook: C (27, 10), W1 (30, 200), minibatch 32, 200k steps, lr 0.1 then 0.01 after 100k, one generator seed.
    assert (c.block_size, c.emb_dim, c.hidden, c.hidden_layers) == (3, 10, 200, 1)
    assert (c.init, c.dropout, c.optimizer, c.weight_decay) == ("lecture", 0.0, "sgd", 0.0)
    assert (c.lr, c.schedule, c.decay_at, c.decay_factor) == (0.1, "step", 0.5, 0.1)
    assert (c.batch_size, c.steps, c.lr_decay_step) == (32, 200_000, 100_000)
    assert (c.seed, c.split_seed, c.warmup_steps) == (2147483647, 42, 0)
    assert preset("lecture") == c


def _just_past(name: str, value: float, direction: float) -> float:
    if name in INT_FIELDS:
        return int(value) + int(direction)
    return float(np.nextafter(value, direction * math.inf))


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_each_bound_accepted_at_its_edges_and_refused_just_past(name):
    b = BOUNDS[name]
    for edge in (b.low, b.high):
        value = int(edge) if name in INT_FIELDS else float(edge)
        assert getattr(TrainConfig(**{name: value}), name) == value
    for edge, direction in ((b.low, -1), (b.high, +1)):
        bad = _just_past(name, edge, direction)
        with pytest.raises(ConfigError, match=name) as info:
            TrainConfig(**{name: bad})
        assert "between" in str(info.value)


@pytest.mark.parametrize("name", sorted(CHOICES))
def test_choices_refused_with_the_options_listed(name):
    for ok in CHOICES[name]:
        assert getattr(TrainConfig(**{name: ok}), name) == ok
    with pytest.raises(ConfigError, match=name) as info:
        TrainConfig(**{name: "nonsense"})
    for option in CHOICES[name]:
        assert option in str(info.value)
    with pytest.raises(ConfigError, match=name):
        TrainConfig(**{name: 1})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("hidden", True),
        ("lr", False),
        ("lr", math.nan),
        ("dropout", math.nan),
        ("lr", math.inf),
        ("steps", -math.inf),
        ("hidden", "200"),
        ("lr", "0.1"),
        ("batch_size", None),
        ("hidden", 64.5),
        ("seed", [1]),
    ],
)
def test_wrong_kinds_refused(name, value):
    with pytest.raises(ConfigError, match=name):
        TrainConfig(**{name: value})


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_whole_float_for_an_int_field_becomes_an_int():
    # A float that is a whole number passes validation, so it must not reach torch as a float.
    c = TrainConfig(hidden=64.0, steps=1e3)
    assert c.hidden == 64 and isinstance(c.hidden, int)
    assert c.steps == 1000 and isinstance(c.steps, int)


def test_from_dict_coerces_numeric_strings():
    c = from_dict({"hidden": "64", "lr": "1e-3", "steps": "1e3", "dropout": "0", "init": "scaled", "decay_at": 1})
    assert c.hidden == 64 and isinstance(c.hidden, int)
    assert c.steps == 1000 and isinstance(c.steps, int)
    assert c.lr == 0.001 and isinstance(c.lr, float)
    assert c.dropout == 0.0 and isinstance(c.dropout, float)
    assert c.decay_at == 1.0 and isinstance(c.decay_at, float)
    assert c.init == "scaled"
    assert from_dict({"batch_size": 64.0}).batch_size == 64


def test_from_dict_keeps_large_integer_seeds_exact():
    # A seed from a URL is a string; going through float would silently change it.
    assert from_dict({"seed": "12345678901234567"}).seed == 12345678901234567
    assert from_dict({"seed": str(2**63 - 1)}).seed == 2**63 - 1
    with pytest.raises(ConfigError, match="seed"):
        from_dict({"seed": str(2**63)})


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"lr": "abc"}, "lr"),
        ({"hidden": "lots"}, "hidden"),
        ({"hidden": "2.5"}, "hidden"),
        ({"hidden": "0"}, "hidden"),
        ({"lr": "nan"}, "lr"),
        ({"lr": True}, "lr"),
        ({"optimizer": "adam"}, "optimizer"),
    ],
)
def test_from_dict_refuses_bad_values_naming_the_field(data, field):
    with pytest.raises(ConfigError, match=field):
        from_dict(data)


def test_from_dict_refuses_unknown_keys():
    with pytest.raises(ConfigError, match="unknown setting") as info:
        from_dict({"hidden": 64, "n_embd": 10, "colour": "red"})
    assert "colour" in str(info.value) and "n_embd" in str(info.value)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_round_trip_through_dict_json_and_strings(name):
    c = preset(name)
    d = to_dict(c)
    assert list(d) == field_names()
    assert from_dict(d) == c
    assert from_dict(json.loads(json.dumps(d))) == c
    # A URL query string: every value a string.
    assert from_dict({k: str(v) for k, v in d.items()}) == c


def test_replace_validates_and_copies():
    base = TrainConfig()
    c = base.replace(hidden=64, lr="0.05")
    assert (c.hidden, c.lr) == (64, 0.05)
    assert base.hidden == 200  # the original is untouched (frozen)
    with pytest.raises(ConfigError, match="hidden"):
        base.replace(hidden=0)
    with pytest.raises(ConfigError, match="unknown setting"):
        base.replace(hiddn=64)
    with pytest.raises(AttributeError):
        base.hidden = 5  # type: ignore[misc]


def test_presets_are_valid_and_unknown_preset_is_a_clear_error():
    assert {"lecture", "fast", "best"} <= set(PRESETS)
    for c in PRESETS.values():
        c.validate()
    with pytest.raises(ConfigError, match="unknown preset 'nope'") as info:
        preset("nope")
    for name in PRESETS:
        assert name in str(info.value)
