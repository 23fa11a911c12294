"""Issue 15, #12: a URL that lost its run id after a page switch gets it back at the next refresh."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import streamlit.runtime.scriptrunner as scriptrunner

from dashboard import state


class FakeQuery:
    def __init__(self) -> None:
        self.written: list[dict] = []

    def from_dict(self, params: dict) -> None:
        self.written.append(dict(params))


@pytest.fixture
def browser_url(monkeypatch):
    """Run heal_url as if in a rerun whose browser URL has the given query string."""
    query = FakeQuery()
    monkeypatch.setattr(state.st, "query_params", query)
    monkeypatch.setattr(state, "current_settings", lambda: SimpleNamespace(to_query=lambda: {"steps": "200"}))

    def rerun(query_string: str, fragment: bool) -> list[dict]:
        ctx = SimpleNamespace(query_string=query_string, fragment_ids_this_run=["f1"] if fragment else None)
        monkeypatch.setattr(scriptrunner, "get_script_run_ctx", lambda: ctx)
        state.heal_url("abc123")
        return query.written

    return rerun


def test_a_fragment_rerun_writes_a_lost_run_id_back(browser_url):
    assert browser_url("steps=200", fragment=True) == [{"run": "abc123", "steps": "200"}]


def test_a_url_with_the_run_id_is_left_alone(browser_url):
    assert browser_url("run=abc123&steps=200", fragment=True) == []
    assert browser_url("run=someone-else", fragment=False) == []  # a full run: sync_url writes the URL
