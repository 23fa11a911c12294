"""Every page's frame: page config, the session's run, the navigation and the sidebar, the URL, notices.

The pages use Streamlit's classic layout, the one the user's design card names: `app.py` is the
first page (Train) and each other page is a file in `pages/`. Streamlit runs only the file a URL
names, so every page starts with `setup_page()`. This (and not `st.navigation`) is what makes a
deep link right on a freshly started server: with `st.navigation` plus a `pages/` folder, the first
request for a sub-page ran that page without the sidebar or popped "Page not found" (Streamlit
issue #9624). Streamlit's own page list is hidden (`client.showSidebarNavigation = false` in
.streamlit/config.toml) so the links below can carry proper labels and icons; a page's URL path is its
file name without the number prefix (`pages/1_lr-sweep.py` -> `/lr-sweep`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import streamlit as st

if TYPE_CHECKING:
    from mlp_core.registry import Run


@dataclass(frozen=True)
class Page:
    path: str  # relative to app.py; Streamlit derives the URL path from the file name
    label: str  # the sidebar link
    icon: str
    heading: str  # the page's title, as the page shows it

    @property
    def url_path(self) -> str:
        """The URL path Streamlit gives this page ("" for the first page)."""
        if self.path == "app.py":
            return ""
        return self.path.removeprefix("pages/").removesuffix(".py").lstrip("0123456789_- ")


PAGES: tuple[Page, ...] = (
    Page("app.py", "Train", ":material/monitoring:", "Train"),
    Page("pages/1_lr-sweep.py", "LR sweep", ":material/tune:", "Learning-rate range test"),
    Page("pages/2_embeddings.py", "Embeddings", ":material/scatter_plot:", "Character embeddings"),
    Page("pages/3_train-vs-dev.py", "Train vs dev", ":material/compare_arrows:", "Train vs dev"),
    Page("pages/4_sample.py", "Sample", ":material/text_fields:", "Sample names"),
    Page("pages/5_checkpoints.py", "Checkpoints", ":material/save:", "Checkpoints"),
    Page("pages/6_diagnostics.py", "Inside the network", ":material/neurology:", "Inside the network"),
    Page("pages/7_sweep.py", "Sweep", ":material/grid_view:", "Hyperparameter sweep"),
    Page("pages/8_runs.py", "Runs", ":material/history:", "Runs"),
    Page("pages/9_class.py", "Class board", ":material/leaderboard:", "Class board"),
)


def setup_page(heading: str) -> Run:
    """Run first on every page: the page config, the links, the heading, this session's run, the sidebar, the URL.

    What needs no torch is drawn first: a fresh server imports torch (~1 s) on its first page run, and the
    browser shows the page's links and heading meanwhile (the first page, app.py, defers its own heavy
    imports until after this call for the same reason).
    """
    st.set_page_config(page_title="makemore MLP explorer", page_icon=":material/neurology:", layout="wide")
    with st.sidebar:
        for page in PAGES:
            st.page_link(page.path, label=page.label, icon=page.icon)
    st.title(heading)  # before the sidebar's ~60 widgets: a page switch shows where it went at once
    from mlp_core.ray_link import RayClusterError

    from . import sidebar, state  # here, after the first paint: they import torch

    try:
        run = state.start_session()
    except RayClusterError as exc:  # MLP_RAY_ADDRESS names a cluster that does not answer: one line, no traceback
        print(f"error: {exc}", file=sys.stderr, flush=True)
        st.error(str(exc))
        st.stop()
    st.session_state.pop(state.LIVE_SNAPSHOT, None)  # a full run: the live views take a fresh snapshot
    settings = state.current_settings()
    # The URL first (a page link opens a page with an empty query), then once more after the sidebar, whose
    # widgets may change the settings; the second write happens only if they did.
    state.sync_url(settings, run.run_id)
    sidebar.render(run, settings)
    state.sync_url(state.current_settings(), run.run_id)
    state.show_notices()
    return run
