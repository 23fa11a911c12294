"""Checkpoints: download the current model; upload one to inspect, sample from, or keep training."""

import copy

import pandas as pd
import streamlit as st

from dashboard import datasets, models, state
from mlp_core.checkpoint import CheckpointError, describe_checkpoint, load_checkpoint
from mlp_core.data import DatasetError
from mlp_core.registry import CapacityError

st.title("Checkpoints")
run = state.current_run()
reg = state.registry()

st.subheader("Download the current model")
job = run.job
if job is None:
    st.info("No model yet: train one first (sidebar: **Start**).")
else:
    snap = job.snapshot()
    label, dataset_label = run.job_label, run.dataset_label

    st.download_button(
        "Download checkpoint (.safetensors)",
        data=lambda: models.job_checkpoint(run, job, label, dataset_label),  # built on click, in another thread
        file_name=f"makemore_mlp_{label.strip('#')}_step{snap.step}.safetensors",
        mime="application/octet-stream",
        key="btn_download_ckpt",
        help="The weights at the moment you click, with the config and vocabulary (one safetensors file)",
    )
    st.caption(f"Run {label} · step {snap.step:,} ({snap.status}) · {snap.params:,} parameters · {dataset_label}")

st.subheader("Upload a checkpoint")
uploaded = st.file_uploader("A .safetensors checkpoint saved here or by the CLI", key="ckpt_upload")
ss = st.session_state
if uploaded is not None:
    seen = ss.get("ckpt_upload_result")
    if seen is None or seen[0] != uploaded.file_id:
        try:
            # Loaded into the run's checkpoint slot only: the current training run is not touched.
            ckpt = load_checkpoint(uploaded.getvalue())
            run.checkpoint, run.checkpoint_name = ckpt, uploaded.name
            ss["ckpt_upload_result"] = (uploaded.file_id, "")
        except CheckpointError as exc:
            ss["ckpt_upload_result"] = (uploaded.file_id, f"Cannot load {uploaded.name}: {exc}")
    if ss["ckpt_upload_result"][1]:
        st.error(ss["ckpt_upload_result"][1])

ckpt = run.checkpoint
if ckpt is not None:
    st.markdown(f"**{run.checkpoint_name}**")
    info = describe_checkpoint(ckpt)
    st.dataframe(
        pd.DataFrame({"field": list(info), "value": [str(v) for v in info.values()]}),
        hide_index=True,
        key="ckpt_info",
    )

    def sample_it() -> None:
        st.session_state["sample_source"] = "checkpoint"

    c1, c2 = st.columns(2)
    if c1.button("Sample from it", key="btn_ckpt_sample", on_click=sample_it):
        st.switch_page("app_pages/sample.py")
    c2.button(
        "Put its settings in the sidebar",
        key="btn_ckpt_settings",
        on_click=state.apply_config,
        args=(ckpt.config.replace(device=ss.get(state.HP + "device", "auto")),),
    )

    st.markdown(
        "**Keep training it** on the sidebar's dataset (its characters must be in the checkpoint's vocabulary)."
    )
    start_step = int(ckpt.meta.get("step", 0) or 0)
    until = st.number_input(
        "Train until step",
        min_value=start_step + 1,
        max_value=10_000_000,
        value=max(ckpt.config.steps, start_step + 1000),
        step=1000,
        key="ckpt_until",
    )
    if st.button("Keep training", key="btn_ckpt_train", type="primary"):
        settings = state.current_settings()
        try:
            cfg = ckpt.config.replace(steps=int(until), device=settings.config.device)
            ds = datasets.dataset_for(settings.data, cfg.block_size, cfg.split_seed, run, vocab=ckpt.vocab)
            reg.start_new_job(
                run.run_id,
                cfg,
                ds,
                copy.deepcopy(ckpt.model),  # the uploaded copy stays as it is, for sampling and comparing
                start_step=start_step,
                dataset_label=f"{settings.data.label()} from {run.checkpoint_name}",
            )
            st.success(
                f"Training {run.checkpoint_name} from step {start_step:,} to {int(until):,}: see the Train page."
            )
        except (DatasetError, CapacityError, ValueError, RuntimeError) as exc:
            st.error(str(exc))
