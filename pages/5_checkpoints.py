"""Checkpoints: download the current model; upload one to inspect, sample from, or keep training."""

import copy

import pandas as pd
import streamlit as st

from dashboard import actions, datasets, layout, models, state
from mlp_core.checkpoint import CheckpointError, describe_checkpoint, load_checkpoint
from mlp_core.config import BOUNDS
from mlp_core.data import DatasetError
from mlp_core.job import RUNNING
from mlp_core.registry import CapacityError


def checkpoint_files(run, job, label: str, dataset_label: str) -> dict:
    """The current and best-dev weights as files: {"current"/"best": (step, bytes, file name) or None}.

    Built once and kept in this session until the user asks for newer weights (or the run settles with newer
    ones): a download button always serves bytes this session holds. (A callable `data` built the file on click,
    but Streamlit keeps such a file in no session, and the clean-up after other script runs, any session's, deleted
    it before a slow browser fetched it: Chromium cancelled the download on the 404.) The step in each file name
    is the step of the weights inside.
    """
    snap = job.snapshot()
    owner = (run.run_id, label, snap.status == RUNNING or (snap.weights_step, snap.best_step))
    kept = st.session_state.get(state.CKPT_FILES)
    if kept is not None and kept[0] == owner:
        return kept[1]
    name = f"makemore_mlp_{label.strip('#')}"
    step, raw = models.job_checkpoint_at(run, job, label, dataset_label)
    files = {"current": (step, raw, f"{name}_step{step}.safetensors"), "best": None}
    if job.best_weights() is not None:
        step, raw = models.job_checkpoint_at(run, job, label, dataset_label, best=True)
        files["best"] = (step, raw, f"{name}_best_step{step}.safetensors")
    st.session_state[state.CKPT_FILES] = (owner, files)
    return files


def refresh_files() -> None:
    """Callback: the next run builds the download files from the latest weights."""
    st.session_state.pop(state.CKPT_FILES, None)


layout.setup_page("Checkpoints")
run = state.current_run()

st.subheader("Download the current model")
ss = st.session_state
job = run.job
if job is None:
    st.info("No model yet: train one first (sidebar: **Start**).")
else:
    snap = job.snapshot()
    label, dataset_label = run.job_label, run.dataset_label

    files = checkpoint_files(run, job, label, dataset_label)
    at_step, data, name = files["current"]
    st.download_button(
        "Download checkpoint (.safetensors)",
        data=data,
        file_name=name,
        mime="application/octet-stream",
        key="btn_download_ckpt",
        help="The weights of the step in the file name, with the config and vocabulary (one safetensors file)",
        on_click="ignore",  # no rerun: the file the click points at stays this session's until the next full run
    )
    if snap.status == RUNNING:
        st.caption(f"The file holds the weights of step {at_step:,}. The run has trained on since:")
        st.button("Take the latest weights", key="btn_ckpt_refresh", on_click=refresh_files)

    def live_summary(run_id: str, had_best: bool, was_active: bool, file_best: int | None = None) -> None:
        """The run's step and best-dev weights, refreshed while it trains. The download buttons stay outside: a
        button redrawn every second would point a click at a file the next redraw replaces."""
        run = state.run_by_id(run_id)
        if run is None or run.job is None:
            return
        snap = state.live_snapshot(run.job, "page")  # the sidebar's status shows this same snapshot
        st.caption(f"Run {label} · step {snap.step:,} ({snap.status}) · {snap.params:,} parameters · {dataset_label}")
        st.subheader("The best-dev weights")
        if snap.best_step is None:
            st.caption(f"None yet: the first dev evaluation comes at step {snap.config.eval_every:,}.")
        else:
            st.markdown(
                f"Run {label} had its lowest dev loss, **{snap.best_dev:.4f}**, at step **{snap.best_step:,}**"
                + (f" (it is now at step {snap.step:,})." if snap.step != snap.best_step else ".")
                + " Later steps can overfit: these weights are kept apart, to download, sample from or train on."
            )
            if file_best is not None and file_best != snap.best_step:
                # The button below keeps the file it was drawn with (a redrawn one could lose a click's download).
                st.caption(
                    f"The download below holds the best weights as of step {file_best:,}; press **Take the latest "
                    f"weights** above for those of step {snap.best_step:,}."
                )
        if (snap.best_step is not None) != had_best or snap.active != was_active:
            st.rerun()  # the buttons below depend on these: one full rerun draws them

    st.fragment(live_summary, run_every=state.REFRESH_S if snap.active else None)(
        run.run_id, snap.best_step is not None, snap.active, (files["best"] or files["current"])[0]
    )
    if snap.best_step is not None:
        b1, b2, b3 = st.columns(3)
        best_step, best_data, best_name = files["best"] or files["current"]
        b1.download_button(
            f"Download the best-dev weights (step {best_step:,})",
            data=best_data,
            file_name=best_name,
            mime="application/octet-stream",
            key="btn_download_best",
            help=f"The weights of step {best_step:,}, where the dev loss was lowest when this file was made",
            on_click="ignore",  # as above
        )

        def sample_best() -> None:
            st.session_state[state.SAMPLE_SOURCE] = models.BEST

        if b2.button("Sample from them", key="btn_best_sample", on_click=sample_best):
            st.switch_page("pages/4_sample.py")
        b3.button(
            "Continue training from them",
            key="btn_best_continue",
            on_click=lambda: continue_from_best(),
            disabled=not state.drives(run),
            help="A new run that starts from the best-dev weights, at the step they were evaluated, and trains to "
            f"step {snap.config.steps:,} with this run's settings and data (this run ends, as with Start)",
        )
    state.show_outcome(state.BEST_TRAIN_OUTCOME)

st.subheader("Upload a checkpoint")
uploaded = st.file_uploader("A .safetensors checkpoint saved here or by the CLI", key=state.CKPT_UPLOAD)
ss = st.session_state
if uploaded is not None:
    seen = ss.get(state.CKPT_UPLOAD_RESULT)
    if seen is None or seen[0] != uploaded.file_id:
        try:
            # Loaded into the run's checkpoint slot only: the current training run is not touched.
            ckpt = load_checkpoint(uploaded.getvalue())
            models.checkpoint_step(ckpt)  # its metadata's step feeds widgets below: refuse one that lies
            actions.driver(run).load_checkpoint(ckpt, uploaded.name)
            ss[state.CKPT_UPLOAD_RESULT] = (uploaded.file_id, "")
        except CheckpointError as exc:
            ss[state.CKPT_UPLOAD_RESULT] = (uploaded.file_id, f"Cannot load {uploaded.name}: {exc}")
        except actions.NotDriving as exc:
            ss[state.CKPT_UPLOAD_RESULT] = (uploaded.file_id, f"{uploaded.name} was not loaded. {exc}")
    if ss[state.CKPT_UPLOAD_RESULT][1]:
        st.error(ss[state.CKPT_UPLOAD_RESULT][1])
        if run.checkpoint is not None:  # never show the previous checkpoint as if it were the rejected upload
            st.warning(
                f"Still loaded: **{run.checkpoint_name}**, the checkpoint you uploaded before "
                f"({uploaded.name} was not loaded). Everything below is about {run.checkpoint_name}."
            )


@actions.guarded(state.BEST_TRAIN_OUTCOME)
def continue_from_best(driver: actions.Driver) -> None:
    """Callback: a new job from the current job's best-dev weights, at the step they were evaluated."""
    run = driver.run
    if run.job is None or run.job.snapshot().best_step is None:
        return
    try:
        job = driver.continue_job("best")
        message = f"Training on from step {job.snapshot().step:,} (the best-dev weights): see the Train page."
        st.session_state[state.BEST_TRAIN_OUTCOME] = ("ok", message)
    except (DatasetError, CapacityError, ValueError, RuntimeError) as exc:
        st.session_state[state.BEST_TRAIN_OUTCOME] = ("error", str(exc))


@actions.guarded(state.CKPT_TRAIN_OUTCOME)
def keep_training(driver: actions.Driver) -> None:
    """Callback (runs before the page, so the sidebar already shows the new job): continue the checkpoint."""
    run, settings = driver.run, state.current_settings()
    ckpt, until = run.checkpoint, st.session_state[state.CKPT_UNTIL]
    start_step = models.checkpoint_step(ckpt)
    try:
        if message := state.range_error("Train until step", until, start_step + 1, int(BOUNDS["steps"].high)):
            raise ValueError(message)
        until = int(until)
        cfg = ckpt.config.replace(steps=until, device=settings.config.device)
        ds = datasets.dataset_for(settings.data, cfg.block_size, cfg.split_seed, run, vocab=ckpt.vocab)
        driver.start_new_job(
            cfg,
            ds,
            copy.deepcopy(ckpt.model),  # the uploaded copy stays as it is, for sampling and comparing
            start_step=start_step,
            dataset_label=f"{settings.data.label(run.upload[0] if run.upload else '')} from {run.checkpoint_name}",
        )
        message = f"Training {run.checkpoint_name} from step {start_step:,} to {until:,}: see the Train page."
        st.session_state[state.CKPT_TRAIN_OUTCOME] = ("ok", message)
    except (DatasetError, CapacityError, ValueError, RuntimeError) as exc:
        st.session_state[state.CKPT_TRAIN_OUTCOME] = ("error", str(exc))


ckpt = run.checkpoint
if ckpt is not None:
    st.markdown(f"**{run.checkpoint_name}**")
    info = describe_checkpoint(ckpt)
    st.dataframe(
        pd.DataFrame(models.checkpoint_rows(info), columns=["field", "value"]),
        hide_index=True,
        key="ckpt_info",
        height=35 * (len(info) + 1) + 3,  # every field, no inner scrolling
    )

    def sample_it() -> None:
        st.session_state[state.SAMPLE_SOURCE] = models.CHECKPOINT

    c1, c2 = st.columns(2)
    if c1.button("Sample from it", key="btn_ckpt_sample", on_click=sample_it):
        st.switch_page("pages/4_sample.py")
    c2.button(
        "Put its settings in the sidebar",
        key="btn_ckpt_settings",
        on_click=state.apply_config,
        args=(ckpt.config.replace(device=ss.get(state.HP + "device", "auto")),),
    )

    start_step, max_steps = models.checkpoint_step(ckpt), int(BOUNDS["steps"].high)
    if start_step >= max_steps:
        st.caption(f"It is at step {start_step:,}: a run trains at most {max_steps:,} steps, so it cannot go on.")
    else:
        st.markdown(
            "**Keep training it** on the sidebar's dataset (its characters must be in the checkpoint's vocabulary)."
        )
        st.number_input(  # no min/max: checked on click, naming the range (see state.range_error)
            "Train until step",
            value=min(max(ckpt.config.steps, start_step + 1000), max_steps),
            step=1000,
            key=state.CKPT_UNTIL,
            help=f"{start_step + 1:,} to {max_steps:,}",
        )
        st.button(
            "Keep training",
            key="btn_ckpt_train",
            type="primary",
            on_click=keep_training,
            disabled=not state.drives(run),
            help="A new run of this session from the checkpoint's weights (the current run ends, as with Start)",
        )
    state.show_outcome(state.CKPT_TRAIN_OUTCOME)
