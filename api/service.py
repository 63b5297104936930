"""The running service: database, ledger, projections and the first administrator, wired once."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from pydantic import SecretStr

from api.database import Database, migrate, resolve_database
from api.settings import Settings
from domain.api_key import BootstrapAdministrator
from domain.base import Command
from domain.context import Outcome
from domain.errors import LedgerError
from domain.ledger import IncidentLedger
from domain.user import EmailIndex
from projections.postgres import Projections

log = logging.getLogger("incident_ledger.service")
ADMIN_EMAIL = "admin@incident-ledger.local"


@dataclass
class Service:
    settings: Settings
    db: Database
    ledger: IncidentLedger
    projections: Projections
    _project_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def start(cls, settings: Settings) -> Service:
        db = resolve_database(settings)
        migrate(db, settings.app_role)
        ledger = IncidentLedger(env=db.ledger_env(settings.app_role, settings.pool_size))
        service = cls(settings, db, ledger, Projections(ledger))
        service.project()
        return service

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
        id and, if generated now, the key (a key chosen through the environment is not
        returned, so it is never printed)."""
        chosen = SecretStr(self.settings.admin_key) if self.settings.admin_key else None
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
        return admin.id, None if chosen is not None else admin.secret

    def _is_key(self, key: str) -> bool:
        try:
            self.ledger.authenticate(key)
        except LedgerError:
            return False
        return True

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "projections": self.projections.lag()}
