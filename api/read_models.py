"""What the read routes answer, as documented in the OpenAPI document (and checked there by the
schema-driven fuzzer). Rows from a view carry any further columns a view may gain."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from domain.incident import Category, IncidentStatus, Level
from domain.severity import Severity


class IncidentFields(BaseModel):
    """What the aggregate and the current-state view both say of an incident."""

    id: UUID
    number: str
    version: int
    title: str
    description: str
    category: Category
    severity: Severity
    impact: Level
    urgency: Level
    status: IncidentStatus
    reported_by: UUID
    assigned_to: UUID | None
    detection_time: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    reopen_count: int
    problem_id: UUID | None
    created_at: datetime
    updated_at: datetime


class IncidentState(IncidentFields):
    """An incident as its aggregate holds it now (or at `as_of_version`); ETag: its version."""

    configuration_items: list[UUID]


class IncidentRow(IncidentFields):
    """An incident as the current-state view lists it."""

    model_config = ConfigDict(extra="allow")

    ci_ids: list[UUID]


class IncidentPage(BaseModel):
    items: list[IncidentRow]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")


class TimelineEntry(BaseModel):
    """One event of the incident or of a record linked to it."""

    model_config = ConfigDict(extra="allow")

    position: int
    event_type: str
    record_type: str
    record_id: UUID
    record_version: int
    actor_id: UUID | None
    actor_name: str | None
    actor_role: str | None
    occurred_at: datetime
    recorded_at: datetime
    command: str
    command_id: UUID
    idempotency_key: str | None
    source: str | None
    changes: dict[str, Any] = Field(description="{field: [before, after]}")


class Timeline(BaseModel):
    incident: str
    incident_id: UUID
    entries: list[TimelineEntry]


class ProblemTimeline(BaseModel):
    problem: str
    problem_id: UUID
    entries: list[TimelineEntry]


class ViewError(BaseModel):
    """The event a view stopped before, and why."""

    model_config = ConfigDict(extra="allow")

    view: str
    position: int
    topic: str
    originator_id: str
    originator_version: int
    reason: str
    failed_at: str = Field(description="ISO 8601 date and time.")
    attempts: int


class ViewStatus(BaseModel):
    model_config = ConfigDict(extra="allow")

    view: str
    position: int
    head: int
    events_behind: int
    lag_ms: int | None
    error: ViewError | None


class Health(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Literal["ok", "degraded"]
    database: Literal["ok"]
    head: int
    projections: list[ViewStatus]
