"""Pure folds: one stored event in, the row changes of each read model out. No IO here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eventsourcing.domain import CanInitAggregate
from pydantic import BaseModel

from domain.base import Aggregate, AuditTrailEntry, DomainEvent
from domain.configuration_item import ConfigurationItem
from domain.incident import Incident
from domain.user import User

BASE_FIELDS = {"originator_id", "originator_version", "timestamp", "meta", "originator_topic"}
SECRET_FIELDS = {"key_hash"}
"""Never shown in any view or export, although stored in the event."""
HIDDEN_FIELDS = BASE_FIELDS | SECRET_FIELDS
INCIDENT_COLUMNS = (
    "number", "title", "description", "category", "severity", "impact", "urgency",
    "reported_by", "assigned_to", "detection_time",
)  # fmt: skip


@dataclass(frozen=True)
class Increment:
    """Add `by` to a numeric column."""

    by: int = 1


@dataclass(frozen=True)
class Append:
    """Append `item` to an array column."""

    item: Any


@dataclass(frozen=True)
class Merge:
    """Merge `item` (a JSON object) into a jsonb column."""

    item: dict[str, Any]


@dataclass(frozen=True)
class Inherit:
    """Insert a copy, under the row's key, of the rows of the same table whose `column` is
    `source` (a record belongs wherever the record it refers to belongs)."""

    column: str
    source: Any


ACTOR_NAME = "first_name || ' ' || last_name"


@dataclass(frozen=True)
class Lookup:
    """A value read, when the row is written, from another table of the same view: so a page of
    events sees each earlier event's effect (an actor's name as it was, not as it ends up)."""

    table: str
    expression: str
    key: Any


@dataclass(frozen=True)
class Row:
    """Insert (or upsert when `upsert`), or update the row with `key`, in `table`."""

    table: str
    key: dict[str, Any]
    values: dict[str, Any] = field(default_factory=dict)
    op: str = "update"  # "insert" | "upsert" | "update" | "delete" | "inherit"
    """An upsert with no values leaves an existing row as it is; an "inherit" row has one
    `Inherit` value (see Inherit)."""


def payload(event: DomainEvent) -> dict[str, Any]:
    """The event's own fields, JSON-ready (enums and UUIDs as strings)."""
    return event.model_dump(mode="json", exclude=HIDDEN_FIELDS)  # excluded before serialising


def event_name(event: BaseModel) -> str:
    return type(event).__qualname__


# --- current state: incidents and users --------------------------------------------------------


def incident_rows(event: DomainEvent) -> list[Row]:
    key = {"id": event.originator_id}
    common = {"version": event.originator_version, "updated_at": event.timestamp}
    meta = event.meta
    match event:
        case Incident.Opened():
            values = {c: getattr(event, c) for c in INCIDENT_COLUMNS}
            values |= {"status": "open", "reopen_count": 0, "created_at": event.timestamp}
            return [Row("incident_view", key, values | common, op="insert")]
        case Incident.Acknowledged():
            return [Row("incident_view", key, {"acknowledged_at": meta.occurred_at} | common)]
        case Incident.Assigned(assigned_to=assigned_to):
            return [Row("incident_view", key, {"assigned_to": assigned_to} | common)]
        case Incident.StatusChanged(status=status, previous=previous):
            moved: dict[str, Any] = {"status": status.value}
            if status == "resolved":
                moved["resolved_at"] = meta.occurred_at
            if status == "closed":
                moved["closed_at"] = meta.occurred_at
            if previous == "resolved" and status == "in_progress":
                moved["reopen_count"] = Increment(1)
            return [Row("incident_view", key, moved | common)]
        case Incident.DetailsUpdated(changes=changes):
            return [Row("incident_view", key, {k: v[1] for k, v in changes.items()} | common)]
        case Incident.Reprioritised(severity=severity):
            return [Row("incident_view", key, {"severity": severity.value} | common)]
        case Incident.ConfigurationItemLinked(ci_id=ci_id):
            return [Row("incident_view", key, {"ci_ids": Append(ci_id)} | common)]
        case Incident.LinkedToProblem(problem_id=problem_id):
            return [Row("incident_view", key, {"problem_id": problem_id} | common)]
    if event_name(event).startswith("Incident."):  # a fact the list does not show (a bridge...)
        return [Row("incident_view", key, common)]
    return []


def ci_client_rows(event: DomainEvent) -> list[Row]:
    match event:
        case ConfigurationItem.AssignedToClient(client_id=client_id):
            key = {"ci_id": event.originator_id, "client_id": client_id}
            return [Row("ci_client", key, {}, op="insert")]
        case ConfigurationItem.UnassignedFromClient(client_id=client_id):
            key = {"ci_id": event.originator_id, "client_id": client_id}
            return [Row("ci_client", key, {}, op="delete")]
    return []


def user_rows(event: DomainEvent) -> list[Row]:
    key = {"id": event.originator_id}
    match event:
        case User.Registered():
            return [Row("user_view", key, payload(event), op="upsert")]
        case User.Updated(changes=changes):
            return [Row("user_view", key, {k: v[1] for k, v in changes.items()})]
        case User.StatusChanged(status=status):
            return [Row("user_view", key, {"status": status.value})]
    return []


# --- audit timeline ------------------------------------------------------------------------------


def changes_of(event: DomainEvent) -> dict[str, list[Any]]:
    """What the event changed, as {field: [before, after]}."""
    data = payload(event)
    if "changes" in data:
        return dict(data["changes"])
    if "previous" in data:
        previous = data.pop("previous")
        # The one field that moved has a before; context (an assessment) is shown as added.
        main = "status" if "status" in data else next(iter(data))
        return {main: [previous, data.pop(main)]} | {
            name: [None, value] for name, value in data.items() if value is not None
        }
    if not data:  # a bare fact, such as an acknowledgment: it stamps the time
        stamp = event_name(event).rsplit(".", 1)[-1].lower() + "_at"
        return {stamp: [None, event.meta.occurred_at.isoformat()]}
    return {name: [None, value] for name, value in data.items() if value is not None}


def timeline_rows(event: DomainEvent, notification_id: int) -> list[Row]:
    meta = event.meta
    record_type, _, name = event_name(event).partition(".")
    rows = [
        Row(
            "timeline_entry",
            {"notification_id": notification_id},
            {
                "record_id": event.originator_id,
                "record_type": record_type,
                "record_version": event.originator_version,
                "event_type": f"{record_type}.{name}",
                "actor_id": meta.actor,
                "actor_name": Lookup(
                    "timeline_actor", "first_name || ' ' || last_name", meta.actor
                ),
                "actor_role": Lookup("timeline_actor", "role", meta.actor),
                "occurred_at": meta.occurred_at,
                "recorded_at": event.timestamp,
                "command": meta.command,
                "command_id": meta.command_id,
                "idempotency_key": meta.idempotency_key,
                "source": meta.source,
                "changes": changes_of(event),
            },
            op="insert",
        )
    ]
    rows += link_rows(event)
    if isinstance(event, User.Registered):
        values = {"first_name": event.first_name, "last_name": event.last_name}
        rows.append(
            Row(
                "timeline_actor",
                {"id": event.originator_id},
                values | {"role": event.role.value},
                op="upsert",
            )
        )
    if isinstance(event, User.Updated):
        changed = {
            k: v[1] for k, v in event.changes.items() if k in ("first_name", "last_name", "role")
        }
        if changed:
            rows.append(Row("timeline_actor", {"id": event.originator_id}, changed, op="update"))
    return rows


# Which incidents' and problems' timelines a record's events belong to: its own (an incident or a
# problem is its own root), the ones its created event names, and those of the record it refers
# to (an approval about a change belongs wherever the change belongs).
ROOTS = {"Incident", "Problem"}
LINKS = ("incident_id", "problem_id")
REFERENCES = ("reference_id", "change_id", "bridge_id")


INTERNAL = {"Counter", "EmailIndex", "AdministratorRoster", "ApprovalSlot", "ClientSLA"}
"""The ledger's bookkeeping records: on no incident's or problem's timeline."""


def link_rows(event: DomainEvent) -> list[Row]:
    if event.originator_version != 1 or event_name(event).partition(".")[0] in INTERNAL:
        return []
    record = event.originator_id
    roots: list[Any] = []
    if event_name(event).partition(".")[0] in ROOTS:
        roots.append(record)
    fields = type(event).model_fields  # a missing attribute costs pydantic a slow lookup
    roots += [getattr(event, name) for name in LINKS if name in fields]
    rows = [
        Row("timeline_links", {"record_id": record, "root_id": root}, op="upsert")
        for root in dict.fromkeys(roots)
        if root is not None
    ]
    for name in REFERENCES:
        source = getattr(event, name) if name in fields else None
        if source is not None:
            rows.append(
                Row(
                    "timeline_links",
                    {"record_id": record},
                    {"root_id": Inherit("record_id", source)},
                    op="inherit",
                )
            )
    return rows


# --- current state of every other record (the lists of GET /<collection>) ----------------------

UNLISTED = {"Incident", "ApiKey", *INTERNAL}
"""Incidents have a view of their own; the others are the ledger's internals (or secrets)."""
STATE_COLUMNS = {"id", "version", "created_at", "updated_at"}


def record_rows(event: DomainEvent) -> list[Row]:
    """A record's filterable fields: as its created event made it (the domain's own constructor,
    run on the event), then merged with each later event's fields."""
    record_type = event_name(event).partition(".")[0]
    if record_type in UNLISTED:
        return []
    key = {"id": event.originator_id}
    common = {"version": event.originator_version, "updated_at": event.timestamp}
    if isinstance(event, CanInitAggregate):
        created = event.mutate(None)
        assert isinstance(created, Aggregate)
        state = created.state()
        fields = {k: v for k, v in state.items() if k not in STATE_COLUMNS}
        initial = {
            "record_type": record_type,
            "number": fields.get("number"),
            "status": fields.get("status"),
            "fields": fields,
            "created_at": event.timestamp,
        }
        return [Row("record_view", key, initial | common, op="insert")]
    if isinstance(event, AuditTrailEntry):  # history only: the record's fields are unchanged
        return [Row("record_view", key, common)]
    data = payload(event)
    data.pop("previous", None)
    changed: dict[str, Any] = {k: v[1] for k, v in data.pop("changes", {}).items()}
    # A None beside a change leaves the field as it was (e.g. no new implementation date).
    changed |= {k: v for k, v in data.items() if v is not None and not isinstance(v, dict | list)}
    values: dict[str, Any] = dict(common)
    if changed:
        values["fields"] = Merge(changed)
    if isinstance(changed.get("status"), str):
        values["status"] = changed["status"]
    return [Row("record_view", key, values)]
