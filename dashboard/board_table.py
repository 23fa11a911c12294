"""The class board as the pages read it: one store query, cached briefly, as one table per dataset."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from mlp_core.board import BoardRow, board

from . import state

BOARD_TTL_S = 15  # a class reloads the board often; the store is asked at most this often (publishing clears it)


@st.cache_data(ttl=BOARD_TTL_S, show_spinner=False)
def _tables(store_uri: str) -> dict[str, list[BoardRow]]:
    return board(state.store().published())


def tables() -> dict[str, list[BoardRow]]:
    """Per dataset, the published runs best first with the reference rows (StoreError when the store fails)."""
    return _tables(state.store().uri)


def changed() -> None:
    """A run was published or taken off: the next read asks the store again."""
    _tables.clear()


def frame(rows: list[BoardRow]) -> pd.DataFrame:
    """One dataset's table: rank, name, best dev, size, steps, date (a reference row is ranked "ref")."""
    out, rank = [], 0
    for row in rows:
        if not row.reference:
            rank += 1
        out.append(
            {
                "#": "ref" if row.reference else str(rank),
                "name": row.name,
                "best dev": row.dev_loss,
                "parameters": _count(row.params),
                "steps": _count(row.steps),
                "date": time.strftime("%Y-%m-%d", time.localtime(row.date)) if row.date else "",
            }
        )
    return pd.DataFrame(out, columns=["#", "name", "best dev", "parameters", "steps", "date"])


def _count(n: int | None) -> str:
    """46,497; blank for a reference row (a number column would show "None")."""
    return f"{n:,}" if n is not None else ""
