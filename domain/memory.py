"""The in-memory store (the library's POPO recorder) with the same extras as the PostgreSQL one:
guarded versions checked under the append lock, command records and idempotency keys kept in the
same append. Used by the fast rule tests; the behaviour is the same as in PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, IntegrityError, StoredEvent
from eventsourcing.popo import POPOApplicationRecorder, POPOFactory

from domain.idempotency import IDEMPOTENCY_TTL


class MemoryRecorder(POPOApplicationRecorder):
    def __init__(self) -> None:
        super().__init__()
        self.commands: dict[UUID, tuple[str, int | None]] = {}
        self.idempotency: dict[str, tuple[str | None, str, int | None]] = {}
        self.idempotency_used: dict[str, float] = {}

    def _assert_uniqueness(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        super()._assert_uniqueness(stored_events, **kwargs)
        for originator_id, version in (kwargs.get("guards") or {}).items():
            stored = self._stored_events_index.get(str(originator_id), {})
            if max(stored, default=0) != version:
                raise IntegrityError(f"guarded record {originator_id} changed")
        idempotency = kwargs.get("idempotency")
        if idempotency is not None and self.find_idempotency(idempotency[0]) is not None:
            raise IntegrityError(f"idempotency key {idempotency[0]} already used")

    def _update_table(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._update_table(stored_events, **kwargs)
        position = ids[-1] if ids else None
        command = kwargs.get("command")
        if command is not None:
            self.commands[command[0]] = (command[1], position)
        idempotency = kwargs.get("idempotency")
        if idempotency is not None:
            key, request_hash, outcome = idempotency
            self.idempotency[key] = (request_hash, outcome, position)
            self.idempotency_used[key] = time.time()
        return ids

    def find_command(self, command_id: UUID) -> tuple[str, int | None] | None:
        with self._database_lock:
            return self.commands.get(command_id)

    def record_refusal(self, key: str, request_hash: str | None, answer: str) -> None:
        with self._database_lock:
            if key not in self.idempotency:
                self.idempotency[key] = (request_hash, answer, None)
                self.idempotency_used[key] = time.time()

    def find_idempotency(self, key: str) -> tuple[str | None, str, int | None] | None:
        with self._database_lock:
            used = self.idempotency_used.get(key)
            if used is not None and time.time() - used > IDEMPOTENCY_TTL.total_seconds():
                del self.idempotency[key], self.idempotency_used[key]  # expired
            return self.idempotency.get(key)


class MemoryFactory(POPOFactory):
    def application_recorder(self) -> ApplicationRecorder:
        return MemoryRecorder()
