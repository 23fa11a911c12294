"""Class board: the server's best dev losses on each dataset, of the runs their owners published (beat 2.17)."""

import streamlit as st

from dashboard import layout

layout.setup_page("Class board")

from dashboard import board_table  # noqa: E402
from mlp_core.store import StoreError  # noqa: E402

st.caption(
    "The lecture ends at a dev loss of **2.17** on its names.txt: can the class beat it? Every run here was "
    "published by whoever trained it, under a name they chose (on the **Runs** page: select a run, then "
    "*Class board*); nothing else about them is shown, and unpublished runs never appear. "
    "Lower is better; *ref* rows are the lecture's own numbers."
)
try:
    tables = board_table.tables()
except StoreError as exc:
    st.error(f"The run store cannot be read: {exc}")
    st.stop()
if not tables:
    st.info(
        "Nobody has published a run yet. Train one, then on the **Runs** page pick it and press "
        "**Publish to the class board** with a name of your choice."
    )
    st.stop()

for dataset, rows in tables.items():
    entries = sum(not row.reference for row in rows)
    st.subheader(dataset)
    st.dataframe(
        board_table.frame(rows),
        hide_index=True,
        key=f"board_{dataset}",
        column_config={
            "#": st.column_config.TextColumn(width="small"),
            "best dev": st.column_config.NumberColumn(format="%.4f", help="The best dev loss the run reached"),
        },
    )
    st.caption(f"{entries:,} published run{'s' if entries != 1 else ''} on {dataset}.")
