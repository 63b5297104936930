"""The incident bridge (SOP 4, 5). For now the bridge that OpenIncident opens for a P1/P2 incident
with an assigned incident manager (SOP 2.1 step 4 → SOP 4.1); its own commands come later."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import event
from pydantic import AwareDatetime

from domain.base import Aggregate, Meta, record_id


class BridgeType(StrEnum):
    MAJOR_INCIDENT = "major_incident"
    COORDINATION = "coordination"
    TECHNICAL = "technical"


class BridgeStatus(StrEnum):
    ACTIVE = "active"
    CLOSED = "closed"


class Bridge(Aggregate):
    @staticmethod
    def create_id(number: str, **_: Any) -> UUID:
        return record_id(number)

    class Opened(Aggregate.Created):
        number: str
        incident_id: UUID
        bridge_type: BridgeType
        host: UUID
        start_time: AwareDatetime

    @event(Opened)
    def __init__(
        self,
        meta: Meta,
        number: str,
        incident_id: UUID,
        bridge_type: BridgeType,
        host: UUID,
        start_time: datetime,
    ) -> None:
        self.number = number
        self.incident_id = incident_id
        self.bridge_type = bridge_type
        self.host = host
        self.start_time = start_time
        self.end_time: datetime | None = None
        self.status = BridgeStatus.ACTIVE
