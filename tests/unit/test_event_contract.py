"""Events are a long-lived contract: stored topics keep resolving after a class moves, older
versions upcast, compression and encryption work, and before → after change records come back
with their types (dates, datetimes, decimals, lists, enums)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar
from uuid import UUID, uuid4

import pytest
from eventsourcing.cryptography import AESCipher
from eventsourcing.domain import event
from eventsourcing.persistence import StoredEvent
from pydantic import BaseModel

from domain.base import Aggregate, Changes, Meta, RecordSnapshot, Role, changes_between
from domain.ledger import IncidentLedger
from domain.mapper import JSONTranscoder, PydanticMapper
from domain.user import RegisterUser, User
from tests.conftest import bootstrap

META = Meta(
    actor=None, occurred_at=datetime(2026, 1, 2, tzinfo=UTC), command_id=uuid4(), command="T"
)


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


class Plan(Aggregate):
    """A test aggregate with every field type the SPEC's records will need."""

    class Drafted(Aggregate.Created):
        due: date
        starts_at: datetime
        budget: Decimal
        owners: list[UUID]
        colour: Colour
        note: str | None

    @event(Drafted)
    def __init__(
        self,
        meta: Meta,
        due: date,
        starts_at: datetime,
        budget: Decimal,
        owners: list[UUID],
        colour: Colour,
        note: str | None,
    ) -> None:
        self.due = due
        self.starts_at = starts_at
        self.budget = budget
        self.owners = owners
        self.colour = colour
        self.note = note

    class Revised(Aggregate.Event):
        changes: Changes

    @event(Revised)
    def revise(self, meta: Meta, changes: Changes) -> None:
        self.apply_changes(changes, Plan.Drafted)


class Noted(Aggregate):
    """Version 2 of its created event added `priority`; stored version-1 events upcast."""

    class Created(Aggregate.Created):
        class_version: ClassVar[int] = 2
        text: str
        priority: int

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["priority"] = 3

    @event(Created)
    def __init__(self, meta: Meta, text: str, priority: int) -> None:
        self.text = text
        self.priority = priority


def mapper(**options: Any) -> PydanticMapper:
    return PydanticMapper(JSONTranscoder(), **options)


def test_changes_round_trip_restores_every_field_type() -> None:
    owners = [uuid4()]
    plan = Plan(
        meta=META,
        due=date(2026, 3, 1),
        starts_at=datetime(2026, 2, 1, 9, tzinfo=UTC),
        budget=Decimal("10.50"),
        owners=owners,
        colour=Colour.RED,
        note=None,
    )
    updates = {
        "due": date(2026, 4, 1),
        "starts_at": datetime(2026, 2, 2, 10, 30, tzinfo=UTC),
        "budget": Decimal("12.25"),
        "owners": [*owners, uuid4()],
        "colour": Colour.BLUE,
        "note": "moved",
    }
    plan.revise(META, changes_between(plan, updates))
    stored = [mapper().to_stored_event(e) for e in plan.collect_events()]
    events = [mapper().to_domain_event(s) for s in stored]
    replayed: Any = None
    for e in events:
        replayed = e.mutate(replayed)  # type: ignore[attr-defined]
    assert {name: getattr(replayed, name) for name in updates} == updates
    assert type(replayed.budget) is Decimal
    assert all(type(o) is UUID for o in replayed.owners)
    # The stored change record says what it was before, in plain JSON.
    revised = json.loads(stored[1].state)
    assert revised["changes"]["due"] == ["2026-03-01", "2026-04-01"]
    assert revised["changes"]["note"] == [None, "moved"]


def test_changes_between_omits_fields_that_do_not_change() -> None:
    plan = Plan(
        meta=META,
        due=date(2026, 3, 1),
        starts_at=datetime(2026, 2, 1, tzinfo=UTC),
        budget=Decimal("1"),
        owners=[],
        colour=Colour.RED,
        note=None,
    )
    assert changes_between(plan, {"colour": "red", "budget": Decimal("1.0"), "note": None}) == {}


def test_stored_version_1_event_is_upcast_when_read() -> None:
    noted = Noted(meta=META, text="first", priority=1)
    current = mapper().to_stored_event(noted.collect_events()[0])
    assert json.loads(current.state)["class_version"] == 2
    state = json.loads(current.state)
    del state["class_version"], state["priority"]  # what version 1 wrote
    old = StoredEvent(
        originator_id=current.originator_id,
        originator_version=1,
        topic=current.topic,
        state=json.dumps(state).encode(),
    )
    restored = mapper().to_domain_event(old)
    assert isinstance(restored, Noted.Created)
    assert restored.priority == 3
    assert restored.text == "first"


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({"COMPRESSOR_TOPIC": "eventsourcing.compressor:ZlibCompressor"}, id="zlib"),
        pytest.param(
            {
                "CIPHER_TOPIC": "eventsourcing.cryptography:AESCipher",
                "CIPHER_KEY": AESCipher.create_key(16),
            },
            id="aes",
        ),
    ],
)
def test_ledger_stores_compressed_or_encrypted_events_and_reads_them_back(
    env: dict[str, str],
) -> None:
    ledger = IncidentLedger(env={**env, "AGGREGATE_CACHE_MAXSIZE": ""})
    admin = bootstrap(ledger)
    command = RegisterUser(
        first_name="Zed",
        last_name="Packed",
        email="z@example.test",
        role=Role.AUDITOR,
        timezone="UTC",
    )
    user_id = ledger.handle(command, admin).id
    stored = ledger.recorder.select_events(user_id)
    with pytest.raises(ValueError, match=r".+"):  # not plain JSON any more
        json.loads(stored[0].state)
    user = ledger.repository.get(user_id)
    assert isinstance(user, User)
    assert (user.first_name, user.role) == ("Zed", Role.AUDITOR)


def test_event_stored_under_an_earlier_module_still_loads() -> None:
    """`domain.parties` held User before the one-module-per-aggregate layout."""
    user = User(
        meta=META,
        first_name="Old",
        last_name="Topic",
        email="old@example.test",
        role=Role.ANALYST,
        timezone="UTC",
        status="active",
        client_id=None,
    )
    stored = mapper().to_stored_event(user.collect_events()[0])
    assert stored.topic == "domain.user:User.Registered"
    state = json.loads(stored.state)
    state["originator_topic"] = "domain.parties:User"
    IncidentLedger()  # registers the moved topics
    old = StoredEvent(
        originator_id=stored.originator_id,
        originator_version=1,
        topic="domain.parties:User.Registered",
        state=json.dumps(state).encode(),
    )
    restored = mapper().to_domain_event(old)
    assert isinstance(restored, User.Registered)
    rebuilt = restored.mutate(None)
    assert isinstance(rebuilt, User)
    assert rebuilt.full_name == "Old Topic"


def test_every_event_class_declares_its_payload() -> None:
    """mypy and readers see each event's fields: every event class is a declared model whose
    fields are the decorated method's parameters (no classes generated from method names)."""
    import domain.handlers  # noqa: F401 - loads every aggregate module

    def subclasses(cls: type) -> set[type]:
        found = set(cls.__subclasses__())
        return found.union(*(subclasses(c) for c in found)) if found else found

    aggregates = [c for c in subclasses(Aggregate) if c.__module__.startswith("domain.")]
    assert len(aggregates) >= 10
    for aggregate in aggregates:
        for name, member in vars(aggregate).items():
            if isinstance(member, type) and issubclass(member, BaseModel):
                assert member.__qualname__ == f"{aggregate.__name__}.{name}"
                if issubclass(member, RecordSnapshot):  # a record's state, not an event
                    assert member.record is aggregate
                    continue
                assert "meta" in member.model_fields
