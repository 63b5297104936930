"""The running service: database, ledger, projections and the first administrator, wired once."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from api.availability import CONNECTION_ERRORS, DatabaseUnavailable, one_line, probe
from api.database import Database, migrate, resolve_database
from api.settings import Settings, check_admin_key
from domain.api_key import BootstrapAdministrator
from domain.base import Command
from domain.context import Outcome
from domain.errors import LedgerError
from domain.ledger import IncidentLedger
from domain.user import EmailIndex
from projections.postgres import Projections

log = logging.getLogger("incident_ledger.service")
ADMIN_EMAIL = "admin@incident-ledger.local"
HEALTH_DEADLINE = 0.8
"""Seconds /health waits for PostgreSQL before saying it is unavailable."""


@dataclass
class Service:
    settings: Settings
    db: Database
    ledger: IncidentLedger
    projections: Projections
    _project_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def start(cls, settings: Settings) -> Service:
        """Connect (failing within seconds with the server's reason), migrate, catch up."""
        if settings.admin_key is not None:  # settings check it; a model_copy would not
            check_admin_key(settings.admin_key.get_secret_value())
        db = resolve_database(settings)
        try:
            migrate(db, settings.app_role)
            service = cls.open(settings, db, settings.app_role)
        except BaseException:
            db.close()
            raise
        try:
            service.project()
        except BaseException:
            service.close()
            raise
        return service

    @classmethod
    def open(cls, settings: Settings, db: Database, role: str | None) -> Service:
        """The service on an already migrated database, without any DDL (read-only commands
        pass `role=None` to read as the connecting user)."""
        ledger = IncidentLedger(env=db.ledger_env(role, settings.pool_size))
        return cls(settings, db, ledger, Projections(ledger))

    def close(self) -> None:
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
        if self.settings.inline_projections:
            self.project()
        return outcome

    def project(self) -> int:
        """Bring the views up to date (read-your-writes in the single-process mode)."""
        with self._project_lock:
            return self.projections.catch_up()

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

    def _is_key(self, key: str) -> bool:
        try:
            self.ledger.authenticate(key)
        except LedgerError:
            return False
        return True

    def health(self) -> dict[str, Any]:
        """Whether PostgreSQL answers (a direct check bounded to HEALTH_DEADLINE, not a pool wait)
        and how far each projection lags; DatabaseUnavailable (503) when it does not answer."""
        down = {"status": "unavailable", "database": "unavailable", "projections": None}
        reason = probe(self.db.conninfo(), HEALTH_DEADLINE)
        if reason is not None:
            raise DatabaseUnavailable(reason, down)
        try:
            lag = self.projections.lag()
        except DatabaseUnavailable as exc:
            raise DatabaseUnavailable(exc.reason, down) from exc
        except CONNECTION_ERRORS as exc:
            raise DatabaseUnavailable(one_line(exc), down) from exc
        return {"status": "ok", "database": "ok", "projections": lag}
