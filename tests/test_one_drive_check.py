"""Issue 15, #1: "who may drive a run" is one check that a page cannot forget.

Every change to a run goes through `dashboard.actions.Driver`, which only `actions.driver(run)` makes, and only
for the browser that drives the run. This test reads the source of the app, every page and the dashboard
package, and fails on any call that changes a run (its job, its LR test, its overfit check, its loaded
checkpoint) anywhere but in dashboard/actions.py: a new button cannot slip past the check.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The registry's and a Run's methods that change a run, and a job's commands.
RUN_CHANGES = {
    "start_new_job",
    "request_start",  # issue 16: a Start that may wait in the server's queue
    "request_resume",
    "cancel_queued",
    "park",
    "continue_job",
    "resume_job",
    "step_job",
    "start_job",
    "start_sweep",
    "start_overfit",
    "open_record",
    "new_job",
    "labelled_job",
    "adopt",
}
JOB_COMMANDS = {"start", "pause", "resume", "step", "stop", "reset"}
RUN_FIELDS = {"job", "checkpoint", "checkpoint_name", "sweep", "overfit"}


def _chain(node: ast.AST) -> list[str]:
    """The names of an attribute chain, outermost last: run.job.stop -> ["run", "job", "stop"]."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        names.append(node.id)
    return names[::-1]


def _makes_driver(node: ast.AST) -> bool:
    """`actions.driver(...)` or `driver(...)`: the one call that hands out a Driver."""
    return isinstance(node, ast.Call) and (_chain(node.func) or [""])[-1] == "driver"


def driver_names(tree: ast.AST) -> set[str]:
    """Names that hold a Driver: assigned from driver(...), or a parameter annotated Driver."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and _makes_driver(node.value):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.arg) and node.annotation and (_chain(node.annotation) or [""])[-1] == "Driver":
            names.add(node.arg)
    return names


def run_changes(path: Path, root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    drivers = driver_names(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            receiver, chain = node.func.value, _chain(node.func)
            if _makes_driver(receiver) or (isinstance(receiver, ast.Name) and receiver.id in drivers):
                continue  # through the Driver: the check has been made
            method = chain[-1]
            if method in RUN_CHANGES or (method in JOB_COMMANDS and "job" in chain[:-1]):
                found.append(f"{path.relative_to(root)}:{node.lineno} {'.'.join(chain)}()")
        elif isinstance(node, ast.Assign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for t in target.elts if isinstance(target, ast.Tuple) else [target]:
                    if isinstance(t, ast.Attribute) and t.attr in RUN_FIELDS and _chain(t)[0] != "self":
                        found.append(f"{path.relative_to(root)}:{node.lineno} {'.'.join(_chain(t))} = ...")
    return sorted(found, key=lambda hit: int(hit.split()[0].rsplit(":", 1)[1]))


def ui_sources() -> list[Path]:
    files = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py")), *sorted((ROOT / "dashboard").glob("*.py"))]
    return [f for f in files if f.name != "actions.py"]


def test_only_the_driver_changes_a_run():
    offenders = [hit for path in ui_sources() for hit in run_changes(path)]
    assert not offenders, "change a run through dashboard.actions.driver(run), not directly:\n" + "\n".join(offenders)


def test_the_scan_sees_a_direct_change(tmp_path):
    """The scan itself finds each kind of direct change (so the test above cannot pass by seeing nothing)."""
    page = tmp_path / "page.py"
    page.write_text(
        "reg.start_new_job(run.run_id, cfg, ds)\nrun.job.stop()\nstate.current_run().job.pause()\n"
        "run.checkpoint, run.checkpoint_name = ckpt, name\nrun.overfit = task\nlauncher.stop()\n"
        "actions.driver(run).start_overfit(task)\nd = actions.driver(run)\nd.stop_job()\n"
        "def act(driver: actions.Driver):\n    driver.resume_job()\n"
    )
    hits = run_changes(page, tmp_path)
    assert [h.split()[0] for h in hits] == [
        "page.py:1",
        "page.py:2",
        "page.py:3",
        "page.py:4",
        "page.py:4",
        "page.py:5",
    ]
