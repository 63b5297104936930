"""A commit whose acknowledgment is lost: the library retries the append, the retry conflicts
with the events that did commit, and the ledger answers the first outcome instead of deciding
again (no second incident with the next number), on PostgreSQL and in memory."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from api.service import Service
from domain.incident import OpenIncident
from domain.ledger import IncidentLedger
from domain.numbering import Counter
from domain.user import RegisterUser
from tests.conftest import admin_id, bootstrap, unique


@pytest.fixture(params=["memory", "postgres"])
def ledger_and_admin(request: pytest.FixtureRequest) -> Iterator[tuple[IncidentLedger, UUID]]:
    if request.param == "memory":
        ledger = IncidentLedger()
        yield ledger, bootstrap(ledger)
    else:
        service: Service = request.getfixturevalue("service")
        yield service.ledger, admin_id(service)


def lose_first_acknowledgment(ledger: IncidentLedger, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The next append commits, then behaves as the library's retry does after a connection
    error at commit: it runs the same insert again (which now conflicts)."""
    insert = ledger.recorder.insert_events
    calls: list[int] = []

    def commit_then_retry(stored_events: Any, **kwargs: Any) -> Any:
        calls.append(len(stored_events))
        result = insert(stored_events, **kwargs)
        if len(calls) == 1:
            return insert(stored_events, **kwargs)  # the retry after the lost acknowledgment
        return result

    monkeypatch.setattr(ledger.recorder, "insert_events", commit_then_retry)
    return calls


def test_open_incident_answers_first_outcome_when_commit_acknowledgment_lost(
    ledger_and_admin: tuple[IncidentLedger, UUID], monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger, admin = ledger_and_admin
    name = unique("lost")
    manager = ledger.handle(
        RegisterUser(
            first_name=name,
            last_name="Ack",
            email=f"{name}@lost.test",
            role="incident_manager",
            timezone="UTC",
        ),
        admin,
    ).id
    before = _last_number(ledger)
    calls = lose_first_acknowledgment(ledger, monkeypatch)
    outcome = ledger.handle(
        OpenIncident(
            title="Lost ack",
            description="the commit landed, its answer did not",
            category="network",
            impact="low",
            urgency="low",
            reported_by=manager,
            detection_time=datetime.now(UTC) - timedelta(minutes=1),
            severity="P4",
        ),
        manager,
    )
    assert len(calls) == 1, "the command was decided again after its commit landed"
    assert outcome.number == f"INC{before + 1:07d}"
    assert outcome.position is not None
    assert _last_number(ledger) == before + 1, "a second incident was recorded"


def _last_number(ledger: IncidentLedger) -> int:
    found = ledger.get_or_none(Counter.create_id(prefix="INC"))
    return found.last if isinstance(found, Counter) else 0
