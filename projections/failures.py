"""A view that fails on an event stops just before it; the failure is kept in `projection_error`
(one row per failed view), where every process (API, projector, CLI) can read it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from eventsourcing import persistence
from eventsourcing.persistence import Notification
from psycopg import Cursor
from psycopg.rows import DictRow

ERROR_TABLE = "projection_error"
ERROR_DDL = f"""CREATE TABLE IF NOT EXISTS {ERROR_TABLE} (
    view text PRIMARY KEY, position bigint NOT NULL, topic text NOT NULL,
    originator_id text NOT NULL, originator_version bigint NOT NULL, reason text NOT NULL,
    failed_at timestamptz NOT NULL, attempts int NOT NULL DEFAULT 1)"""

# The database being away is not the event's fault: retried, never recorded against an event.
TRANSIENT: tuple[type[BaseException], ...] = (
    persistence.OperationalError,
    persistence.InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)


@dataclass(frozen=True)
class Failure:
    """Why a view stopped: the event it could not fold (or write), and when."""

    view: str
    position: int
    """The failing event's notification id; the view stays at the event before it."""
    topic: str
    originator_id: str
    originator_version: int
    reason: str
    failed_at: datetime
    attempts: int = 1

    @classmethod
    def of(cls, view: str, notification: Notification, exc: BaseException) -> Failure:
        return cls(
            view=view,
            position=notification.id,
            topic=notification.topic,
            originator_id=str(notification.originator_id),
            originator_version=notification.originator_version,
            reason=f"{type(exc).__name__}: {exc}"[:2000],
            failed_at=datetime.now(UTC),
        )

    def as_json(self) -> dict[str, Any]:
        return asdict(self) | {"failed_at": self.failed_at.isoformat()}


def record(curs: Cursor[DictRow], failure: Failure) -> Failure:
    """Upsert the view's failure; attempts count the retries that failed on the same event."""
    curs.execute(
        f"""INSERT INTO {ERROR_TABLE} AS e (view, position, topic, originator_id,
                originator_version, reason, failed_at)
            VALUES (%(view)s, %(position)s, %(topic)s, %(originator_id)s,
                %(originator_version)s, %(reason)s, %(failed_at)s)
            ON CONFLICT (view) DO UPDATE SET position = EXCLUDED.position,
                topic = EXCLUDED.topic, originator_id = EXCLUDED.originator_id,
                originator_version = EXCLUDED.originator_version, reason = EXCLUDED.reason,
                failed_at = EXCLUDED.failed_at,
                attempts = CASE WHEN e.position = EXCLUDED.position
                           THEN e.attempts + 1 ELSE 1 END
            RETURNING attempts""",
        asdict(failure),
    )
    row = curs.fetchone()
    return Failure(**(asdict(failure) | {"attempts": row["attempts"] if row else 1}))


def clear_statement() -> str:
    """Run with (view, position) after the view wrote up to `position`: it got past its failure."""
    return f"DELETE FROM {ERROR_TABLE} WHERE view = %s AND position <= %s"


def read_all(curs: Cursor[DictRow]) -> dict[str, Failure]:
    curs.execute(f"SELECT * FROM {ERROR_TABLE}")
    return {row["view"]: Failure(**row) for row in curs.fetchall()}
