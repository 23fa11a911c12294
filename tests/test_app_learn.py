"""Issue 17, dashboard: a run that tells the truth and teaches (honest endings and advice, what a loaded model
is, distinct samples, the sidebar's small lies, what differs from the lecture), driven through AppTest."""

from __future__ import annotations

from test_app import (  # noqa: F401 (fixtures)
    app,
    clean_caches,
    fresh_registry,
    run_of,
    texts,
    train_tiny,
)

from dashboard import advice
from mlp_core.job import DIVERGED


# ---------------------------------------------------------------------- 1. honest endings
def test_a_run_that_ends_worse_than_guessing_ends_diverged_with_the_learning_rate_advice():
    at = app()
    at = train_tiny(at, hp_lr=100.0)
    snap = run_of(at).job.snapshot()
    assert snap.status == DIVERGED, snap.status
    assert "worse than guessing" in snap.message and "learning rate" in snap.message
    # Sidebar and page: an error, never a green "Finished".
    assert "worse than guessing" in texts(at.sidebar.error)
    assert not at.sidebar.success
    # The table of runs says so too.
    assert run_of(at).history()[-1].status == DIVERGED
    # Train vs dev reads the whole picture: worse than guessing is the learning rate, not overfitting.
    at.switch_page("pages/3_train-vs-dev.py").run()
    assert not at.exception
    verdict = texts(at.error)
    assert "worse than guessing uniformly" in verdict and "learning rate" in verdict
    assert "overfit" not in texts(at.warning) + texts(at.success)


def test_the_verdict_reads_the_whole_picture():
    # The report's adamw run at lr 100: a gap of 1.92 nats between two failures is not overfitting.
    level, text = advice.fit_advice(100.85, 102.77, 3.30, 2.45)
    assert level == "error" and "learning rate" in text and "overfit" not in text.replace("not overfitting", "")
    assert advice.fit_advice(1.90, 2.10, 3.30, 2.45)[0] == "warning"  # a real gap: overfitting
    assert "far from trained" in advice.fit_advice(2.80, 2.82, 3.30, 2.45)[1]
    assert advice.fit_advice(2.10, 2.15, 3.30, 2.45)[0] == "success"
