"""The run store: every run kept in MLflow, so that nothing is lost to a restart.

MLflow sits at this module's edge and nowhere else: the rest of the project reads `RunRecord`s and resume
checkpoints, never MLflow's objects. By default the store is an embedded SQLite database in one state
directory, `$MLP_HOME/mlflow.db` (WAL mode, so several servers and CLI runs can share it), with its
artifacts beside it; `MLFLOW_TRACKING_URI`, when set, wins, and runs then go to that tracking server or
database (several dashboard servers, or a laptop and a cluster, share one history that way).

A run in the store is one training run (a CLI `train`, a dashboard job, a sweep trial) with:
- params: every TrainConfig field under its own name, plus the dataset's name, source, size and sha256;
- metrics: `train_loss` (the history the dashboard keeps, not every step), `dev_loss` and `train_subset_loss`
  at each evaluation, final full-split losses, `best_dev_loss`;
- tags: status, step, the owner (a hash of the browser's secret), the preset, a heartbeat and the pid of the
  process training it (RUNNING alone does not prove that process lives), and, only once its owner publishes it
  to the class board, the name it appears under there (`mlp.board_name`, see mlp_core/board.py);
- artifacts: the resume checkpoint (`checkpoints/resume.safetensors`), and for an upload, its words.

MLflow is imported on first use only: a dashboard's first paint never waits for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import shutil
import socket
import sqlite3
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .processes import process_start

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from .resume import ResumeState

HOME_ENV = "MLP_HOME"
DEFAULT_HOME = Path(__file__).resolve().parent.parent / "mlp_home"  # the project folder; ignored by git
EXPERIMENT = "makemore-mlp"
RESUME_ARTIFACT = "checkpoints/resume.safetensors"
WORDS_ARTIFACT = "dataset/words.txt"
# A run whose heartbeat is older than this, and whose process cannot be checked from here, is interrupted.
HEARTBEAT_STALE_S = 60.0
LIVE_STATUSES = ("running", "paused")
RESUMABLE_STATUSES = ("interrupted", "parked")  # Resume goes on from the run's last resume checkpoint
RUN_ID_RE = re.compile(r"^[0-9a-f]{32}$")
TAG = "mlp."  # our tags: mlp.status, mlp.step, mlp.owner, ...
BOARD_TAG = f"{TAG}board_name"  # set only on a run its owner published to the class board


class StoreError(RuntimeError):
    """The run store cannot be used (unreachable, damaged, read-only, no such run); one line says why."""


def home() -> Path:
    """The state directory: the run store, its artifacts, resume checkpoints' cache, sweeps."""
    raw = os.environ.get(HOME_ENV, "").strip()
    return Path(raw).expanduser().resolve() if raw else DEFAULT_HOME


def sweeps_dir() -> Path:
    """Where sweeps live: MLP_SWEEP_DIR when set, else $MLP_HOME/sweeps."""
    raw = os.environ.get("MLP_SWEEP_DIR", "").strip()
    return Path(raw).expanduser() if raw else home() / "sweeps"


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set; else the embedded SQLite store in `home()`."""
    raw = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    return raw or f"sqlite:///{home() / 'mlflow.db'}"


def owner_tag(secret: str) -> str:
    """What the store keeps of a browser's owner secret: a hash, so the store never holds a usable secret."""
    return hashlib.sha256(f"mlp-owner:{secret}".encode()).hexdigest()[:32]


def check_run_id(run_id: str) -> str:
    """A run id as MLflow makes them (32 hex digits); anything else is refused before it reaches a query."""
    run_id = (run_id or "").strip()
    if not RUN_ID_RE.match(run_id):
        raise StoreError(f"no run with id {run_id[:40]!r} (a run id is 32 hex digits; `runs` lists them)")
    return run_id


def liveness_tags(status: str) -> dict[str, str]:
    """Tags that let any reader tell a live run from one whose process died (heartbeat, host, pid + start)."""
    pid = os.getpid()
    return {
        f"{TAG}status": status,
        f"{TAG}heartbeat": f"{time.time():.1f}",
        f"{TAG}host": socket.gethostname(),
        f"{TAG}pid": str(pid),
        f"{TAG}pid_start": str(process_start(pid)),
    }


def effective_status(tags: dict[str, str], now: float | None = None) -> str:
    """The recorded status, except that a live status whose process is gone reads "interrupted"."""
    status = tags.get(f"{TAG}status", "unknown")
    if status not in LIVE_STATUSES:
        return status
    if tags.get(f"{TAG}host") == socket.gethostname() and tags.get(f"{TAG}pid", "").isdigit():
        started = process_start(int(tags[f"{TAG}pid"]))
        alive = started is not None and str(started) == tags.get(f"{TAG}pid_start")
        return status if alive else "interrupted"
    try:
        beat = float(tags.get(f"{TAG}heartbeat", "0"))
    except ValueError:
        beat = 0.0
    return status if (now or time.time()) - beat < HEARTBEAT_STALE_S else "interrupted"


@dataclass(frozen=True)
class RunRecord:
    """One run as the store has it: what the Runs page and `runs` show, and what a resume needs."""

    run_id: str
    name: str
    status: str  # effective: "interrupted" when its process is gone
    step: int
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, float]
    start_time: float  # seconds since the epoch
    end_time: float | None
    artifact_uri: str = ""

    @property
    def owner(self) -> str:
        return self.tags.get(f"{TAG}owner", "")

    @property
    def best_dev(self) -> float:
        return self.metrics.get("best_dev_loss", math.nan)

    @property
    def dev_loss(self) -> float:
        return self.metrics.get("final_dev_loss", self.metrics.get("dev_loss", math.nan))

    @property
    def train_loss(self) -> float:
        return self.metrics.get("final_train_loss", self.metrics.get("train_subset_loss", math.nan))

    @property
    def gap(self) -> float:
        return self.dev_loss - self.train_loss

    @property
    def seconds(self) -> float:
        return float(self.tags.get(f"{TAG}seconds", "nan"))

    @property
    def dataset(self) -> str:
        return self.params.get("dataset_name", "")

    @property
    def board_name(self) -> str:
        """The name the run is published under on the class board ("" when it is not published)."""
        return self.tags.get(BOARD_TAG, "")

    @property
    def preset(self) -> str:
        return self.tags.get(f"{TAG}preset", "")

    @property
    def resumable(self) -> bool:
        return self.status in RESUMABLE_STATUSES


@dataclass
class RunStore:
    """The store at `uri` (default: `tracking_uri()`). Connects (and creates an empty store) on first use."""

    uri: str = field(default_factory=tracking_uri)
    _client: Any = field(default=None, repr=False)
    _experiment_id: str = ""

    # ------------------------------------------------------------------ connection
    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._connect()
        return self._client

    @property
    def experiment_id(self) -> str:
        if not self._experiment_id:
            self._connect()
        return self._experiment_id

    @property
    def local(self) -> bool:
        """True for the embedded SQLite default (or any sqlite URI): artifacts are files on this machine."""
        return self.uri.startswith("sqlite:")

    def _connect(self) -> None:
        with _quiet_mlflow():
            from mlflow.exceptions import MlflowException
            from mlflow.tracking import MlflowClient
        try:
            if self.local:
                self._prepare_sqlite()
            elif self.uri.startswith(("http://", "https://")):
                # MLflow's client retries a lost server for minutes and draws progress bars on stderr: a run's
                # writer thread should give up sooner (it tries again at the next flush); a user's setting wins.
                os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
                os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
                os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
                _check_server(self.uri)
            with _lock(self._lock_path()):  # the client's first use creates (migrates) the database
                client = MlflowClient(tracking_uri=self.uri)
                exp = client.get_experiment_by_name(EXPERIMENT)
                if exp is None:
                    artifacts = (home() / "artifacts").as_uri() if self.local else None
                    exp_id = client.create_experiment(EXPERIMENT, artifact_location=artifacts)
                else:
                    exp_id = exp.experiment_id
        except MlflowException as exc:
            raise StoreError(f"the run store at {self.uri} cannot be used: {_one_line(exc)}") from None
        except Exception as exc:  # sqlalchemy's and requests' errors: a damaged file, a server that does not answer
            raise StoreError(f"the run store at {self.uri} cannot be used: {_one_line(exc)}") from None
        self._client, self._experiment_id = client, exp_id

    def _db_path(self) -> Path:
        return Path(urllib.parse.urlparse(self.uri).path)

    def _lock_path(self) -> Path | None:
        return self._db_path().with_suffix(".lock") if self.local else None

    def _prepare_sqlite(self) -> None:
        """The folder, and WAL mode for every connection (readers never wait for writers).

        The file itself is never opened here, not even to peek at its header: closing any descriptor of a file
        releases every POSIX lock this process holds on it, SQLite's included, and another process could then write
        while one of our connections believes it holds a lock (SQLite's "how to corrupt a database", 2.2). A damaged
        file is reported from SQLite's own error instead (`_one_line`).
        """
        self._db_path().parent.mkdir(parents=True, exist_ok=True)
        _wal_on_connect()

    # ------------------------------------------------------------------ writing
    def create_run(self, name: str, params: dict[str, Any], tags: dict[str, str]) -> str:
        """A new run with these params and tags; returns its id."""
        from mlflow.entities import Param

        try:
            run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
            run_id = run.info.run_id
            items = [Param(k, str(v)) for k, v in params.items()]
            for i in range(0, len(items), 100):
                self.client.log_batch(run_id, params=items[i : i + 100])
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot create a run in {self.uri}: {_one_line(exc)}") from None
        return run_id

    def log(self, run_id: str, metrics: list[tuple[str, float, int]], tags: dict[str, str]) -> None:
        """Metrics (key, value, step) and tags in as few round trips as MLflow allows."""
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        ms = [Metric(k, float(v), now, int(s)) for k, v, s in metrics if v is not None and math.isfinite(v)]
        ts = [RunTag(k, str(v)) for k, v in tags.items()]
        for i in range(0, max(len(ms), 1), 1000):
            self.client.log_batch(run_id, metrics=ms[i : i + 1000], tags=ts if i == 0 else [])

    def end(self, run_id: str, status: str) -> None:
        """Mark the run ended in MLflow's own terms (FINISHED, KILLED or FAILED)."""
        ended = {"finished": "FINISHED", "stopped": "KILLED", "interrupted": "KILLED", "parked": "KILLED"}
        mlflow_status = ended.get(status, "FAILED")
        self.client.set_terminated(run_id, status=mlflow_status)

    def rename(self, run_id: str, name: str) -> None:
        name = " ".join(name.split())[:250]
        if not name:
            raise StoreError("a run's name cannot be empty")
        self._guard(lambda: self.client.update_run(check_run_id(run_id), name=name))

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self._guard(lambda: [self.client.set_tag(check_run_id(run_id), k, v) for k, v in tags.items()])

    def publish(self, run_id: str, name: str) -> None:
        """Show the run on the class board under `name` (already checked: mlp_core.board.board_name)."""
        self.set_tags(run_id, {BOARD_TAG: name})

    def unpublish(self, run_id: str) -> None:
        """Take the run off the class board (no-op when it is not on it)."""
        run_id = check_run_id(run_id)
        if self.record(run_id).board_name:
            self._guard(lambda: self.client.delete_tag(run_id, BOARD_TAG))

    def published(self, max_results: int = 5000) -> list[RunRecord]:
        """Every run on the class board, in one query (its owner chose to publish it)."""

        def search() -> list:
            return self.client.search_runs(
                [self.experiment_id], filter_string=f"tags.`{BOARD_TAG}` != ''", max_results=max_results
            )

        return [_record(run) for run in self._guard(search)]

    def delete(self, run_id: str) -> None:
        """Delete the run (MLflow's soft delete: `mlflow gc` purges it) and our local copies of its files."""
        run_id = check_run_id(run_id)
        self.record(run_id)  # an unknown id is an error, not a silent no-op
        local = self.local_artifacts(run_id)
        self._guard(lambda: self.client.delete_run(run_id))
        if local is not None:
            for rel in (RESUME_ARTIFACT, WORDS_ARTIFACT):
                with contextlib.suppress(OSError):
                    (local / rel).unlink()
        shutil.rmtree(self.cache_dir(run_id), ignore_errors=True)

    # ------------------------------------------------------------------ reading
    def record(self, run_id: str) -> RunRecord:
        run_id = check_run_id(run_id)
        try:
            run = self.client.get_run(run_id)
        except StoreError:
            raise
        except Exception as exc:
            if "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")) or "not found" in str(exc).lower():
                raise StoreError(f"no run with id {run_id} in {self.uri}") from None
            raise StoreError(f"cannot read run {run_id}: {_one_line(exc)}") from None
        if run.info.lifecycle_stage == "deleted":
            raise StoreError(f"run {run_id} was deleted")
        return _record(run)

    def runs(self, owner: str | None = None, *, session: str | None = None, max_results: int = 5000) -> list[RunRecord]:
        """The store's runs, newest first; only the owner's (an `owner_tag`) or a session's when given."""
        filters = []
        if owner is not None:
            filters.append(f"tags.`{TAG}owner` = '{_quote(owner)}'")
        if session is not None:
            filters.append(f"tags.`{TAG}session` = '{_quote(session)}'")

        def search() -> list:
            return self.client.search_runs(
                [self.experiment_id],
                filter_string=" and ".join(filters),
                max_results=max_results,
                order_by=["attributes.start_time DESC"],
            )

        return [_record(run) for run in self._guard(search)]

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        history = self._guard(lambda: self.client.get_metric_history(check_run_id(run_id), key))
        return sorted((m.step, m.value) for m in history)

    # ------------------------------------------------------------------ files
    def local_artifacts(self, run_id: str, artifact_uri: str | None = None) -> Path | None:
        """The run's artifact folder when it is on this machine (the SQLite default), else None.

        The path comes from the store (the run's artifact URI), never from the run id a user typed.
        """
        uri = artifact_uri if artifact_uri is not None else self.record(run_id).artifact_uri
        parsed = urllib.parse.urlparse(uri)
        if parsed.scheme in ("", "file"):
            return Path(urllib.parse.unquote(parsed.path))
        return None

    def cache_dir(self, run_id: str) -> Path:
        """A run's files on this machine when the store's artifacts are remote (laid out as its artifacts are)."""
        return home() / "cache" / hashlib.sha256(check_run_id(run_id).encode()).hexdigest()[:32]

    def cache_path(self, run_id: str) -> Path:
        """Where a resume checkpoint is written on this machine when the store's artifacts are remote."""
        return self.cache_dir(run_id) / RESUME_ARTIFACT

    def resume_path(self, run_id: str, artifact_uri: str | None = None) -> Path:
        local = self.local_artifacts(run_id, artifact_uri)
        return local / RESUME_ARTIFACT if local is not None else self.cache_path(run_id)

    def save_weights(self, run_id: str, name: str, raw: bytes) -> None:
        """A plain checkpoint as the run's artifact `checkpoints/<name>` (its current or best-dev weights)."""
        from .checkpoint import write_atomic

        local = self.local_artifacts(run_id)
        path = (local if local is not None else self.cache_dir(run_id)) / "checkpoints" / name
        write_atomic(path, raw)
        if local is None:
            self.client.log_artifact(run_id, str(path), artifact_path="checkpoints")

    def upload_resume(self, run_id: str, path: Path) -> None:
        """Copy a resume checkpoint written in the cache to a remote artifact store (no-op when local)."""
        if self.local_artifacts(run_id) is None:
            self.client.log_artifact(run_id, str(path), artifact_path=str(Path(RESUME_ARTIFACT).parent))

    def load_resume(self, run_id: str) -> ResumeState:
        """The run's latest resume checkpoint (ResumeError if it is missing or damaged)."""
        from . import resume

        record = self.record(run_id)
        path = self.resume_path(run_id, record.artifact_uri)
        if not path.exists() and self.local_artifacts(run_id, record.artifact_uri) is None:
            target = self.cache_dir(run_id) / "downloaded"
            target.mkdir(parents=True, exist_ok=True)
            path = Path(self._guard(lambda: self.client.download_artifacts(run_id, RESUME_ARTIFACT, str(target))))
        if not path.exists():
            raise resume.ResumeError(f"run {run_id} has no resume checkpoint (it never got past its first seconds)")
        return resume.load(path)

    def save_words(self, run_id: str, words: list[str] | tuple[str, ...]) -> None:
        """Keep a copy of an uploaded dataset with the run, so the run can be resumed after a restart."""
        from .data import write_words

        local = self.local_artifacts(run_id)
        if local is not None:
            write_words(words, local / WORDS_ARTIFACT)
            return
        tmp = self.cache_dir(run_id) / WORDS_ARTIFACT
        write_words(words, tmp)
        self.client.log_artifact(run_id, str(tmp), artifact_path=str(Path(WORDS_ARTIFACT).parent))

    def load_words(self, run_id: str) -> list[str]:
        from .data import load_words

        local = self.local_artifacts(run_id)
        if local is not None:
            return load_words(local / WORDS_ARTIFACT)
        target = self.cache_dir(run_id)
        target.mkdir(parents=True, exist_ok=True)
        path = self._guard(lambda: self.client.download_artifacts(run_id, WORDS_ARTIFACT, str(target)))
        return load_words(path)

    def dataset_words(self, record: RunRecord) -> list[str]:
        """The words a run trained on, rebuilt from its recorded source and checked against its sha256."""
        from .data import DatasetError, words_from_source, words_sha256

        source = record.params.get("dataset_source", "")
        words = self.load_words(record.run_id) if source.startswith("upload:") else words_from_source(source)
        expected = record.params.get("dataset_sha256", "")
        if expected and words_sha256(words) != expected:
            raise DatasetError(
                f"the dataset of run {record.run_id} ({source}) has changed since it was trained "
                f"(sha256 {words_sha256(words)[:12]}… instead of {expected[:12]}…): resuming would train on other data"
            )
        return words

    # ------------------------------------------------------------------ errors
    def _guard(self, fn: Any) -> Any:
        try:
            return fn()
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"the run store at {self.uri}: {_one_line(exc)}") from None


# ---------------------------------------------------------------------------- helpers
def run_params(config: Any, dataset_name: str, source: str, words: Any) -> dict[str, Any]:
    """The params every run records: each TrainConfig field by name, plus what identifies its dataset."""
    from .config import to_dict
    from .data import Vocab, words_sha256
    from .model import count_params

    params: dict[str, Any] = dict(to_dict(config))
    params.update(
        dataset_name=dataset_name, dataset_source=source, dataset_size=len(words), dataset_sha256=words_sha256(words)
    )
    params["model_params"] = count_params(Vocab.from_words(words).size, config)
    return params


def _record(run: Any) -> RunRecord:
    tags = dict(run.data.tags)
    metrics = dict(run.data.metrics)
    try:
        step = int(tags.get(f"{TAG}step", "0"))
    except ValueError:
        step = 0
    info = run.info
    return RunRecord(
        run_id=info.run_id,
        name=info.run_name or tags.get("mlflow.runName", ""),
        status=effective_status(tags),
        step=step,
        params=dict(run.data.params),
        tags=tags,
        metrics=metrics,
        start_time=(info.start_time or 0) / 1000,
        end_time=None if info.end_time is None else info.end_time / 1000,
        artifact_uri=info.artifact_uri or "",
    )


def _wal_on_connect() -> None:
    """Every SQLite connection SQLAlchemy opens in this process goes to WAL mode (readers never wait for a writer).

    Through SQLAlchemy's own connect event, not a connection of our own: a second, short-lived connection to the
    file, opened and closed beside MLflow's pool, was seen to leave other processes' writes invisible here.
    """
    import sqlalchemy

    if getattr(_wal_on_connect, "done", False):
        return

    def on_connect(dbapi_connection: Any, record: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.execute("PRAGMA journal_mode=WAL")

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "connect", on_connect)
    _wal_on_connect.done = True  # type: ignore[attr-defined]


def _check_server(uri: str, timeout: float = 5.0) -> None:
    """A tracking server that does not answer is one clear line at once: MLflow's own client retries for minutes."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as response:
            response.read(64)
    except urllib.error.HTTPError:
        return  # it answers (a proxy or an older server without /health): MLflow's calls say the rest
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StoreError(f"the tracking server {uri} does not answer ({reason})") from None


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if "file is not a database" in text or "database disk image is malformed" in text:
        return "it is not an SQLite database, or a damaged one; move it aside to start a new store"
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("(Background on this error"):
            return line[:300]
    return type(exc).__name__


@contextlib.contextmanager
def _lock(path: Path | None):
    """A file lock around the store's first creation: two servers starting at once must not both migrate it."""
    if path is None:
        yield
        return
    import filelock

    with filelock.FileLock(str(path), timeout=120):
        yield


@contextlib.contextmanager
def _quiet_mlflow():
    """MLflow logs its database migrations at INFO on first use; a user needs none of it."""
    import logging

    yield
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Its warning with a traceback for a damaged database file: our StoreError says it in one line.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.ERROR)


__all__ = [
    "RunRecord",
    "RunStore",
    "StoreError",
    "effective_status",
    "home",
    "owner_tag",
    "run_params",
    "sweeps_dir",
    "tracking_uri",
]
