"""The run store's costs, side by side in one process (issue "Runs that last").

1. Tracking on vs off: training steps/s of the same run with and without a RunRecorder (metrics to MLflow every
   FLUSH_S from a writer thread, resume checkpoints every MLP_CHECKPOINT_EVERY_S), at the lecture config and at
   `strong`; rounds alternate so that load drifts hit both alike. Target: >= 0.97x.
2. Opening a finished 200k-step run: from its record to the Train page drawn (AppTest), target <= 0.5 s.
3. The Runs page with 1,000 runs of one browser in the store: the page's script run (AppTest), target <= 1 s.

python bench/bench_store.py [--steps-lecture 30000] [--steps-strong 600] [--rounds 3] [--runs 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MLP_HOME", tempfile.mkdtemp(prefix="bench-store-"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from mlp_core import data, resume  # noqa: E402
from mlp_core.config import PRESETS  # noqa: E402
from mlp_core.recorder import RunRecorder, Tracking  # noqa: E402
from mlp_core.store import TAG, RunStore, owner_tag, run_params  # noqa: E402
from mlp_core.trainer import EvalPoint, Trainer  # noqa: E402


def steps_per_second(config, dataset, words, tracked: bool) -> float:
    trainer = Trainer(config, dataset)
    recorder = None
    if tracked:
        tracking = Tracking(RunStore().uri, None, "bench", run_params(config, "names", "lecture", words), {})
        recorder = RunRecorder(tracking, config.steps)
    chunk, t0 = 1, time.perf_counter()
    while not trainer.finished:
        c0, first = time.perf_counter(), trainer.step
        result = trainer.advance(chunk)
        if recorder is not None:
            recorder.observe(trainer, first, result)
        chunk = max(1, min(100_000, int(0.1 * result.steps_run / max(time.perf_counter() - c0, 1e-9))))
    seconds = time.perf_counter() - t0
    if recorder is not None:
        recorder.close(trainer, "finished")
    return trainer.step / seconds


def bench_tracking(words, steps: dict[str, int], rounds: int) -> None:
    torch.set_num_threads(1)  # as a dashboard worker trains
    print(f"\n1. tracking on vs off (steps/s, {rounds} alternating rounds, median)")
    print(f"{'config':<10} {'steps':>7} {'off':>10} {'on':>10} {'on/off':>7}")
    for name, n in steps.items():
        config = PRESETS[name].replace(steps=n, device="cpu")
        dataset = data.make_dataset(words, config.block_size, config.split_seed)
        off, on = [], []
        for _ in range(rounds):
            off.append(steps_per_second(config, dataset, words, tracked=False))
            on.append(steps_per_second(config, dataset, words, tracked=True))
        ratio = statistics.median(on) / statistics.median(off)
        print(f"{name:<10} {n:>7} {statistics.median(off):>10,.0f} {statistics.median(on):>10,.0f} {ratio:>7.3f}")


def fake_finished_run(store: RunStore, words, owner: str, steps: int = 200_000) -> str:
    """A finished lecture run of `steps` steps in the store, its history as long as a real one (no 200k steps)."""
    config = PRESETS["lecture"].replace(device="cpu")
    dataset = data.make_dataset(words, config.block_size, config.split_seed)
    trainer = Trainer(config, dataset)
    rng = np.random.default_rng(0)
    losses = 2.2 + 0.3 * rng.random(steps)
    trainer.train_history.extend(0, losses)
    trainer.lr_history.extend(0, np.full(steps, 0.1))
    trainer.evals = [EvalPoint(s, 2.2, 2.1) for s in range(1000, steps + 1, 1000)]
    trainer.step = steps
    tags = {f"{TAG}owner": owner, f"{TAG}session": "bench-session", f"{TAG}status": "finished"}
    tags[f"{TAG}step"] = str(steps)
    run_id = store.create_run("lecture · names", run_params(config, "names", "lecture", words), tags)
    resume.save(store.resume_path(run_id), resume.capture(trainer, status="finished"))
    return run_id


def bench_open(words) -> None:
    from streamlit.testing.v1 import AppTest

    store = RunStore()
    owner = owner_tag("bench-viewer")
    fake_finished_run(store, words, owner)
    times = []
    for _ in range(3):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.session_state["viewer_id"] = "bench-viewer"
        at.query_params["run"] = "bench-session"
        t0 = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - t0)
        assert not at.exception, at.exception
        assert any("finished" in md.value for md in at.sidebar.markdown) or at.sidebar.get("progress")
    print("\n2. opening a finished 200,000-step run (restore from the store + the Train page's script run)")
    print(f"   first {times[0]:.3f} s (imports, MLflow's connection), then {min(times[1:]):.3f} s  (target <= 0.5 s)")


def bench_runs_page(words, n: int) -> None:
    from streamlit.testing.v1 import AppTest

    store = RunStore()
    owner = owner_tag("bench-viewer")
    config = PRESETS["lecture"]
    params = run_params(config, "names", "lecture", words)
    t0 = time.perf_counter()
    for i in range(n):
        tags = {f"{TAG}owner": owner, f"{TAG}status": "finished", f"{TAG}step": "1000", f"{TAG}preset": "lecture"}
        run_id = store.create_run(f"bench run {i}", params, tags)
        store.log(run_id, [("best_dev_loss", 2.2, 1000), ("final_dev_loss", 2.2, 1000)], {})
    print(f"\n3. the Runs page with {n:,} runs of one browser (made in {time.perf_counter() - t0:.0f} s)")
    t0 = time.perf_counter()
    records = store.runs(owner=owner)
    query = time.perf_counter() - t0
    t0 = time.perf_counter()
    store.runs(owner=owner, max_results=101)
    page_query = time.perf_counter() - t0
    times = []
    for _ in range(3):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.session_state["viewer_id"] = "bench-viewer"
        at.run()
        at.switch_page("pages/8_runs.py")
        t0 = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - t0)
        assert not at.exception, at.exception
    print(f"   store query: all {len(records):,} runs {query:.3f} s, the newest 101 {page_query:.3f} s")
    print(f"   the page (its newest 100 runs, sidebar included): first {times[0]:.3f} s, "
          f"then {min(times[1:]):.3f} s  (target <= 1 s)")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps-lecture", type=int, default=30_000)
    p.add_argument("--steps-strong", type=int, default=600)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--only", choices=("tracking", "open", "runs"), default=None)
    args = p.parse_args()
    words = data.lecture_words()
    print(f"store: {RunStore().uri}  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    if args.only in (None, "tracking"):
        bench_tracking(words, {"lecture": args.steps_lecture, "strong": args.steps_strong}, args.rounds)
    if args.only in (None, "open"):
        bench_open(words)
    if args.only in (None, "runs"):
        bench_runs_page(words, args.runs)


if __name__ == "__main__":
    main()
