"""Train vs dev: is the model under- or overfitting? Losses over time, final full-split numbers, all runs compared."""

import math
import zlib

import pandas as pd
import streamlit as st

from dashboard import actions, advice, charts, layout, run_table, state
from mlp_core.baselines import baselines_for
from mlp_core.store import StoreError

layout.setup_page("Train vs dev")
st.session_state.setdefault(state.OVERLAY_X, "step")


def fmt_losses(value: float) -> str:
    """A loss for the table: never-computed or never-evaluated shows "—" (not NaN or Infinity)."""
    return f"{value:.4f}" if value is not None and math.isfinite(value) else "—"


def view(run_id: str, live: bool) -> None:
    """The whole page from one snapshot; re-runs every REFRESH_S seconds while the run trains (live, cheaply)."""
    run = state.run_by_id(run_id)
    if run is None:
        return
    job = run.job
    if job is None:
        st.info("Train a model first (sidebar: **Start**).")
    else:
        snap = state.live_snapshot(job, "page")  # the sidebar's status shows this same snapshot
        st.subheader(f"Run {run.job_label}: loss over training")
        if snap.evals:
            st.plotly_chart(charts.train_dev_figure(snap.evals), key="train_dev_chart", config={"displaylogo": False})
            st.caption(
                f"At every evaluation (each {snap.config.eval_every:,} steps): dev is the whole dev split; train is a "
                "fixed random subset of the training examples the size of dev, so both are measured alike and cheaply."
            )
        elif advice.is_loaded(snap):
            st.info(advice.loaded_story(snap, run.dataset_label))
        else:
            st.info(f"No evaluation yet: the first comes at step {snap.config.eval_every:,}.")

        st.subheader("Full-split losses")
        if st.button(
            "Compute train and dev loss now",
            key="btn_eval_full",
            help="On a copy of the latest weights (safe while training); done automatically when a run ends",
        ):
            with st.spinner("Evaluating the whole train and dev splits…"):
                run.evaluate_current(("train", "dev"))
        summary = run.current_summary()
        if summary is not None and summary.losses_step is not None and math.isfinite(summary.dev_loss):
            gap = summary.dev_loss - summary.train_loss
            c = st.columns(4)
            c[0].metric("train loss", state.fmt_loss(summary.train_loss))
            c[1].metric("dev loss", state.fmt_loss(summary.dev_loss))
            c[2].metric("gap (dev − train)", f"{gap:+.4f}")
            c[3].metric("test loss", state.fmt_loss(summary.test_loss))
            stale = f" (the run is now at step {snap.step:,})" if snap.step != summary.losses_step else ""
            st.caption(f"Weights of step {summary.losses_step:,}{stale}.")
            base = baselines_for(job.dataset)
            level, text = advice.fit_advice(
                summary.train_loss, summary.dev_loss, base.uniform_loss, base.bigram_dev_loss
            )
            getattr(st, level)(text)
        else:
            st.caption("Not computed yet for this run: press the button, or wait for the run to end.")

        with st.expander("Test split (use sparingly)"):
            st.warning(
                "The lecture's rule: tune on dev; evaluate on **test** only very sparingly, at the very end. Every "
                "look at the test loss that influences a choice leaks information, and the test number stops being an "
                "honest estimate of how the model does on new names."
            )
            if st.button("Evaluate on the test split", key="btn_eval_test"):
                with st.spinner("Evaluating the test split…"):
                    s = run.evaluate_current(("train", "dev", "test"))
                st.info(f"Test loss at step {s.losses_step:,}: **{s.test_loss:.4f}**")

    if live and not (job is not None and job.snapshot().active):
        st.rerun()  # the run ended: one full rerun stops the refreshing


def all_runs(run) -> None:
    """Every run of this browser, across restarts (the run store), with this session's live rows: drawn once per
    page run, outside the live view, so a refresh of a training run never queries the store."""
    st.subheader("All your runs")
    try:
        records = state.my_runs()
    except StoreError as exc:
        st.warning(f"The run store cannot be read, so only this session's runs are shown: {exc}")
        records = []
    history = run_table.summaries(records, state.store(), run.history())
    if not history:
        st.caption("Runs appear here once they have trained at least one step.")
    else:
        # Results first (they are what you compare), then the settings that produced them.
        rows = [
            {
                "run": s.label,
                "status": s.status,
                "train": s.train_loss,
                "dev": s.dev_loss,
                "test": s.test_loss,
                "best dev": s.best_dev,
                "params": s.params,
                "steps": s.steps,
                "time (s)": round(s.seconds, 1),
                "block": s.config.block_size,
                "emb": s.config.emb_dim,
                "hidden": s.config.hidden,
                "layers": s.config.hidden_layers,
                "init": s.config.init,
                "optimizer": s.config.optimizer,
                "lr": s.config.lr,
                "schedule": s.config.schedule,
                "batch": s.config.batch_size,
                "dropout": s.config.dropout,
                "weight decay": s.config.weight_decay,
                "dataset": s.dataset,
            }
            for s in history
        ]
        table = pd.DataFrame(rows)
        shown = table.copy()
        for k in ("train", "dev", "test", "best dev"):
            shown[k] = [fmt_losses(v) for v in table[k]]
        st.dataframe(shown, hide_index=True, key="runs_table")
        st.caption(
            "Losses on the full splits; — = not computed (the test loss only on request, above) or, for best dev, "
            "no evaluation yet."
        )
        csv = table.replace([math.inf, -math.inf], math.nan)  # empty cells, not "inf", for a never-evaluated run
        st.download_button(
            "Download the table (CSV)",
            data=csv.to_csv(index=False),
            file_name="makemore_mlp_runs.csv",
            mime="text/csv",
            key="btn_runs_csv",
        )
        if any(s.evals for s in history):
            c1, c2 = st.columns([2, 3])
            x = c1.radio(
                "Overlay x axis",
                charts.OVERLAY_X,
                format_func={"step": "training step", "fraction": "fraction of each run", "time": "wall time"}.get,
                key=state.OVERLAY_X,
                horizontal=True,
                help="Fraction: each run's steps divided by its planned steps, so runs of different lengths align. "
                "Wall time: seconds of training, each run at its average pace",
            )
            # Options by identity (the store's run id), shown by label: a renamed run stays selected.
            label_of = {identity(s): s.label for s in history if s.evals}
            shown = c2.multiselect(
                "Runs to show",
                list(label_of),
                default=list(label_of),
                format_func=label_of.get,
                key=f"overlay_runs_{labels_key(label_of)}",  # a new run joins the selection
                help="Hide a run here or by clicking its legend entry",
            )
            st.plotly_chart(
                charts.runs_overlay_figure(
                    history, x=x, selected=[label_of[i] for i in shown], title="Dev loss of your runs"
                ),
                key="runs_overlay_chart",
                config={"displaylogo": False},
            )
            st.caption(
                "The dev-loss axis runs from the lowest dev loss to twice it: a run that goes higher (diverged) is "
                "drawn at the top edge with a ▲, its true value on hover."
            )
        name_a_run(history, {r.run_id: r.name for r in records})


def labels_key(label_of: dict[str, str]) -> str:
    """A widget key's suffix that changes with the runs' labels: the browser kept showing a renamed run's old
    label in a picker whose key stayed the same (Streamlit 1.67), so a rename makes a new picker."""
    return f"{zlib.crc32(repr(sorted(label_of.items())).encode()):08x}"


def identity(s) -> str:
    """A row's identity across reruns: its run id in the store, else (an untracked run) its label."""
    return s.run_id or s.label


def name_a_run(history: list, names: dict[str, str]) -> None:
    """Rename one of your stored runs (names: run id -> its name in the store) here, where you compare them:
    the table and the overlay's legend show the new name."""
    outcome = st.session_state.pop("tvd_rename_outcome", None)
    if outcome is not None:
        (st.success if outcome[0] == "ok" else st.error)(outcome[1])
    by_id = {s.run_id: s for s in history if s.run_id in names}
    if not by_id:
        return
    ids = list(by_id)
    last = st.session_state.get("tvd_renamed")
    c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
    pick = c1.selectbox(
        "Name a run",
        ids,
        index=ids.index(last) if last in ids else len(ids) - 1,  # the one just renamed, else the newest
        format_func=lambda i: by_id[i].label,
        key=f"tvd_rename_pick_{labels_key({i: s.label for i, s in by_id.items()})}",
    )
    c2.text_input("New name", value=names[pick], key=f"tvd_new_name_{pick}", max_chars=250)
    c3.button("Rename", key="btn_tvd_rename", on_click=rename, args=(pick,), width="stretch")


def rename(store_run_id: str) -> None:
    """The Rename button: through actions.rename_stored_run (this browser's runs only, as on the Runs page)."""
    try:
        name = actions.rename_stored_run(store_run_id, st.session_state.get(f"tvd_new_name_{store_run_id}", ""))
        st.session_state["tvd_rename_outcome"] = ("ok", f"Renamed to **{name}**.")
        st.session_state["tvd_renamed"] = store_run_id
    except (StoreError, PermissionError) as exc:
        st.session_state["tvd_rename_outcome"] = ("error", str(exc))


run = state.current_run()
active = run.job is not None and run.job.snapshot().active
st.fragment(view, run_every=state.REFRESH_S if active else None)(run.run_id, active)
all_runs(run)
