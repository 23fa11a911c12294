"""The Sweep page's screenshot after a real 12-trial sweep: `python docs/take_sweep_screenshot.py` (as root).

Apart from docs/take_screenshots.py because it runs Ray: it re-runs itself inside `unshare -n` (a network
namespace with loopback only), gives the server its own HOME, Ray temp dir and sweeps folder, and ends every
Ray process it started. Writes docs/screenshots/sweep.png; look at it before committing.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "docs"))

import take_screenshots as shots  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from tests.e2e.server import CHROMIUM, CHROMIUM_ARGS, streamlit_server  # noqa: E402
from tests.e2e.ui import button, wait_until  # noqa: E402
from tests.sweep_support import network_isolation_problem, ray_env  # noqa: E402

# The fast preset's settings in the sidebar (the URL carries them): the sweep varies lr and hidden around them.
FAST = "block_size=4&emb_dim=16&hidden=128&init=scaled&optimizer=adamw&lr=0.02&schedule=cosine&warmup_steps=100"
URL = f"/sweep?{FAST}&batch_size=256&eval_every=100&seed=1"


def main() -> None:
    if network_isolation_problem() and not os.environ.get("SWEEP_SHOT_UNSHARED"):
        os.environ["SWEEP_SHOT_UNSHARED"] = "1"
        script = 'ip link set lo up && exec "$0" "$@"'
        os.execvp("unshare", ["unshare", "-n", "sh", "-c", script, sys.executable, *sys.argv])
    if network_isolation_problem():
        sys.exit(network_isolation_problem())
    with ray_env() as env:
        server_env = {"HOME": env["HOME"], "RAY_TMPDIR": env["RAY_TMPDIR"], "MLP_SWEEP_DIR": tempfile.mkdtemp()}
        with streamlit_server(env=server_env) as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": shots.WIDTH, "height": shots.HEIGHT})
            page.set_default_timeout(60_000)
            page.goto(url + URL)
            button(page, "btn_sweep_start").wait_for()
            for key, value in (("sweep_trials", 12), ("sweep_steps", 1000)):
                box = page.locator(f".st-key-{key} input")
                box.fill(str(value))
                box.press("Enter")
            page.wait_for_timeout(1500)
            button(page, "btn_sweep_start").click()
            wait_until(lambda: "finished: 12 / 12 trials ended" in page.inner_text("body"), 600, 1)
            button(page, "btn_sweep_load").wait_for()
            shots.settle(page)
            shots.shoot(page, "sweep")
            browser.close()


if __name__ == "__main__":
    main()
