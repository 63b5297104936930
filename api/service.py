"""The running service: database, ledger, projections and the first administrator, wired once."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from pydantic import SecretStr

from api.availability import CONNECTION_ERRORS, DatabaseUnavailable, one_line, probe
from api.database import Database, migrate, resolve_database
from api.settings import Settings, check_admin_key
from domain.base import Command, Role
from domain.ledger import IncidentLedger, Outcome
from domain.parties import EmailIndex, IssueApiKey, RegisterUser
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
        """Create the first administrator once; returns its id and, if new, its key."""
        key = (
            None if self.settings.admin_key is None else self.settings.admin_key.get_secret_value()
        )
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
