"""Client organisations (SPEC 4.1): commands, the Client aggregate and its enums."""

from __future__ import annotations

from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import event

from domain.base import Aggregate, Changes, Command, Meta, RecordCommand
from domain.errors import require
from domain.text import Address, Name
from domain.user import ADMIN, Status


class CompanyType(StrEnum):
    ENTERPRISE = "enterprise"
    MID_MARKET = "mid_market"
    SMB = "smb"
    STARTUP = "startup"


class SupportCoverage(StrEnum):
    H24X7 = "24x7"
    BUSINESS_HOURS = "business_hours"
    ON_CALL = "on_call"


class PreferredCommunication(StrEnum):
    EMAIL = "email"
    PORTAL = "portal"
    PHONE = "phone"
    SLACK = "slack"


class RegisterClient(Command):
    """Register a client organisation."""

    roles = ADMIN
    client_name: Name
    registration_number: Name
    company_type: CompanyType
    support_coverage: SupportCoverage
    preferred_communication: PreferredCommunication
    primary_address: Address | None = None
    status: Status = Status.ACTIVE


class UpdateClient(RecordCommand):
    """Update a client's details (only the fields given)."""

    roles = ADMIN
    client: UUID
    client_name: Name | None = None
    registration_number: Name | None = None
    company_type: CompanyType | None = None
    support_coverage: SupportCoverage | None = None
    preferred_communication: PreferredCommunication | None = None
    primary_address: Address | None = None
    status: Status | None = None


class Client(Aggregate):
    class Registered(Aggregate.Created):
        client_name: str
        registration_number: str
        company_type: CompanyType
        support_coverage: SupportCoverage
        preferred_communication: PreferredCommunication
        primary_address: str | None
        status: Status

    @event(Registered)
    def __init__(
        self,
        meta: Meta,
        client_name: str,
        registration_number: str,
        company_type: CompanyType,
        support_coverage: SupportCoverage,
        preferred_communication: PreferredCommunication,
        primary_address: str | None,
        status: Status,
    ) -> None:
        self.client_name = client_name
        self.registration_number = registration_number
        self.company_type = company_type
        self.support_coverage = support_coverage
        self.preferred_communication = preferred_communication
        self.primary_address = primary_address
        self.status = status

    def update(self, meta: Meta, changes: Changes) -> None:
        require(bool(changes), "client.no_change", "The update changes nothing.")
        self._updated(meta, changes)

    class Updated(Aggregate.Event):
        changes: Changes

    @event(Updated)
    def _updated(self, meta: Meta, changes: Changes) -> None:
        self.apply_changes(changes, Client.Registered)
