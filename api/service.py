"""The running service: database, ledger, projections (and their projector thread) and the first
administrator, wired once."""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.utils import get_topic
from psycopg import Cursor
from psycopg.rows import DictRow, dict_row

from api.availability import (
    CONNECTION_ERRORS,
    DatabaseUnavailable,
    durability,
    one_line,
    probe,
)
from api.database import Database, StartupError, migrate, resolve_database, service_roles
from api.roles import ServiceRoles, session_powers
from api.settings import Settings, check_admin_key
from domain.api_key import BootstrapAdministrator
from domain.base import Command
from domain.context import Outcome
from domain.errors import LedgerError, RecordedRefusal, RuleViolation
from domain.ledger import IncidentLedger
from domain.sla_policy import RecordDefaultSLAPolicy, SLAPolicy
from domain.user import EmailIndex
from projections.postgres import Projections
from projections.projector import Projector
from projections.rebuild import Workers

log = logging.getLogger("incident_ledger.service")
ADMIN_EMAIL = "admin@incident-ledger.local"
HEALTH_DEADLINE = 0.8
"""Seconds /health waits for PostgreSQL before saying it is unavailable."""
PROJECTOR_POOL = 2
"""Connections of the projector's role per process (one page at a time, and a status read)."""


class LastPositions:
    """Each user's last write position in this process, so that by default a user reads their
    own writes. Bounded; with several workers, clients send `Ledger-Min-Position` instead."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._positions: OrderedDict[UUID, int] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, user: UUID, position: int) -> None:
        with self._lock:
            self._positions[user] = max(position, self._positions.pop(user, 0))
            while len(self._positions) > self._size:
                self._positions.popitem(last=False)

    def get(self, user: UUID) -> int | None:
        with self._lock:
            return self._positions.get(user)


@dataclass
class Service:
    settings: Settings
    db: Database
    """The owner's connection facts (migrations, rebuild, the banner); not used to serve."""
    ledger: IncidentLedger
    """As the API's role: appends events, reads them and the views."""
    projections: Projections
    """As the projector's role: writes the views (the projector thread, `project()`)."""
    projector: Projector | None = None
    last_positions: LastPositions = field(default_factory=LastPositions)
    views: Projections | None = None
    """Reads of the views, as the API's role (None: through `projections`)."""
    api_db: Database | None = None
    """How the API's role connects (None: as `db`)."""
    durability: dict[str, Any] = field(default_factory=dict)
    """The server's fsync, synchronous_commit and full_page_writes, and whether all are on."""
    on_close: list[Callable[[], None]] = field(default_factory=list)
    """Run first when the service closes (`serve`'s projector child process stops here, before
    the database it projects from)."""
    closed: bool = False

    @classmethod
    def start(
        cls, settings: Settings, *, projector: bool | None = None, migrated: bool = False
    ) -> Service:
        """Connect (failing within seconds with the server's reason), migrate as the owner and
        open the ledger as the service's own roles; with `projector` (default: unless
        settings.projector is "off") the views are caught up by a background thread. Never
        waits for the views. `migrated`: the schema is known to be current (a worker of
        `serve --workers`, or its projector child, whose parent migrated it), so no migration
        and no owner's connection."""
        if settings.admin_key is not None:  # settings check it; a model_copy would not
            check_admin_key(settings.admin_key.get_secret_value())
        db = resolve_database(settings)
        try:
            roles = service_roles(settings)
            if not migrated:
                migrate(db, roles, privileged_owner_ok=settings.owner_may_be_privileged)
            service = cls.open(settings, db, roles)
        except BaseException:
            db.close()
            raise
        if not migrated:
            try:
                service.record_default_sla_policy()
            except BaseException:
                service.close()
                raise
        if settings.projector != "off" if projector is None else projector:
            service.start_projector()
        return service

    @classmethod
    def open(cls, settings: Settings, db: Database, roles: ServiceRoles | None) -> Service:
        """The service on an already migrated database, without any DDL, logged in as `roles`
        (read-only commands pass None to read as the connecting user). Refuses a role that could
        act beyond its grants."""
        options = settings.session_options()
        api_db = db.login(roles.api.role, roles.api.password, options) if roles else db
        writer_db = (
            db.login(roles.projector.role, roles.projector.password, options) if roles else db
        )
        ledger = IncidentLedger(env=api_db.ledger_env(None, settings.pool_size))
        writer = ledger if roles is None else None
        try:
            writer = writer or IncidentLedger(env=writer_db.ledger_env(None, PROJECTOR_POOL))
            projections = Projections(writer, retry_seconds=settings.projector_retry_seconds)
            views = Projections(ledger, positions=projections.positions)
            service = cls(settings, db, ledger, projections, views=views, api_db=api_db)
            if roles is not None:
                for app, login in ((ledger, roles.api), (writer, roles.projector)):
                    _check_plain_role(app, login.role)
            service.durability = _check_durability(ledger)
        except BaseException:
            if writer is not None and writer is not ledger:
                writer.close()
            ledger.close()
            raise
        return service

    @property
    def reader(self) -> Projections:
        return self.views or self.projections

    def start_projector(self) -> Projector:
        self.projector = Projector(self.projections, poll=self.settings.projector_poll_seconds)
        self.projector.start()
        return self.projector

    def stop_projector(self) -> None:
        if self.projector is not None:
            self.projector.stop()
            self.projector = None

    def close(self) -> None:
        """Idempotent: `serve` closes it after uvicorn, whose lifespan may have closed it."""
        if self.closed:
            return
        self.closed = True
        try:
            while self.on_close:
                self.on_close.pop()()
        finally:
            self._close_own()

    def _close_own(self) -> None:
        self.stop_projector()
        if self.projections.app is not self.ledger:
            self.projections.app.close()
        self.ledger.close()
        self.db.close()

    def execute(
        self,
        command: Command,
        actor: UUID | None,
        *,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        api_key: UUID | None = None,
    ) -> Outcome:
        try:
            outcome = self.ledger.handle(
                command,
                actor,
                idempotency_key=idempotency_key,
                request_hash=request_hash,
                api_key=api_key,
            )
        except RecordedRefusal as refusal:  # refused, but its events are in the ledger
            position = refusal.details.get("position")
            if actor is not None and isinstance(position, int):
                self.last_positions.remember(actor, position)
            raise
        if actor is not None and outcome.position is not None:
            self.last_positions.remember(actor, outcome.position)
        return outcome

    def project(self) -> int:
        """Catch every view up now, in this thread (tests and tools; the projector does this
        in the background)."""
        return self.projections.catch_up(retry_failed=True)

    @contextmanager
    def read_view(self, view: str, wanted: int | None) -> Iterator[tuple[Cursor[DictRow], int]]:
        """A cursor on `view` once it has projected position `wanted` (bounded wait; 503
        `view.behind` or `view.failed` otherwise), and the view position it is served at."""
        if wanted:
            self.reader.wait_for(view, wanted, self.settings.read_wait_seconds)
        with self.reader.reading(view) as (curs, position):
            yield curs, position

    def rebuild(
        self, progress: Callable[[str, int], None] | None = None, workers: Workers | None = None
    ) -> int:
        """Rebuild the views into shadow tables and swap them in, as the tables' owner, in as
        many processes as `workers` (default: `rebuild_workers()`) say."""

        def connect() -> psycopg.Connection[DictRow]:
            return psycopg.Connection.connect(**self.db.conninfo(), row_factory=dict_row)

        return self.projections.rebuild(connect, progress, workers or self.rebuild_workers())

    def rebuild_workers(self) -> Workers:
        """How other processes may share a rebuild: they read the events as the projector does
        and write the shadow tables as their owner; `rebuild_processes` of them, or one per CPU."""
        app = self.projections.app
        return Workers(
            app_topic=get_topic(type(app)),
            env=dict(app.env),
            conninfo=self.db.conninfo(),
            processes=self.settings.rebuild_processes or os.cpu_count() or 1,
        )

    def bootstrap_admin(self) -> tuple[UUID, str | None]:
        """Create the first administrator and its key once, in one append; returns the admin's
        id and, when created now, its key (`start_service` prints a generated one, never a
        chosen one)."""
        chosen = self.settings.admin_key
        index = self.ledger.get_or_none(EmailIndex.create_id(email=ADMIN_EMAIL))
        if isinstance(index, EmailIndex) and index.user_id is not None:
            if chosen is not None and not self._is_key(chosen.get_secret_value()):
                log.warning(
                    "INCIDENT_LEDGER_ADMIN_KEY is not a key of this ledger: only the first "
                    "start uses it; ask an administrator for a key (POST /users/{id}/api-keys)"
                )
            return index.user_id, None
        admin = self.ledger.handle(BootstrapAdministrator(email=ADMIN_EMAIL, key=chosen), None)
        log.info("created the first administrator %s", admin.id)
        return admin.id, admin.secret

    def record_default_sla_policy(self) -> None:
        """At the first start, record the SPEC 8 targets as the default SLA policy (in force
        from the beginning of time); later starts find it recorded."""
        if self.ledger.get_or_none(SLAPolicy.create_id(default=True)) is not None:
            return
        try:
            self.ledger.handle(RecordDefaultSLAPolicy(), None)
        except RuleViolation:  # another process recorded it meanwhile
            return
        log.info("recorded the default SLA policy (SPEC 8)")

    def _is_key(self, key: str) -> bool:
        try:
            self.ledger.authenticate(key)
        except LedgerError:
            return False
        return True

    def health(self) -> dict[str, Any]:
        """Whether PostgreSQL answers (a direct check as the API's role, bounded to
        HEALTH_DEADLINE, not a pool wait), its durability settings, the event head, and how far
        each view lags: `status` ok, or degraded when a view has failed; DatabaseUnavailable
        (503) when PostgreSQL does not answer."""
        down = {
            "status": "unavailable",
            "database": "unavailable",
            "durability": self.durability or None,
            "head": None,
            "projections": None,
        }
        reason = probe((self.api_db or self.db).conninfo(), HEALTH_DEADLINE)
        if reason is not None:
            raise DatabaseUnavailable(reason, down)
        try:
            head, views = self.reader.status()
        except DatabaseUnavailable as exc:
            raise DatabaseUnavailable(exc.reason, down) from exc
        except CONNECTION_ERRORS as exc:
            raise DatabaseUnavailable(one_line(exc), down) from exc
        failed = any(view["error"] is not None for view in views)
        return {
            "status": "degraded" if failed else "ok",
            "database": "ok",
            "durability": self.durability or None,
            "head": head,
            "projections": views,
        }


def _check_plain_role(app: IncidentLedger, role: str) -> None:
    """Refuse to serve as a role that could become another or act beyond its grants."""
    with app.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
        powers = session_powers(conn)
    if powers:
        raise StartupError(
            f"the service's role {role} has {', '.join(powers)}: it must be a plain login role "
            "(README, Security); drop it and migrate again"
        )


def _check_durability(app: IncidentLedger) -> dict[str, Any]:
    with app.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
        found = durability(conn)
    settings = ", ".join(f"{name}={value}" for name, value in found.items() if name != "ok")
    if found["ok"]:
        log.info("PostgreSQL durability: %s", settings)
    else:
        log.warning(
            "PostgreSQL is NOT durable (%s): a crash of the server can lose or corrupt events "
            "whose commit was acknowledged; turn these settings on",
            settings,
        )
    return found
