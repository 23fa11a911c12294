"""The Runs page and runs that outlive their server, in AppTest: a browser's runs across a restart (a new
registry on the same store), only its own, rename, delete (asks first), download, resume an interrupted run."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from test_app import clean_caches, fresh_registry, run_of, start_long_tiny, train_tiny, wait_for  # noqa: F401

from dashboard import run_table, state
from mlp_core.checkpoint import load_checkpoint
from mlp_core.store import RunStore, StoreError

RUNS = "pages/8_runs.py"


def browser(name: str, **query) -> AppTest:
    """A fresh session of a browser whose owner secret is `name` (its cookie, in a real browser)."""
    at = AppTest.from_file("../app.py", default_timeout=60)
    at.session_state[state.VIEWER] = f"{name}-{uuid.uuid4().hex}" if "-" not in name else name
    at.query_params = dict(query)
    return at.run()


def same_browser(at: AppTest, **query) -> AppTest:
    again = AppTest.from_file("../app.py", default_timeout=60)
    again.session_state[state.VIEWER] = at.session_state[state.VIEWER]
    again.query_params = dict(query)
    return again.run()


def runs_page(at: AppTest) -> AppTest:
    return at.switch_page(RUNS).run()


def listed(at: AppTest) -> list[str]:
    """The run ids the Runs page offers this browser (its run picker shows names: the ids are in session_state)."""
    boxes = [b for b in at.selectbox if b.key == "runs_pick"]
    if not boxes:
        return []
    ids = []
    for i in range(len(boxes[0].options)):
        at.selectbox(key="runs_pick").select_index(i).run()
        ids.append(at.session_state["runs_pick"])
    return ids


def finished_run(at: AppTest) -> str:
    train_tiny(at)
    job = run_of(at).job
    wait_for(lambda: job.snapshot().final and job.snapshot().run_id is not None)
    return job.snapshot().run_id


def test_a_browsers_runs_are_listed_for_it_alone_and_survive_a_restart():
    alice = browser("alice")
    run_id = finished_run(alice)
    session = alice.session_state[state.RUN_ID]
    assert listed(runs_page(alice)) == [run_id]
    assert not alice.exception
    assert "No runs yet" in " ".join(i.value for i in runs_page(browser("bob")).info)  # a stranger sees none

    # A restart: a new server has an empty registry; the store still has the run.
    state.registry().release_all()
    state.registry.clear()
    back = same_browser(alice, run=session)
    job = run_of(back).job
    assert job is not None and job.snapshot().run_id == run_id and job.snapshot().status == "finished"
    assert job.snapshot().step == 300 and len(job.snapshot().train_history) > 0  # its curves, from the store
    assert not back.exception and back.get("plotly_chart")  # the Train page draws them
    assert state.drives(run_of(back)) or run_of(back).controller == back.session_state[state.VIEWER]
    assert listed(runs_page(back)) == [run_id]

    # Someone else with the link watches it (never drives it) and does not get it listed.
    watcher = browser("carol", run=session)
    assert run_of(watcher).controller != watcher.session_state[state.VIEWER]
    assert listed(runs_page(watcher)) == []


def test_rename_and_delete_ask_first_and_change_the_store():
    alice = browser("dave")
    run_id = finished_run(alice)
    page = runs_page(alice)
    assert listed(page) == [run_id], [e.value for e in (*page.info, *page.warning, *page.error)]
    page.text_input(key=f"runs_new_name_{run_id}").set_value("  my   first run ").run()
    page.button(key="runs_rename").click().run()
    assert RunStore().record(run_id).name == "my first run"
    assert any("Renamed" in s.value for s in page.success)
    assert page.button(key="runs_delete").disabled  # asks first
    page.checkbox(key="runs_delete_sure").check().run()
    page.button(key="runs_delete").click().run()
    with pytest.raises(StoreError):
        RunStore().record(run_id)
    assert listed(page.run()) == []


def test_a_run_is_named_where_runs_are_compared_and_the_overlay_uses_the_name():
    alice = browser("erin")
    run_id = finished_run(alice)
    tvd = alice.switch_page("pages/3_train-vs-dev.py").run()
    assert picker(tvd, "tvd_rename_pick_").value == run_id
    tvd.text_input(key=f"tvd_new_name_{run_id}").set_value("  wide  embedding ").run()
    tvd.button(key="btn_tvd_rename").click().run()
    assert not tvd.exception and RunStore().record(run_id).name == "wide embedding"  # the store's own rename
    assert any("Renamed to **wide embedding**" in s.value for s in tvd.success)
    table = next(d.value for d in tvd.dataframe if "run" in d.value.columns)
    assert list(table["run"]) == ["#1 wide embedding"]
    legend = [t["name"] for t in chart_spec(tvd, "runs_overlay_chart")["data"]]
    assert legend and legend[0].startswith("#1 wide embedding")
    assert picker(tvd, "overlay_runs_").value == [run_id]  # still shown after the rename
    assert picker(tvd, "overlay_runs_").options == ["#1 wide embedding"]  # the picker shows the new name too

    # Someone watching the run through its link sees it compared, but is offered no rename of it.
    watcher = browser("frank", run=alice.session_state[state.RUN_ID]).switch_page("pages/3_train-vs-dev.py").run()
    assert not watcher.exception and not [b for b in watcher.selectbox if b.key.startswith("tvd_rename_pick")]


def picker(at: AppTest, prefix: str):
    """The selectbox or multiselect whose key starts with prefix (the key changes with the runs' labels)."""
    return next(w for w in (*at.selectbox, *at.multiselect) if w.key and w.key.startswith(prefix))


def chart_spec(at: AppTest, key: str) -> dict:
    import json

    return json.loads(next(c for c in at.get("plotly_chart") if c.proto.id.endswith(key)).proto.spec)


def test_the_runs_page_downloads_the_runs_weights():
    alice = browser("erin")
    run_id = finished_run(alice)
    page = runs_page(alice)
    buttons = {b.key: b for b in page.get("download_button")}
    assert {"runs_download", "runs_download_best"} <= set(buttons)
    assert not page.exception and not page.warning
    # The bytes the button serves are a checkpoint of the run's weights (read back through the loader).
    record = RunStore().record(run_id)
    ckpt = load_checkpoint(run_table.checkpoint_of(record, RunStore()))
    assert ckpt.meta["run_id"] == run_id and ckpt.meta["step"] == 300
    best = load_checkpoint(run_table.checkpoint_of(record, RunStore(), "best"))
    assert best.meta["step"] == run_of(alice).job.snapshot().best_step


def test_an_interrupted_run_resumes_from_the_runs_page(monkeypatch):
    monkeypatch.setenv("MLP_CHECKPOINT_EVERY_S", "0.2")
    alice = browser("fred")
    job = start_long_tiny(alice)
    wait_for(lambda: (job.snapshot().checkpoint_step or 0) > 0)
    os.kill(job.pid, signal.SIGKILL)  # the worker dies (an OOM kill)
    assert job.wait(30) and job.snapshot().status == "interrupted"
    run_id = job.snapshot().run_id
    wait_for(lambda: RunStore().record(run_id).status == "interrupted")
    page = runs_page(alice)
    assert listed(page) == [run_id]
    assert page.button(key="runs_continue").label == "Resume"
    page.button(key="runs_continue").click().run()
    resumed = run_of(page).job
    assert resumed is not job and resumed.snapshot().run_id == run_id
    wait_for(lambda: resumed.snapshot().status == "running" and resumed.snapshot().step > 0)
    resumed.stop()


def test_the_first_paint_imports_no_mlflow_and_a_live_refresh_queries_no_store(monkeypatch):
    """The dashboard imports MLflow only when it needs the store (the Runs page, a link to restore), never for a
    page's first paint; and the live views of a training run read memory only, never the database."""
    import subprocess
    import sys

    app_py = str(Path(__file__).resolve().parents[1] / "app.py")
    script = (
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({app_py!r}, default_timeout=60).run()\n"
        "assert not at.exception, at.exception\n"
        "print('mlflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().splitlines()[-1] == "False", out.stderr[-2000:]

    alice = browser("gina")
    job = start_long_tiny(alice)
    wait_for(lambda: job.snapshot().step > 0)
    touched = []
    for name in ("client", "experiment_id"):
        monkeypatch.setattr(RunStore, name, property(lambda self, name=name: touched.append(name)))
    # Every page whose live view refreshes while a run trains (Train vs dev reads the store once per page view,
    # for its table of all runs, outside its live view: not here).
    for page in ("app.py", "pages/2_embeddings.py", "pages/4_sample.py", "pages/6_diagnostics.py"):
        alice.switch_page(page).run()
        assert not alice.exception, alice.exception
    job.stop()
    assert touched == []


def test_opening_your_run_while_watching_anothers_never_replaces_theirs():
    alice = browser("hana")
    job = start_long_tiny(alice)
    carol = browser("ivan")
    mine = finished_run(carol)
    watching = same_browser(carol, run=alice.session_state[state.RUN_ID])  # Carol opens Alice's link
    assert run_of(watching).job is job
    page = runs_page(watching)
    page.button(key="runs_open").click().run()
    assert run_of(alice).job is job and job.snapshot().active  # Alice's run goes on, untouched
    assert run_of(page).run_id != alice.session_state[state.RUN_ID]  # Carol got a run of her own for it
    assert run_of(page).job.snapshot().run_id == mine
    job.stop()
