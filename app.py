"""makemore MLP explorer: the Streamlit dashboard. Run it with `streamlit run app.py`.

This file sets up every page view: the session's run (reattached from the URL), the sidebar, and
the navigation between the pages in app_pages/, which all show and drive that same run.

The folder is deliberately not called `pages/`: Streamlit treats a `pages/` folder as the legacy
multipage layout until the first st.navigation call, so a server's first request for a sub-page
(and every AppTest rerun) would run that page file alone, without this script and its sidebar.
"""

import streamlit as st

from dashboard import sidebar, state

st.set_page_config(page_title="makemore MLP explorer", page_icon=":material/neurology:", layout="wide")

PAGES = [
    st.Page("app_pages/train.py", title="Train", icon=":material/monitoring:", default=True),
    st.Page("app_pages/lr_sweep.py", title="LR sweep", icon=":material/tune:", url_path="lr-sweep"),
    st.Page("app_pages/embeddings.py", title="Embeddings", icon=":material/scatter_plot:"),
    st.Page(
        "app_pages/train_vs_dev.py", title="Train vs dev", icon=":material/compare_arrows:", url_path="train-vs-dev"
    ),
    st.Page("app_pages/sample.py", title="Sample", icon=":material/text_fields:"),
    st.Page("app_pages/checkpoints.py", title="Checkpoints", icon=":material/save:"),
]

page = st.navigation(PAGES)
run = state.start_session()
settings = state.current_settings()
sidebar.render(run, settings)
state.sync_url(state.current_settings(), run.run_id)
state.show_notices()
page.run()
