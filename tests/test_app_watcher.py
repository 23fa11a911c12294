"""Issue 15, #1: a browser that watches another's run (a shared link) changes nothing of it, on any page.

Every button of every page is pressed by the watcher (and a checkpoint uploaded); the owner's run keeps its
job, its status, its loaded checkpoint and its LR test, and the watcher is told why.
"""

from __future__ import annotations

import json

import pytest
from test_app import app, clean_caches, fresh_registry, run_of, start_long_tiny, wait_for  # noqa: F401
from test_app_safety import OCTET, good_ckpt  # noqa: F401 (fixture)

from dashboard import layout, state, sweep_runs

OWN_SWEEP = ("btn_sweep_start", "btn_sweep_stop", "btn_sweep_resume", "btn_sweep_delete")


def fingerprint(run) -> tuple:
    job = run.job
    return (
        id(job),
        job.snapshot().status,
        id(run.checkpoint),
        run.checkpoint_name,
        id(run.sweep),
        id(run.overfit),
        run.controller,
    )


@pytest.fixture
def owned_sweep(tmp_path, monkeypatch):
    """A finished sweep of the watcher's own (so the Sweep page offers "Load best model" to it)."""
    from test_sweep import fake_sweep

    monkeypatch.setattr(sweep_runs, "SWEEPS_ROOT", tmp_path / "sweeps")

    def no_driver(self, cmd, out):
        raise OSError("no sweep driver in this test")

    monkeypatch.setattr(sweep_runs.SweepLauncher, "_spawn", no_driver)
    return lambda viewer: fake_sweep(tmp_path / "sweeps", "sweep-20260101-000000-feed", owner=viewer)


def test_a_watcher_presses_every_button_of_every_page_and_the_run_is_untouched(good_ckpt, owned_sweep):  # noqa: F811
    owner = app(data="builtin")
    job = start_long_tiny(owner)
    wait_for(lambda: job.snapshot().best_step is not None)
    owner.switch_page("pages/5_checkpoints.py").run()
    owner.file_uploader(key=state.CKPT_UPLOAD).set_value(("owner.safetensors", good_ckpt[0], OCTET)).run()
    run = run_of(owner)
    assert run.checkpoint_name == "owner.safetensors"
    before = fingerprint(run)

    watcher = app(**owner.query_params)
    assert run_of(watcher) is run and run.controller != watcher.session_state[state.VIEWER]
    owned_sweep(watcher.session_state[state.VIEWER])
    pressed = []
    for page in layout.PAGES:
        watcher.switch_page(page.path).run()
        # Start/Stop/Resume/Delete sweep act on the watcher's own sweep, never on the run (see tests/test_sweep.py).
        keys = [b.key for b in watcher.main.button if b.key and not b.disabled and b.key not in OWN_SWEEP]
        for key in keys:
            watcher.switch_page(page.path).run()
            try:
                button = watcher.button(key=key)
            except KeyError:
                continue
            if button.disabled:
                continue
            button.click().run()
            pressed.append(key)
            assert not watcher.exception, (key, [e.value for e in watcher.exception])
            assert fingerprint(run) == before, f"{page.path}: {key} changed the watched run"
    assert {"btn_sweep", "btn_sweep_load", "btn_sweep_use", "btn_sample", "btn_overfit"} <= set(pressed), pressed
    watcher.switch_page("pages/7_sweep.py").run()
    watcher.button(key="btn_sweep_load").click().run()
    assert "You are watching this run" in " | ".join(e.value for e in watcher.error)
    watcher.switch_page("pages/1_lr-sweep.py").run()
    watcher.button(key="btn_sweep").click().run()
    assert "You are watching this run" in " | ".join(e.value for e in watcher.error)

    watcher.switch_page("pages/5_checkpoints.py").run()
    watcher.file_uploader(key=state.CKPT_UPLOAD).set_value(("mine.safetensors", good_ckpt[0], OCTET)).run()
    assert "mine.safetensors was not loaded" in " | ".join(e.value for e in watcher.error)
    assert fingerprint(run) == before and run.job is job and job.snapshot().status == "running"
    assert json.dumps(sorted(pressed))  # the keys pressed, for a failure's message
