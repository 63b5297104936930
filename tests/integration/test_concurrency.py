"""Concurrent commands on real PostgreSQL: losers get a 409, nothing is lost or duplicated, and
record numbers issued in parallel stay unique and gapless (SPEC section 5)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from api.errors import status_of
from api.service import Service
from domain.base import Command, Role
from domain.errors import LedgerError
from domain.incident import (
    AssignIncident,
    ChangeIncidentStatus,
    IncidentStatus,
    OpenIncident,
    UpdateIncidentDetails,
)
from domain.numbering import Counter
from domain.user import RegisterUser
from domain.work_note import AddWorkNote, NoteType
from tests.conftest import admin_id

THREADS = 16
ROUNDS = 3
_names = iter(range(1, 1_000_000))


@dataclass
class Tally:
    """What the threads saw; guarded by a lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    incident_successes: int = 0
    note_successes: int = 0
    refusals: list[Exception] = field(default_factory=list)
    unexpected: list[BaseException] = field(default_factory=list)


def register_manager(service: Service) -> UUID:
    n = next(_names)
    command = RegisterUser(
        first_name=f"Racer{n}",
        last_name="Tester",
        email=f"racer{n}-{id(service)}@concurrency.test",
        role=Role.INCIDENT_MANAGER,
        timezone="UTC",
    )
    return service.execute(command, admin_id(service)).id


def open_command(manager: UUID, title: str = "Shared outage") -> OpenIncident:
    return OpenIncident(
        title=title,
        description="many hands on one incident",
        category="network",
        impact="medium",
        urgency="medium",
        reported_by=manager,
        detection_time=datetime.now(UTC) - timedelta(minutes=30),
        severity="P3",
        assigned_to=manager,
    )


def run_in_threads(work: Callable[[int], Any], threads: int = THREADS) -> list[Any]:
    """Run `work(i)` in `threads` threads released together; return the results in order."""
    start = threading.Barrier(threads)

    def task(i: int) -> Any:
        start.wait(timeout=30)
        return work(i)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(task, i) for i in range(threads)]
        return [future.result(timeout=120) for future in futures]


@pytest.fixture(scope="module")
def managers(service: Service) -> list[UUID]:
    return [register_manager(service) for _ in range(3)]


def test_execute_keeps_versions_gapless_when_threads_race_on_one_incident(
    service: Service, managers: list[UUID]
) -> None:
    incident_id = service.execute(open_command(managers[0]), managers[0]).id
    tally = Tally()
    statuses = [IncidentStatus.IN_PROGRESS, IncidentStatus.MONITORING, IncidentStatus.RESOLVED]
    barrier = threading.Barrier(THREADS)

    def command_for(i: int, round_: int, version: int) -> tuple[Command, bool]:
        """The i-th thread's command in a round; True if it changes the incident itself."""
        kind = (i + round_) % 4
        ref = str(incident_id)
        if kind == 0:
            status = statuses[(i + round_) % len(statuses)]
            return ChangeIncidentStatus(incident=ref, status=status, expected_version=version), True
        if kind == 1:
            assignee = managers[(i + round_) % len(managers)]
            return AssignIncident(
                incident=ref, assigned_to=assignee, expected_version=version
            ), True
        if kind == 2:
            title = f"Shared outage (thread {i}, round {round_})"
            return UpdateIncidentDetails(incident=ref, title=title, expected_version=version), True
        note = AddWorkNote(
            incident=ref, note_type=NoteType.TROUBLESHOOTING, note_text=f"note {i}/{round_}"
        )
        return note, False

    def work(i: int) -> None:
        for round_ in range(ROUNDS):
            version = service.ledger.repository.get(incident_id).version
            command, on_incident = command_for(i, round_, version)
            barrier.wait(timeout=30)  # every thread read its version; now all collide
            try:
                service.execute(command, managers[0])
            except LedgerError as refusal:
                with tally.lock:
                    tally.refusals.append(refusal)
            except BaseException as error:
                with tally.lock:
                    tally.unexpected.append(error)
            else:
                with tally.lock:
                    if on_incident:
                        tally.incident_successes += 1
                    else:
                        tally.note_successes += 1

    run_in_threads(work)

    assert tally.unexpected == []
    assert tally.refusals, "16 threads on one version should have collided at least once"
    for refusal in tally.refusals:
        assert isinstance(refusal, LedgerError)
        assert status_of(refusal) == 409, (type(refusal).__name__, refusal.code)
        assert type(refusal).__name__ in ("ConcurrencyConflict", "RuleViolation")
    versions = [e.originator_version for e in service.ledger.events.get(incident_id)]
    assert versions == list(range(1, len(versions) + 1))
    assert tally.incident_successes + 1 == versions[-1]
    assert service.ledger.repository.get(incident_id).version == versions[-1]
    notes_wanted = sum(1 for i in range(THREADS) for r in range(ROUNDS) if (i + r) % 4 == 3)
    assert tally.note_successes == notes_wanted  # a note is its own record: it never collides


def test_execute_issues_unique_gapless_numbers_when_threads_open_at_once(
    service: Service, managers: list[UUID]
) -> None:
    service.execute(open_command(managers[1], "warm-up"), managers[1])  # the counter exists
    counter = service.ledger.repository.get(Counter.create_id(prefix="INC"))
    assert isinstance(counter, Counter)
    before = counter.last

    def work(i: int) -> str | None:
        outcome = service.execute(open_command(managers[1], f"Parallel outage {i}"), managers[1])
        return outcome.number

    numbers = run_in_threads(work)

    assert all(isinstance(number, str) and number.startswith("INC") for number in numbers)
    assert len(set(numbers)) == THREADS
    issued = sorted(int(str(number)[3:]) for number in numbers)
    assert issued == list(range(before + 1, before + THREADS + 1))
    after = service.ledger.repository.get(Counter.create_id(prefix="INC"))
    assert isinstance(after, Counter)
    assert after.last == before + THREADS
