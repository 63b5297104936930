"""Shared building blocks: stable ids, roles, event metadata, the event and aggregate bases, the
command bases, and before → after change records that keep their types through storage."""

from __future__ import annotations

import re
from copy import deepcopy
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum, StrEnum
from functools import cache
from typing import Annotated, Any, ClassVar
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.domain import BaseAggregate, CanInitAggregate, CanMutateAggregate
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
)
from pydantic_core import to_jsonable_python

LEDGER_NAMESPACE = uuid5(NAMESPACE_URL, "urn:incident-ledger")


def stable_id(kind: str, key: str) -> UUID:
    """Deterministic id for a record looked up by a natural key (number, email, key hash)."""
    return uuid5(LEDGER_NAMESPACE, f"{kind}:{key}")


def record_id(number: str) -> UUID:
    """The id of a numbered record (INC0000001, BRG0000001, ...): the API accepts either."""
    return stable_id("record", number)


ISO_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _iso(value: Any) -> Any:
    """Times are ISO 8601 text (or datetimes in-process), never numbers or digit strings."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and ISO_MOMENT.match(value):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError("must be an ISO 8601 date and time, like 2026-01-31T09:30:00Z")


def _sane(moment: datetime) -> datetime:
    if not 1970 <= moment.year <= 2200:
        raise ValueError("must lie between 1970 and 2200")
    return moment


Moment = Annotated[AwareDatetime, BeforeValidator(_iso), AfterValidator(_sane)]
"""A timezone-aware ISO 8601 time between 1970 and 2200."""


class Role(StrEnum):
    INCIDENT_MANAGER = "incident_manager"
    TECHNICAL_SUPPORT = "technical_support"
    ACCOUNT_MANAGER = "account_manager"
    EXECUTIVE = "executive"
    SYSTEM_ADMINISTRATOR = "system_administrator"
    CLIENT_CONTACT = "client_contact"
    AUDITOR = "auditor"
    ANALYST = "analyst"


class Meta(BaseModel):
    """Who did it, when it happened, and which command (and request) it came from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    actor: UUID | None
    occurred_at: AwareDatetime
    command_id: UUID
    command: str
    idempotency_key: str | None = None
    source: str | None = None


class DomainEvent(BaseModel):
    """Frozen pydantic event: keeps enum, UUID and datetime types through the JSON round trip."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    originator_id: UUID
    originator_version: int
    timestamp: datetime  # when the ledger recorded it (set by the library, never by a client)
    meta: Meta


Changes = dict[str, tuple[Any, Any]]
"""{field: (before, after)} in JSON-plain form; restored to the field's type when applied."""


@cache
def _adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    return TypeAdapter(model.model_fields[name].annotation)


def plain(value: Any) -> Any:
    """JSON-plain form of a value (enums, UUIDs, dates, decimals, lists...)."""
    return to_jsonable_python(value)


def changes_between(current: Any, updates: dict[str, Any]) -> Changes:
    """The fields an update really changes, as {field: (before, after)} in JSON-plain form."""
    changes: Changes = {}
    for name, value in updates.items():
        before = getattr(current, name)
        if before != value and plain(before) != plain(value):  # 1 == 1.0; UUID == its text
            changes[name] = (plain(before), plain(value))
    return changes


class AuditTrailEntry(BaseModel):
    """A field change a legacy system's audit trail recorded about a record (an import, SPEC 10).
    Every aggregate has its own `<Record>.AuditTrailRecorded` event of this shape: it puts the
    change on the record's history and timeline as {field: [before, after]}, and changes nothing
    in the record's state (the imported rows hold that state as they were found)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: str
    """The legacy action: create or update."""
    changes: Changes


_IMMUTABLE: frozenset[type] = frozenset(
    {str, int, float, bool, type(None), bytes, UUID, datetime, date, time, timedelta, Decimal}
)


def _copied(value: Any, memo: dict[int, Any]) -> Any:
    """A deep copy of a record's attribute that shares what cannot change (the library copies
    each cached record per command; the generic deepcopy reduces every UUID and datetime)."""
    kind = type(value)
    if kind in _IMMUTABLE or isinstance(value, Enum):
        return value
    if kind is list:
        return [_copied(item, memo) for item in value]
    if kind is dict:
        return {key: _copied(item, memo) for key, item in value.items()}
    if kind is set:
        return {_copied(item, memo) for item in value}
    return deepcopy(value, memo)


class RecordSnapshot(BaseModel):
    """A record's state at one version, so that loading a long stream starts there rather than at
    its first event (the library's snapshotting, for the records IncidentLedger names). A record
    class that is snapshotted nests a subclass named `Snapshot` whose fields are the record's
    attributes, typed, so they come back from JSON as they were. Not an event of the ledger: it is
    kept apart (not chained, not projected), and a record can always be rebuilt without it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    record: ClassVar[type[Aggregate]]
    """The record class (set when that class is defined)."""

    originator_id: UUID
    originator_version: int
    timestamp: datetime
    created_on: datetime
    modified_on: datetime

    @classmethod
    def take(cls, aggregate: Aggregate) -> RecordSnapshot:
        own = {name: getattr(aggregate, name) for name in cls.own_fields()}
        return cls(
            originator_id=aggregate.id,
            originator_version=aggregate.version,
            timestamp=datetime.now(UTC),
            created_on=aggregate.created_on,
            modified_on=aggregate.modified_on,
            **own,
        )

    def mutate(self, _aggregate: Aggregate | None) -> Aggregate:
        aggregate = object.__new__(self.record)
        aggregate.__dict__.update(
            {
                "_id": self.originator_id,
                "_version": self.originator_version,
                "_created_on": self.created_on,
                "_modified_on": self.modified_on,
                "_pending_events": [],
                **{name: deepcopy(getattr(self, name)) for name in self.own_fields()},
            }
        )
        return aggregate

    @classmethod
    def own_fields(cls) -> list[str]:
        return [name for name in cls.model_fields if name not in RecordSnapshot.model_fields]


class Aggregate(BaseAggregate[UUID]):
    """Aggregate base whose nested events are pydantic models."""

    def __deepcopy__(self, memo: dict[int, Any]) -> Aggregate:
        copy = object.__new__(type(self))
        copy.__dict__.update({name: _copied(v, memo) for name, v in self.__dict__.items()})
        return copy

    AuditTrailRecorded: ClassVar[type[Aggregate.Event]]
    """This record's AuditTrailEntry event (defined for every aggregate class)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        snapshot = vars(cls).get("Snapshot")
        if isinstance(snapshot, type) and issubclass(snapshot, RecordSnapshot):
            snapshot.record = cls
        if "AuditTrailRecorded" not in vars(cls):
            cls.AuditTrailRecorded = type(
                "AuditTrailRecorded",
                (AuditTrailEntry, cls.Event),
                {
                    "__module__": cls.__module__,
                    "__qualname__": f"{cls.__qualname__}.AuditTrailRecorded",
                },
            )

    @staticmethod
    def create_id(*_: Any, **__: Any) -> UUID:
        return uuid4()

    def apply_changes(self, changes: Changes, types: type[BaseModel]) -> None:
        """Apply JSON-plain `after` values, typed as the fields of `types` (the created event)."""
        for name, (_before, after) in changes.items():
            setattr(self, name, _adapter(types, name).validate_python(after))

    def state(self) -> dict[str, Any]:
        """The record as the API shows it: id, version, created/updated times and every public
        attribute, JSON-plain. Attributes named in `HIDDEN` (secrets, internals) are left out."""
        shown = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        for name in self.HIDDEN:
            shown.pop(name, None)
        return {
            "id": str(self.id),
            "version": self.version,
            **plain(shown),
            "created_at": plain(self.created_on),
            "updated_at": plain(self.modified_on),
        }

    HIDDEN: ClassVar[frozenset[str]] = frozenset()

    class Event(DomainEvent, CanMutateAggregate[UUID]):
        pass

    class Created(Event, CanInitAggregate[UUID]):
        originator_topic: str


class Numbered(Aggregate):
    """A record with a human number (INC0000001, PRB…): its id derives from the number, so the
    API takes either."""

    @staticmethod
    def create_id(number: str, **_: Any) -> UUID:
        return record_id(number)


class Command(BaseModel):
    """A validated request to change the ledger: unknown or server-owned fields are refused.
    At the HTTP boundary it is validated strictly from JSON (`"5"` is not 5, `"yes"` is not
    true); in-process callers may pass Python values (enums as their values, ids as text)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    roles: ClassVar[frozenset[Role]] = frozenset()
    """Roles allowed to issue this command (checked centrally by the ledger)."""
    system: ClassVar[bool] = False
    """Issued by the ledger itself with no acting user (first start); never routed."""

    occurred_at: Moment | None = Field(
        default=None,
        description="When the step happened; defaults to now; may be backdated, "
        "never into the future.",
    )


class RecordCommand(Command):
    """A command on one existing record, optionally checked against the version the client saw
    (`expected_version`, or the HTTP `If-Match` header carrying the record's ETag)."""

    expected_version: int | None = Field(
        default=None, ge=1, description="Refuse with 409 unless the record is at this version."
    )
