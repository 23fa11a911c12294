"""The sidebar's view of the server's queue: this run's place while its Start waits for a slot, and Cancel.

The queue itself is the registry's (mlp_core.registry: `request_start`, `queue_position`); this only shows it.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from mlp_core.registry import Run

from . import state


def position(run: Run) -> tuple[int, int] | None:
    """(place, queue length) while the run's Start waits; None when it does not."""
    return state.registry().queue_position(run.run_id)


def status(run: Run) -> bool:
    """In the live status: the run's place in the queue (True when it waits). The waiting browser's own refresh
    also moves the queue on, so a slot freed by work with no end hook (an LR test) is taken within a refresh."""
    state.registry().promote()
    place = position(run)
    if place is None:
        return False
    at, of = place
    cap = state.registry().max_active_jobs
    st.info(
        f"**queued**: position {at} of {of} — starts when a slot frees  \n"
        f"(this server trains {cap} run{'s' if cap != 1 else ''} at a time)",
        icon=":material/hourglass_top:",
    )
    return True


def cancel_button(run: Run, act: Callable[[str], None]) -> None:
    """Cancel, for the driver of a waiting run (act is the sidebar's action callback)."""
    if position(run) is None:
        return
    st.button(
        "Cancel (leave the queue)",
        key="btn_cancel_queue",
        on_click=act,
        args=("cancel",),
        help="Take this Start out of the queue; the runs behind it move up",
        width="stretch",
    )
