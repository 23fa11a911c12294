"""A sweep's search space: `--param` specs over TrainConfig fields, checked against the config's ranges.

No Ray here except `tune_space`, which imports it lazily to turn the space into Ray Tune's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from .config import CHOICES, ConfigError, TrainConfig

NOT_SWEPT = ("device",)  # trials ask Ray for CPUs only


class SweepError(ValueError):
    """A sweep cannot start or continue; the message says why in one line."""


@dataclass(frozen=True)
class Param:
    """One swept field: a uniform / log-uniform range (ints stay ints), or a choice of values."""

    field: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    values: tuple[Any, ...] = ()

    @property
    def is_choice(self) -> bool:
        return bool(self.values)

    def spec(self) -> str:
        """Back to the CLI's FIELD=LO:HI[:log] / FIELD=a|b form."""
        if self.is_choice:
            return f"{self.field}=" + "|".join(str(v) for v in self.values)
        return f"{self.field}={self.low:g}:{self.high:g}" + (":log" if self.log else "")


def _field_types() -> dict[str, str]:
    return {f.name: str(f.type) for f in fields(TrainConfig)}


def _number(text: str, name: str, kind: str) -> float | int:
    try:
        value = int(text) if kind == "int" and re.fullmatch(r"[+-]?\d+", text.strip()) else float(text)
    except ValueError:
        raise SweepError(f"--param {name}: {text!r} is not a number") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise SweepError(f"--param {name}: {text!r} is not a finite number")
    return value


def parse_param(spec: str) -> Param:
    """'lr=1e-3:1e-1:log', 'hidden=64:256', 'optimizer=sgd|adamw' or 'dropout=0.1' (a fixed value)."""
    name, sep, rest = spec.partition("=")
    name = name.strip().replace("-", "_")
    types = _field_types()
    if not sep or not name or not rest.strip():
        raise SweepError(f"--param must look like FIELD=LO:HI, FIELD=LO:HI:log or FIELD=a|b|c, got {spec!r}")
    if name not in types:
        raise SweepError(f"--param: unknown field {name!r}; sweepable: {', '.join(sweepable_fields())}")
    if name in NOT_SWEPT:
        raise SweepError(f"--param: {name} cannot be swept (trials run on the CPUs Ray gives them)")
    kind = types[name]
    parts = [p.strip() for p in rest.split(":")]
    if "|" in rest or len(parts) == 1:
        raw = [v.strip() for v in rest.split("|")]
        if any(not v for v in raw):
            raise SweepError(f"--param {name}: empty choice in {rest!r}")
        values = tuple(v if kind == "str" else _number(v, name, kind) for v in raw)
        return Param(name, values=tuple(dict.fromkeys(values)))
    if kind == "str":
        raise SweepError(f"--param {name} takes choices like {name}={'|'.join(CHOICES[name])}, got {rest!r}")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
        raise SweepError(f"--param {name}: a range is LO:HI or LO:HI:log, got {rest!r}")
    low, high = _number(parts[0], name, kind), _number(parts[1], name, kind)
    if low > high:
        raise SweepError(f"--param {name}: LO {parts[0]} is greater than HI {parts[1]}")
    log = len(parts) == 3
    if log and low <= 0:
        raise SweepError(f"--param {name}: a log range needs LO > 0, got {parts[0]}")
    return Param(name, low=low, high=high, log=log)


def sweepable_fields() -> list[str]:
    return [f.name for f in fields(TrainConfig) if f.name not in NOT_SWEPT]


def check_space(params: Sequence[Param], base: TrainConfig) -> None:
    """Every value the space can draw must be a valid TrainConfig (BOUNDS/CHOICES), checked before anything starts."""
    seen: set[str] = set()
    for p in params:
        if p.field in seen:
            raise SweepError(f"--param {p.field} is given twice")
        seen.add(p.field)
        for value in p.values or (p.low, p.high):
            try:
                base.replace(**{p.field: value})
            except ConfigError as exc:
                raise SweepError(f"--param {p.spec()}: {exc}") from None


def largest_config(params: Sequence[Param], base: TrainConfig) -> TrainConfig:
    """The corner of the space that needs the most memory: every numeric field at its largest value."""
    changes: dict[str, Any] = {}
    for p in params:
        numeric = [v for v in (p.values or (p.low, p.high)) if isinstance(v, (int, float))]
        if numeric:
            changes[p.field] = max(numeric)
    return base.replace(**changes) if changes else base


def tune_space(params: Sequence[Param]) -> dict[str, Any]:
    """The Ray Tune search space; integer fields draw integers (HI inclusive)."""
    from ray import tune

    types = _field_types()
    space: dict[str, Any] = {}
    for p in params:
        if p.is_choice:
            space[p.field] = tune.choice(list(p.values))
        elif types[p.field] == "int":
            lo, hi = int(p.low), int(p.high) + 1  # randint's upper end is exclusive
            space[p.field] = tune.lograndint(lo, hi) if p.log else tune.randint(lo, hi)
        else:
            space[p.field] = tune.loguniform(p.low, p.high) if p.log else tune.uniform(p.low, p.high)
    return space


__all__ = [
    "Param",
    "SweepError",
    "check_space",
    "largest_config",
    "parse_param",
    "sweepable_fields",
    "tune_space",
]
