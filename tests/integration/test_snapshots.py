"""A counter's stream grows by an event per number issued, so it is snapshotted: a process that
starts loads the latest snapshot and the few events after it, not every number ever issued, and
numbers on without a gap. A snapshot is only a shortcut: one that cannot be taken changes
nothing about the command that would have taken it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from itertools import count
from typing import Any
from uuid import UUID

import psycopg
import pytest

from api.service import Service
from domain.base import Role
from domain.ledger import SNAPSHOT_INTERVAL, IncidentLedger
from domain.numbering import Counter
from tests.conftest import open_command, register_user

COUNTER = Counter.create_id(prefix="INC")
_serial = count(1)


@pytest.fixture(scope="module")
def manager(service: Service) -> UUID:
    return register_user(service, "Snap", Role.INCIDENT_MANAGER)


def counter_version(service: Service) -> int:
    counter = service.ledger.get_or_none(COUNTER)
    return counter.version if counter is not None else 0


@pytest.fixture
def fresh(service: Service) -> Iterator[IncidentLedger]:
    """The API's role in a new process, as a worker starts: nothing cached."""
    ledger = IncidentLedger(env=service.db.ledger_env(service.settings.app_role, pool_size=2))
    try:
        yield ledger
    finally:
        ledger.close()


def test_fresh_process_loads_counter_from_its_snapshot_and_numbers_on_without_gap(
    service: Service, manager: UUID, fresh: IncidentLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(SNAPSHOT_INTERVAL + 1):  # past at least one snapshot
        service.execute(open_command(manager), manager)
    current = service.ledger.get_or_none(COUNTER)
    assert isinstance(current, Counter)
    read: list[int] = []
    get = fresh.events.get

    def counting(*args: Any, **kwargs: Any) -> list[Any]:
        events = list(get(*args, **kwargs))
        read.append(len(events))
        return events

    monkeypatch.setattr(fresh.events, "get", counting)

    loaded = fresh.repository.get(COUNTER)

    assert isinstance(loaded, Counter)
    assert (loaded.version, loaded.last, loaded.prefix) == (current.version, current.last, "INC")
    assert (loaded.created_on, loaded.modified_on) == (current.created_on, current.modified_on)
    assert fresh.snapshots is not None
    (snapshot,) = fresh.snapshots.get(COUNTER, desc=True, limit=1)
    assert snapshot.originator_version % SNAPSHOT_INTERVAL == 0
    assert current.version - SNAPSHOT_INTERVAL < snapshot.originator_version <= current.version
    assert sum(read) == current.version - snapshot.originator_version  # only those after it
    opened = fresh.handle(open_command(manager), manager)
    assert opened.number == f"INC{current.last + 1:07d}"


def test_command_succeeds_and_says_so_when_its_snapshot_cannot_be_taken(
    service: Service,
    manager: UUID,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    while (counter_version(service) + 1) % SNAPSHOT_INTERVAL:  # the next open is snapshotted
        service.execute(open_command(manager), manager)
    snapshots = service.ledger.snapshots
    assert snapshots is not None

    def lost(*_: Any, **__: Any) -> None:
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(snapshots, "put", lost)

    with caplog.at_level(logging.WARNING, logger="incident_ledger.ledger"):
        opened = service.execute(open_command(manager), manager)

    version = counter_version(service)
    assert version % SNAPSHOT_INTERVAL == 0
    assert f"snapshot of {COUNTER} not taken" in caplog.text
    assert service.ledger.get_or_none(opened.id) is not None
    monkeypatch.undo()
    latest = list(snapshots.get(COUNTER, desc=True, limit=1))
    assert not latest or latest[0].originator_version < version
    # the next snapshot is taken as usual
    for _ in range(SNAPSHOT_INTERVAL):
        service.execute(open_command(manager), manager)
    (latest_now,) = snapshots.get(COUNTER, desc=True, limit=1)
    assert latest_now.originator_version == version + SNAPSHOT_INTERVAL


def test_only_counters_are_looked_up_in_the_snapshot_store(
    service: Service, manager: UUID, fresh: IncidentLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = service.execute(open_command(manager), manager)
    assert fresh.snapshots is not None
    asked: list[UUID] = []
    select = fresh.snapshots.recorder.select_events

    def counting(originator_id: UUID, *args: Any, **kwargs: Any) -> Any:
        asked.append(originator_id)
        return select(originator_id, *args, **kwargs)

    monkeypatch.setattr(fresh.snapshots.recorder, "select_events", counting)

    incident = fresh.repository.get(opened.id)  # a cold load: its events, no snapshot query
    counter = fresh.repository.get(COUNTER)

    assert incident.version == opened.version
    assert isinstance(counter, Counter)
    assert asked == [COUNTER]
