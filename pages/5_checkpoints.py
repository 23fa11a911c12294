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

layout.setup_page()
st.title("Checkpoints")
run = state.current_run()

st.subheader("Download the current model")
ss = st.session_state
job = run.job
if job is None:
    st.info("No model yet: train one first (sidebar: **Start**).")
else:
    snap = job.snapshot()
    label, dataset_label = run.job_label, run.dataset_label

    st.download_button(
        "Download checkpoint (.safetensors)",
        data=lambda: models.job_checkpoint(run, job, label, dataset_label),  # built on click, in another thread
        # A running job's step moves on before the click: only a settled one puts its step in the name.
        file_name=f"makemore_mlp_{label.strip('#')}{'' if snap.status == RUNNING else f'_step{snap.step}'}.safetensors",
        mime="application/octet-stream",
        key="btn_download_ckpt",
        help="The weights at the moment you click, with the config and vocabulary (one safetensors file)",
        # No rerun after a download: while a run trains, the rerun races the sidebar's auto-refresh and can
        # leave the browser holding a revoked deferred-download id (every later click silently fails).
        on_click="ignore",
    )

    def live_summary(run_id: str, had_best: bool, was_active: bool) -> None:
        """The run's step and best-dev weights, refreshed while it trains. The download buttons stay outside:
        they build their file from the weights of the moment of the click, and a refreshing button can lose it."""
        run = state.run_by_id(run_id)
        if run is None or run.job is None:
            return
        snap = run.job.snapshot()
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
        if (snap.best_step is not None) != had_best or snap.active != was_active:
            st.rerun()  # the buttons below depend on these: one full rerun draws them

    st.fragment(live_summary, run_every=state.REFRESH_S if snap.active else None)(
        run.run_id, snap.best_step is not None, snap.active
    )
    if snap.best_step is not None:
        b1, b2, b3 = st.columns(3)
        b1.download_button(
            "Download the best-dev weights",
            data=lambda: models.job_checkpoint(run, job, label, dataset_label, best=True),
            # While it trains, the best step can move on before the click: only a settled run names it.
            file_name=f"makemore_mlp_{label.strip('#')}_best"
            + ("" if snap.status == RUNNING else f"_step{snap.best_step}")
            + ".safetensors",
            mime="application/octet-stream",
            key="btn_download_best",
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
    outcome = ss.pop(state.BEST_TRAIN_OUTCOME, None)
    if outcome is not None:
        (st.success if outcome[0] == "ok" else st.error)(outcome[1])

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
    outcome = ss.pop(state.CKPT_TRAIN_OUTCOME, None)
    if outcome is not None:
        (st.success if outcome[0] == "ok" else st.error)(outcome[1])
