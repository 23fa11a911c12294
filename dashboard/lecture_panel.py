"""The Train page's "What differs from the lecture": each change of the sidebar's settings from the lecture's final
cell, one-click ablations (the same run with one change reverted, trained beside it), and the settings as code."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from mlp_core import lecture_diff
from mlp_core.config import TrainConfig, preset_of
from mlp_core.registry import Run
from mlp_core.trainer import estimate_run_seconds

from . import actions, datasets, sidebar, state
from .state import Settings

ABLATE_CHOICE, ABLATE_OUTCOME = "ablate_choice", "ablate_outcome"


def render(run: Run, settings: Settings) -> None:
    """The table of differences, the ablation control and its results, and the copy-as-code boxes."""
    config = settings.config
    diffs = lecture_diff.differences(config)
    st.subheader("What differs from the lecture")
    if not diffs:
        st.success(
            "These are the lecture's own settings (its final cell: dev 2.17 after 200,000 steps). A pure-lecture "
            f"win: the same config run for {lecture_diff.LECTURE_LONG_STEPS:,} steps reached best dev "
            f"**{lecture_diff.LECTURE_LONG_DEV}** here, with no change but time."
        )
    else:
        results = _ablation_results(run, config, [d.name for d in diffs])
        table = pd.DataFrame(
            {
                "change": [d.name for d in diffs],
                "lecture": [d.lecture for d in diffs],
                "these settings": [d.value for d in diffs],
                "what it is": [d.why for d in diffs],
                "dev without it": [results.get(d.name, "not trained yet") for d in diffs],
            }
        )
        st.dataframe(table, hide_index=True, key="lecture_diff_table")
        base = _dev_of(run, config)
        st.caption(
            f"{len(diffs)} change{'s' if len(diffs) != 1 else ''} from the lecture's final cell (block 3, embedding "
            "10, hidden 200, SGD lr 0.1 then 0.01, batch 32, 200,000 steps: dev 2.17). "
            + (
                f"These settings reached dev **{base:.4f}**; 'dev without it' is the same run with that one change "
                "reverted, and its difference."
                if base is not None
                else "Train these settings (Start), then revert one change at a time to see what it bought."
            )
            + f" For contrast, the lecture's config alone reached {lecture_diff.LECTURE_LONG_DEV} by training "
            f"{lecture_diff.LECTURE_LONG_STEPS:,} steps."
        )
        c1, c2 = st.columns([2, 3], vertical_alignment="bottom")
        c1.selectbox("Revert one change", [d.name for d in diffs], key=ABLATE_CHOICE)
        c2.button(
            "Train again without this change",
            key="btn_ablate",
            on_click=_ablate,
            help="A new run of this session with the sidebar's settings but this one change set back to the "
            "lecture's; it appears in Train vs dev beside the others (the current run ends)",
        )
        state.show_outcome(ABLATE_OUTCOME)
    with st.expander("Copy these settings as code"):
        path = _data_path(run, settings)
        st.caption("A command line (the CLI trains exactly these settings):")
        st.code(lecture_diff.cli_command(config, path), language="bash")
        st.caption("A notebook cell (this package's Trainer; the lecture's variables named in comments):")
        st.code(lecture_diff.notebook_cell(config, path), language="python")


def _data_path(run: Run, settings: Settings) -> str | None:
    if settings.data.source == "lecture":
        return None
    if settings.data.source == "upload":
        return run.upload[0] if run.upload else "your_words.txt"
    return "us_names.txt  # python -m mlp_core data build --year ... --out us_names.txt"


def _same(a: TrainConfig, b: TrainConfig) -> bool:
    return a.replace(device="auto") == b.replace(device="auto")


def _dev_of(run: Run, config: TrainConfig) -> float | None:
    """The dev loss of this session's latest run of exactly config (full split when known, else best dev)."""
    for s in reversed(run.history()):
        if _same(s.config, config):
            dev = s.dev_loss if math.isfinite(s.dev_loss) else s.best_dev
            return dev if math.isfinite(dev) else None
    return None


def _ablation_results(run: Run, config: TrainConfig, names: list[str]) -> dict[str, str]:
    """For each change with an ablation trained in this session: its dev loss and the difference it makes."""
    base = _dev_of(run, config)
    out = {}
    for name in names:
        dev = _dev_of(run, lecture_diff.ablation(config, name))
        if dev is None:
            continue
        out[name] = f"{dev:.4f}" + (f" ({dev - base:+.4f})" if base is not None else "")
    return out


@actions.guarded(ABLATE_OUTCOME)
def _ablate(driver: actions.Driver) -> None:
    """Callback: train the sidebar's settings with one change reverted, as this session's new run."""
    settings = state.current_settings()
    name = st.session_state.get(ABLATE_CHOICE)
    try:
        config = lecture_diff.ablation(settings.config, name)
        run = driver.run
        dataset = datasets.dataset_for(settings.data, config.block_size, config.split_seed, run)
        seconds = estimate_run_seconds(config, dataset)
        if seconds > sidebar.HEAVY_RUN_S:
            raise ValueError(
                f"without the {name} change this run would take about {sidebar._duration(seconds)} on this server"
            )
        upload = run.upload[0] if run.upload else ""
        driver.start_new_job(
            config,
            dataset,
            dataset_label=settings.data.label(upload),
            dataset_source=settings.data.store_source(upload),
            preset=preset_of(config),
        )
        st.session_state[ABLATE_OUTCOME] = (
            "ok",
            f"Training these settings without the {name} change: its dev loss fills in the table when it ends.",
        )
    except sidebar.USER_ERRORS as exc:
        st.session_state[ABLATE_OUTCOME] = ("error", f"Not started: {exc}")
