"""Attachments (SOP 15): a file reference on an incident, report, communication, ..."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated
from uuid import UUID

from eventsourcing.domain import event
from pydantic import Field

from domain.base import Aggregate, Command, Meta
from domain.incident import RESPONDERS
from domain.text import Address, Name, Ref


class ReferenceType(StrEnum):
    INCIDENT = "incident"
    CHANGE = "change"
    RCA = "rca"
    REPORT = "report"
    PIR = "pir"
    COMMUNICATION = "communication"
    PROBLEM = "problem"


class AddAttachment(Command):
    """SOP 15: attach a file reference to a record."""

    roles = RESPONDERS
    reference_type: ReferenceType
    reference: Ref
    file_name: Name
    file_url: Annotated[Address, Field(min_length=1)]
    file_type: Annotated[Name, Field(max_length=100)]
    file_size_bytes: int = Field(ge=0, le=2**53)
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None


class Attachment(Aggregate):
    class Added(Aggregate.Created):
        reference_type: ReferenceType
        reference_id: UUID
        incident_id: UUID | None
        file_name: str
        file_url: str
        file_type: str
        file_size_bytes: int
        sha256: str | None

    @event(Added)
    def __init__(
        self,
        meta: Meta,
        reference_type: ReferenceType,
        reference_id: UUID,
        incident_id: UUID | None,
        file_name: str,
        file_url: str,
        file_type: str,
        file_size_bytes: int,
        sha256: str | None,
    ) -> None:
        self.reference_type = reference_type
        self.reference_id = reference_id
        self.incident_id = incident_id
        self.file_name = file_name
        self.file_url = file_url
        self.file_type = file_type
        self.file_size_bytes = file_size_bytes
        self.sha256 = sha256
