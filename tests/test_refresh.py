"""How often the live views refresh (dashboard.state.refresh_every): fast while a run is young (issue 16)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import streamlit as st

from dashboard import state


class FakeJob:
    def __init__(self, status: str = "running", evals: tuple = ()) -> None:
        self.snap = SimpleNamespace(status=status, active=status in ("running", "paused"), evals=evals)

    def snapshot(self):
        return self.snap


@pytest.fixture(autouse=True)
def clean_session():
    st.session_state.pop(state.YOUNG_SINCE, None)
    yield
    st.session_state.pop(state.YOUNG_SINCE, None)


def test_a_young_run_refreshes_fast_until_its_first_dev_point():
    job = FakeJob()
    assert state.refresh_every(job) == state.YOUNG_REFRESH_S
    job.snap.evals = (object(),)  # the first dev point is in: the usual pace
    assert state.refresh_every(job) == state.REFRESH_S


def test_youth_ends_after_a_few_seconds_without_a_dev_point(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(state.time, "monotonic", lambda: clock[0])
    job = FakeJob()
    assert state.refresh_every(job) == state.YOUNG_REFRESH_S
    clock[0] += state.YOUNG_S + 0.1  # a big model's first steps: not a fast refresh for minutes
    assert state.refresh_every(job) == state.REFRESH_S
    assert state.refresh_every(FakeJob()) == state.YOUNG_REFRESH_S  # a new job is young again


def test_no_job_or_an_ended_one_does_not_refresh_fast():
    assert state.refresh_every(None) is None
    assert state.refresh_every(FakeJob("finished"), idle=2.0) == 2.0
    assert state.refresh_every(FakeJob("finished")) is None
