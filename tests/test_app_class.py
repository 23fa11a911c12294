"""A class on one server, in AppTest (issue 16): the sidebar's queue and parked run, the run-time limit, and the
class board (publish on the Runs page, only published runs shown, best first, per dataset)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest
from test_app import TINY, clean_caches, fresh_registry, run_of, start_long_tiny, texts, train_tiny, wait_for  # noqa: F401
from test_app_runs import browser, runs_page

from dashboard import board_table, state
from mlp_core.config import TrainConfig
from mlp_core.data import make_dataset

BOARD = "pages/9_class.py"
WORDS = ["anna", "bob", "carla", "dave", "emma", "fred", "gina", "hugo", "ines", "jan"] * 3


def someone_else_trains() -> None:
    """Another user's session takes the server's only slot."""
    reg = state.registry()
    reg.max_active_jobs = 1
    reg.start_new_job(reg.create(), TrainConfig(emb_dim=2, hidden=8, steps=10_000_000), make_dataset(WORDS))


def press_start(at: AppTest, **overrides) -> AppTest:
    for key, value in {**TINY, **overrides}.items():
        at.number_input(key=key).set_value(value)
    return at.button(key="btn_start").click().run()


def test_start_at_the_cap_waits_in_the_queue_with_its_place_then_starts_by_itself():
    at = browser("alice")
    someone_else_trains()
    press_start(at)
    assert not at.error and not at.exception, texts(at.error)
    assert "queued**: position 1 of 1 — starts when a slot frees" in texts(at.sidebar.info)
    assert run_of(at).job is None
    second = press_start(browser("bob"), hp_steps=50_000)  # a second waiting browser is behind it
    assert "position 2 of 2" in texts(second.sidebar.info)

    at.button(key="btn_cancel_queue").click().run()  # Cancel leaves the queue; bob moves up
    assert "queued" not in texts(at.sidebar.info) and not [b for b in at.button if b.key == "btn_cancel_queue"]
    assert "position 1 of 1" in texts(second.run().sidebar.info)

    reg = state.registry()
    other = next(r for r in reg._runs.values() if r.job is not None and r.job.snapshot().active)
    other.job.stop(timeout=10)  # the slot frees: bob's run starts by itself
    wait_for(lambda: run_of(second).job is not None and run_of(second).job.snapshot().step > 0)
    second.run()
    assert "queued" not in texts(second.sidebar.info) and run_of(second).job.snapshot().status == "running"
    run_of(second).job.stop(timeout=10)


def test_a_parked_run_says_so_and_resume_continues_it():
    at = browser("carol")
    job = start_long_tiny(at)
    wait_for(lambda: job.snapshot().run_id is not None and job.snapshot().step > 10)
    at.button(key="btn_pause").click().run()
    wait_for(lambda: job.snapshot().status == "paused")
    assert state.registry().park(run_of(at).run_id)
    wait_for(lambda: job.snapshot().status == "parked" and not job.live)
    at.run()
    assert f"**Parked** at step {job.snapshot().step:,}" in texts(at.sidebar.info)
    assert not at.button(key="btn_resume").disabled
    runs = runs_page(at)
    assert runs.button(key="runs_continue").label == "Resume"  # the Runs page offers Resume too
    at.button(key="btn_resume").click().run()
    wait_for(lambda: job.snapshot().status == "running")
    assert run_of(at).job is job
    job.stop(timeout=10)


def test_a_shared_server_refuses_a_run_over_its_time_limit():
    at = browser("dora")
    state.registry().max_run_minutes = 1
    press_start(at, hp_steps=10_000_000)
    error = texts(at.error)
    assert "Not started: This run would take about" in error and "at most 1 minute (MLP_MAX_RUN_MINUTES)" in error
    assert "Lower the steps to about" in error and "again" not in texts(at.sidebar.warning)
    press_start(at, hp_steps=10_000_000)  # pressing again does not force it
    assert run_of(at).job is None


def test_the_time_limit_holds_for_every_button_that_starts_a_run():
    """Not only the sidebar's Start: "Train on from the best weights" (Checkpoints) is refused past the limit too."""
    at = browser("erin")
    train_tiny(at)
    job = run_of(at).job
    state.registry().max_run_minutes = 1e-6  # shorter than any run
    page = at.switch_page("pages/5_checkpoints.py").run()
    page.button(key="btn_best_continue").click().run()
    assert "(MLP_MAX_RUN_MINUTES)" in texts(page.error)
    assert run_of(page).job is job  # nothing started


def publish(at: AppTest, name: str) -> AppTest:
    runs = runs_page(at)
    record_id = runs.session_state["runs_pick"]
    runs.text_input(key=f"runs_board_name_{record_id}").input(name)
    return runs.button(key="runs_publish").click().run()


def board_rows(at: AppTest) -> list[tuple[str, str, float]]:
    page = at.switch_page(BOARD).run()
    assert not page.exception
    rows = []
    for table in page.dataframe:
        frame = table.value
        rows += [(r["#"], r["name"], r["best dev"]) for _, r in frame.iterrows()]
    return rows


def test_the_class_board_shows_only_published_runs_best_first_with_the_lectures_references():
    ada, bo, cy = browser("ada"), browser("bo"), browser("cy")
    for at, seed in ((ada, 1), (bo, 2), (cy, 3)):
        train_tiny(at, hp_seed=seed)
    assert "Nobody has published a run yet" in texts(ada.switch_page(BOARD).run().info)

    assert "On the class board as **Ada L.**" in texts(publish(ada, " Ada   L. ").success)
    bad = publish(bo, "<script>")
    assert "letters, digits, spaces" in texts(bad.error)
    publish(bo, "Bo")  # cy trains but never publishes
    board_table.changed()  # (a real server re-reads after at most BOARD_TTL_S; publishing clears this one's cache)

    rows = board_rows(cy)
    names = [name for _, name, _ in rows]
    assert set(names) == {"Ada L.", "Bo", "the lecture (makemore part 2)", "bigram counts (makemore part 1)"}
    losses = [loss for _, _, loss in rows]
    assert losses == sorted(losses)  # best first, the references among them
    assert [rank for rank, _, _ in rows if rank != "ref"] == ["1", "2"]
    cy_run = run_of(cy).job.snapshot().run_id
    assert all(cy_run not in str(r) for r in rows)

    # Unpublishing takes it off; only the owner can (the one ownership check, state.my_run).
    runs = runs_page(ada)
    runs.button(key="runs_unpublish").click().run()
    assert "no longer on the class board" in texts(runs.success)
    assert "Ada L." not in [name for _, name, _ in board_rows(cy)]
