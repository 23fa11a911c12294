"""A browser session without the browser: Streamlit's websocket protocol, spoken by a small asyncio client.

For benches that need many sessions on one server (bench_capacity.py): a Chromium page costs ~20-80 % of a core
to draw the dashboard, which on this 2-core machine would measure the browsers, not the server. This client does
what the page's script does on the wire and nothing else: it opens /_stcore/stream, asks for a script run (the
URL's query string), and keeps each fragment's `run_every` timer the way the frontend does (an `auto_rerun`
message sets it, a full script run it asks for clears them; a tick while a run is in flight waits for its end). It never
renders. It can click a button by its key (a trigger widget state), and reads the sidebar's "step N / M".

A refresh's latency is measured from when the fragment's timer was due to the server's `script_finished`: what a
watching user sees as the delay of that refresh.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

STEP = re.compile(r"step ([\d,]+) /")


@dataclass
class StreamSession:
    url: str  # http://host:port
    query: str = ""  # the URL's query string, without "?"
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (when, seconds) per fragment refresh
    steps: list[tuple[float, int]] = field(default_factory=list)  # (when, step) from the status
    run_query: str = ""  # the query string the page last wrote (it carries the run id)
    received: int = 0  # bytes
    buttons: dict[str, str] = field(default_factory=dict)  # key -> widget id
    _timers: dict[str, list[float]] = field(default_factory=dict)  # fragment id -> [interval, next due]
    _inflight: bool = False  # a script run was asked for and has not finished
    _due: float | None = None  # when the fragment refresh in flight was due (None: a full run)
    _ws: object = None
    _page: str = ""  # the page's script hash, from the server's new_session (a fragment rerun names its page)

    async def run(self, until: asyncio.Event) -> None:
        ws_url = self.url.replace("http", "ws", 1) + "/_stcore/stream"
        async with websockets.connect(ws_url, subprotocols=["streamlit"], max_size=None, compression=None) as ws:
            self._ws = ws
            await self._rerun(fragment="", due=None)
            ticker = asyncio.create_task(self._tick(until))
            try:
                while not until.is_set():
                    try:
                        raw = await asyncio.wait_for(ws.recv(), 0.5)
                    except TimeoutError:
                        continue
                    self._handle(raw)
            finally:
                ticker.cancel()

    async def click(self, key: str) -> None:
        """Press the button with this key (a full rerun with its trigger set), as a click does."""
        await self._rerun(fragment="", due=None, trigger=self.buttons[key])

    def _handle(self, raw: bytes) -> None:
        self.received += len(raw)
        msg = ForwardMsg()
        msg.ParseFromString(raw)
        kind = msg.WhichOneof("type")
        now = time.perf_counter()
        if kind == "new_session":  # at the start of every run, fragment runs too
            self._page = msg.new_session.page_script_hash
        elif kind == "auto_rerun":
            interval = msg.auto_rerun.interval
            self._timers[msg.auto_rerun.fragment_id] = [interval, now + interval]
        elif kind == "script_finished":
            if self._inflight and self._due is not None:
                self.latencies.append((now, now - self._due))
            self._inflight, self._due = False, None
        elif kind == "page_info_changed":
            self.run_query = msg.page_info_changed.query_string
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            el = msg.delta.new_element
            which = el.WhichOneof("type")
            if which == "button":
                for key in ("btn_start", "btn_stop"):
                    if el.button.id.endswith(key):
                        self.buttons[key] = el.button.id
            elif which == "progress" and (m := STEP.search(el.progress.text)):
                self.steps.append((now, int(m.group(1).replace(",", ""))))

    async def _tick(self, until: asyncio.Event) -> None:
        while not until.is_set():
            await asyncio.sleep(0.02)
            if self._inflight or self._ws is None:
                continue
            now = time.perf_counter()
            for fragment, timer in list(self._timers.items()):
                interval, due = timer
                if now >= due:
                    timer[1] = max(due + interval, now)  # setInterval: the next tick on the same grid
                    await self._rerun(fragment, due)
                    break

    async def _rerun(self, fragment: str, due: float | None, trigger: str = "") -> None:
        back = BackMsg()
        state = back.rerun_script
        state.query_string = self.query
        state.page_script_hash = self._page  # "" at first: the main page (Train)
        if fragment:
            state.fragment_id = fragment
            state.is_auto_rerun = True
        if trigger:
            widget = state.widget_states.widgets.add()
            widget.id, widget.trigger_value = trigger, True
        self._inflight, self._due = True, due
        if not fragment:
            self._timers.clear()  # a full run: the frontend drops every fragment timer; the run sets them again
        await self._ws.send(back.SerializeToString())
