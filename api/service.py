"""The running service: database, ledger, projections (and their projector thread) and the first
administrator, wired once."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg
from psycopg import Cursor
from psycopg.rows import DictRow, dict_row
from pydantic import SecretStr

from api.database import Database, migrate, resolve_database
from api.settings import Settings
from domain.base import Command, Role
from domain.ledger import IncidentLedger, Outcome
from domain.parties import EmailIndex, IssueApiKey, RegisterUser
from projections.postgres import Projections
from projections.projector import Projector

log = logging.getLogger("incident_ledger.service")
ADMIN_EMAIL = "admin@incident-ledger.local"


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
    ledger: IncidentLedger
    projections: Projections
    projector: Projector | None = None
    last_positions: LastPositions = field(default_factory=LastPositions)

    @classmethod
    def start(cls, settings: Settings, *, projector: bool | None = None) -> Service:
        """Migrate and open the ledger; with `projector` (default: settings.projector ==
        "thread") the views are caught up by a background thread. Never waits for the views."""
        db = resolve_database(settings)
        migrate(db, settings.app_role)
        ledger = IncidentLedger(env=db.ledger_env(settings.app_role, settings.pool_size))
        projections = Projections(ledger, retry_seconds=settings.projector_retry_seconds)
        service = cls(settings, db, ledger, projections)
        if settings.projector == "thread" if projector is None else projector:
            service.start_projector()
        return service

    def start_projector(self) -> Projector:
        self.projector = Projector(self.projections, poll=self.settings.projector_poll_seconds)
        self.projector.start()
        return self.projector

    def stop_projector(self) -> None:
        if self.projector is not None:
            self.projector.stop()
            self.projector = None

    def close(self) -> None:
        self.stop_projector()
        self.ledger.close()
        self.db.close()

    def execute(
        self,
        command: Command,
        actor: UUID | None,
        *,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
    ) -> Outcome:
        outcome = self.ledger.handle(
            command, actor, idempotency_key=idempotency_key, request_hash=request_hash
        )
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
            self.projections.wait_for(view, wanted, self.settings.read_wait_seconds)
        with self.projections.reading(view) as (curs, position):
            yield curs, position

    def rebuild(self, progress: Callable[[str, int], None] | None = None) -> int:
        """Rebuild the views into shadow tables and swap them in, as the tables' owner."""

        def connect() -> psycopg.Connection[DictRow]:
            return psycopg.Connection.connect(**self.db.conninfo(), row_factory=dict_row)

        return self.projections.rebuild(connect, progress)

    def bootstrap_admin(self) -> tuple[UUID, str | None]:
        """Create the first administrator once; returns its id and, if new, its key."""
        key = self.settings.admin_key
        index = self.ledger.get_or_none(EmailIndex.create_id(email=ADMIN_EMAIL))
        if isinstance(index, EmailIndex) and index.user_id is not None:
            admin_id = index.user_id
            if key is None:
                return admin_id, None
            try:
                self.execute(
                    IssueApiKey(user=admin_id, label="admin (env)", key=SecretStr(key)), None
                )
            except Exception as exc:  # already issued: nothing to do
                if getattr(exc, "code", None) != "api_key.exists":
                    raise
                return admin_id, None
            return admin_id, key
        admin = self.execute(
            RegisterUser(
                first_name="Ledger",
                last_name="Administrator",
                email=ADMIN_EMAIL,
                role=Role.SYSTEM_ADMINISTRATOR,
                timezone="UTC",
            ),
            None,
        )
        issued = self.execute(
            IssueApiKey(
                user=admin.id, label="first administrator", key=SecretStr(key) if key else None
            ),
            None,
        )
        log.info("created the first administrator %s", admin.id)
        return admin.id, issued.secret

    def health(self) -> dict[str, Any]:
        """Liveness and the views: `status` ok, or degraded when a view has failed."""
        head, views = self.projections.status()
        failed = any(view["error"] is not None for view in views)
        return {"status": "degraded" if failed else "ok", "head": head, "projections": views}
