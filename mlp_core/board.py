"""The class board: the server's best dev losses on each dataset, of the runs their owners chose to publish.

The lecture's challenge ("beat 2.17") as a class game. A run appears only once its owner publishes it under a
name they choose (the store's `mlp.board_name` tag, mlp_core/store.py); the board shows that name, never an
owner's id. Each dataset gets its own table, best first; the lecture's data also lists the lecture's final
dev loss and the bigram model's as reference rows. Nothing here knows about any UI.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .baselines import LECTURE_DEV_LOSS
from .store import RunRecord

NAME_MIN, NAME_MAX = 2, 24
# Letters (any script), digits, spaces and a few marks: a name a class reads aloud, never markup or a link.
_NAME_RE = re.compile(r"^[\w .'\-]+$")
LECTURE_SOURCE = "lecture"  # the dataset_source param of the lecture's names.txt
BIGRAM_DEV_LOSS = 2.45  # the lecture's count model (makemore part 1) on the lecture's dev split, rounded


@dataclass(frozen=True)
class BoardRow:
    """One line of a dataset's table: a published run, or a reference (the lecture's, the bigram's)."""

    name: str
    dev_loss: float
    params: int | None = None
    steps: int | None = None
    date: float | None = None  # the run's start, seconds since the epoch
    reference: bool = False


def board_name(raw: str) -> str:
    """The name a run is published under, tidied (spaces collapsed); ValueError says what is wrong with it."""
    name = " ".join(str(raw).split())
    if not NAME_MIN <= len(name) <= NAME_MAX:
        raise ValueError(f"a board name has {NAME_MIN} to {NAME_MAX} characters; {name!r} has {len(name)}")
    if not _NAME_RE.match(name) or "_" in name:
        raise ValueError("a board name may use letters, digits, spaces, dots, hyphens and apostrophes only")
    return name


def board(records: list[RunRecord]) -> dict[str, list[BoardRow]]:
    """Per dataset (the one with the most published runs first), its published runs best dev first, each with
    the best dev loss it reached; the lecture's data also gets the reference rows. Unpublished runs are ignored."""
    tables: dict[str, list[BoardRow]] = {}
    lecture: set[str] = set()
    for r in records:
        if not r.board_name or not math.isfinite(r.best_dev):
            continue
        dataset = r.dataset or "?"
        if r.params.get("dataset_source") == LECTURE_SOURCE:
            lecture.add(dataset)
        params = r.params.get("model_params", "")
        tables.setdefault(dataset, []).append(
            BoardRow(r.board_name, r.best_dev, int(float(params)) if params else None, r.step, r.start_time)
        )
    for dataset, rows in tables.items():
        if dataset in lecture:
            rows.append(BoardRow("the lecture (makemore part 2)", LECTURE_DEV_LOSS, reference=True))
            rows.append(BoardRow("bigram counts (makemore part 1)", BIGRAM_DEV_LOSS, reference=True))
        rows.sort(key=lambda row: row.dev_loss)
    return dict(sorted(tables.items(), key=lambda item: -sum(not row.reference for row in item[1])))


__all__ = ["BoardRow", "board", "board_name"]
