"""Helpers for the tests that run real Ray: an isolated network, a private HOME and temp dir, cleanup.

Hard rule: no test sends Ray traffic to any address but loopback. run_tests.sh runs pytest inside a
network namespace of its own (`unshare -n` + `ip link set lo up`), where loopback is the only
interface; anywhere else (no unshare permission, or pytest run by hand) the Ray tests skip and say why.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RAY_BIN = str(Path(sys.executable).parent / "ray")
NODE_START_TIMEOUT_S = 180.0  # a guard against a hang only: under load a node has taken 30 s to start
OBJECT_STORE_BYTES = 128 * 1024**2  # per node: Ray's default is 30% of the memory, and tests start several nodes


def network_isolation_problem() -> str | None:
    """None when loopback is this process's only network interface, else why the Ray tests must skip."""
    try:
        # /proc/self/net is this process's network namespace (/sys/class/net may still show the host's).
        lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
        interfaces = sorted(line.split(":", 1)[0].strip() for line in lines)
    except OSError as exc:
        return f"cannot list network interfaces ({exc})"
    if interfaces == ["lo"]:
        return None
    why = os.environ.get("MLP_NETNS_SKIP_REASON", "pytest was not started inside `unshare -n` (use ./run_tests.sh)")
    return f"Ray tests need an isolated network namespace: {why}; interfaces here: {', '.join(interfaces)}"


def require_isolated_network() -> None:
    problem = network_isolation_problem()
    if problem:
        pytest.skip(problem)


@contextlib.contextmanager
def ray_env() -> Iterator[dict[str, str]]:
    """A private HOME (Ray's auth token) and RAY_TMPDIR (short: Ray's socket paths must fit 107 bytes).

    On exit every process that still carries this HOME in its environment, i.e. every Ray process the
    test started and did not end, is killed by pid.
    """
    home = tempfile.mkdtemp(prefix="mlph")
    tmp = tempfile.mkdtemp(prefix="mlpr")
    env = {**os.environ, "HOME": home, "RAY_TMPDIR": tmp, "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    try:
        yield env
    finally:
        kill_marked(f"HOME={home}")


def marked_pids(marker: str) -> list[int]:
    """Processes (other than this one) whose environment holds `marker`, e.g. a ray_env's HOME=..."""
    me, found = os.getpid(), []
    for pid in _pids():
        if pid == me:
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker.encode() in environ:
            found.append(pid)
    return found


def kill_marked(marker: str) -> None:
    for _ in range(3):
        found = marked_pids(marker)
        if not found:
            return
        for pid in found:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def descendants(root: int) -> list[int]:
    """Every process below root (through /proc's parent links)."""
    parents: dict[int, int] = {}
    for pid in _pids():
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            parents[pid] = int(stat.rsplit(")", 1)[1].split()[1])
    out, frontier = [], [root]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out += kids
        frontier += kids
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class RayCluster:
    """Nodes started with `ray start --block`, each in a session of its own: ending a node's process group ends
    that node (its raylet, its workers) and nothing else. Never `ray stop`, which would end every Ray here."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.env, self.port = env, port
        self.nodes: list[subprocess.Popen] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add_node(self, num_cpus: int) -> subprocess.Popen:
        """The head first, then workers that join it; each is up (`ray start` says so) before this returns."""
        head = not self.nodes
        role = ["--address", self.address]
        if head:
            role = ["--head", "--port", str(self.port), "--include-dashboard", "false"]
        log = Path(self.env["RAY_TMPDIR"]) / f"node{len(self.nodes)}.log"  # kept: a node that fails says why there
        with log.open("wb") as out:
            node = subprocess.Popen(
                [
                    RAY_BIN, "start", *role, "--num-cpus", str(num_cpus), "--object-store-memory",
                    str(OBJECT_STORE_BYTES), "--block", "--temp-dir", self.env["RAY_TMPDIR"],
                ],
                env=self.env, start_new_session=True, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.nodes.append(node)
        deadline = time.monotonic() + NODE_START_TIMEOUT_S
        while "Ray runtime started" not in log.read_text(errors="replace"):
            if node.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                raise AssertionError(f"a Ray node did not start (exit code {node.poll()}): {tail}")
            time.sleep(0.1)
        return node

    def kill_node(self, node: subprocess.Popen) -> None:
        """A node lost at once, as if its machine died: SIGKILL to its process group (`ray start`, its raylet and
        agents) and to every process below it, its workers included (Ray puts each in a process group of its own)."""
        below = descendants(node.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.pid, signal.SIGKILL)
        for pid in below:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        node.wait(10)

    def end(self) -> None:
        for node in self.nodes:  # each `ray start --block` ends its node with its process group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.pid, signal.SIGTERM)
        for node in self.nodes:
            try:
                node.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait(10)


@contextlib.contextmanager
def ray_cluster(env: dict[str, str], port: int, cpus: Sequence[int] = (1, 1)) -> Iterator[RayCluster]:
    """A local cluster of len(cpus) nodes (the head first) on loopback; every node ends with the block."""
    cluster = RayCluster(env, port)
    try:
        for n in cpus:
            cluster.add_node(n)
        yield cluster
    finally:
        cluster.end()


def sweep_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "mlp_core", "sweep", *args]


def start_sweep(env: dict[str, str], *args: str) -> subprocess.Popen:
    """The CLI in its own session, so a test can kill it (and only it) as a group."""
    return subprocess.Popen(
        sweep_cmd(*args), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def is_loopback(address: str) -> bool:
    """127.x, ::1 and ::ffff:127.x are loopback; '*', 0.0.0.0 and :: (every interface) are not."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback


def listening_addresses() -> set[str]:
    """Local addresses of every listening TCP socket in this network namespace (`ss -ltn`)."""
    out = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=True).stdout
    addrs = set()
    for line in out.splitlines():
        cols = line.split()
        if len(cols) >= 4:
            addrs.add(cols[3].rsplit(":", 1)[0].strip("[]"))
    return addrs
