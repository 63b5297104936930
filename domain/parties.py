"""Users, clients, configuration items and API keys (SOP 1 and the reference data for the rest)."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from eventsourcing.domain import event
from pydantic import AfterValidator, Field, SecretStr

from domain.base import Aggregate, Command, Meta, Role, require, stable_id

ADMIN = frozenset({Role.SYSTEM_ADMINISTRATOR})
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _valid_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA timezone {name!r}") from None
    return name


def _valid_email(value: str) -> str:
    if not EMAIL.match(value):
        raise ValueError("not an email address")
    return value


Timezone = Annotated[str, AfterValidator(_valid_timezone)]
Email = Annotated[str, AfterValidator(_valid_email)]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class Status(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"


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


class CIType(StrEnum):
    SERVER = "server"
    APPLICATION = "application"
    DATABASE = "database"
    NETWORK = "network"
    STORAGE = "storage"
    SERVICE = "service"


class Environment(StrEnum):
    PRODUCTION = "production"
    STAGING = "staging"
    DEVELOPMENT = "development"
    TESTING = "testing"


class OperationalStatus(StrEnum):
    OPERATIONAL = "operational"
    DEGRADED = "degraded"
    DOWN = "down"


# --- commands -------------------------------------------------------------------------------------


class RegisterUser(Command):
    """SOP 1: create a user account."""

    roles = ADMIN
    first_name: Name
    last_name: Name
    email: Email
    role: Role
    timezone: Timezone
    status: Status = Status.ACTIVE
    client_id: UUID | None = None


class UpdateUser(Command):
    """SOP 1: update a user's details (only the fields given)."""

    roles = ADMIN
    user: UUID
    first_name: Name | None = None
    last_name: Name | None = None
    email: Email | None = None
    role: Role | None = None
    timezone: Timezone | None = None
    client_id: UUID | None = None


class DeactivateUser(Command):
    """SOP 1: an inactive user can no longer act or be referenced."""

    roles = ADMIN
    user: UUID


class ReactivateUser(Command):
    """SOP 1: make an inactive user active again."""

    roles = ADMIN
    user: UUID


class IssueApiKey(Command):
    """Give a user an API key (shown once, stored hashed); a chosen key may be supplied."""

    roles = ADMIN
    user: UUID
    label: str = Field(default="", max_length=200)
    key: SecretStr | None = Field(
        default=None, min_length=24, description="Use this key instead of a generated one."
    )


class RegisterClient(Command):
    """Register a client organisation."""

    roles = ADMIN
    client_name: Name
    registration_number: Name
    company_type: CompanyType
    support_coverage: SupportCoverage
    preferred_communication: PreferredCommunication
    primary_address: str | None = None
    status: Status = Status.ACTIVE


class UpdateClient(Command):
    """Update a client's details (only the fields given)."""

    roles = ADMIN
    client: UUID
    client_name: Name | None = None
    registration_number: Name | None = None
    company_type: CompanyType | None = None
    support_coverage: SupportCoverage | None = None
    preferred_communication: PreferredCommunication | None = None
    primary_address: str | None = None
    status: Status | None = None


class RegisterConfigurationItem(Command):
    """Register a configuration item (server, application, database, ...)."""

    roles = ADMIN
    ci_name: Name
    ci_type: CIType
    environment: Environment
    operational_status: OperationalStatus = OperationalStatus.OPERATIONAL
    responsible_owner: UUID


class UpdateConfigurationItem(Command):
    """Update a configuration item (only the fields given)."""

    roles = ADMIN
    configuration_item: UUID
    ci_name: Name | None = None
    ci_type: CIType | None = None
    environment: Environment | None = None
    operational_status: OperationalStatus | None = None
    responsible_owner: UUID | None = None


class AssignCIToClient(Command):
    """Record that a client depends on a configuration item."""

    roles = ADMIN
    configuration_item: UUID
    client: UUID


class UnassignCIFromClient(Command):
    """Remove a client's dependency on a configuration item."""

    roles = ADMIN
    configuration_item: UUID
    client: UUID


# --- aggregates -----------------------------------------------------------------------------------


class User(Aggregate):
    field_types = {"role": Role, "status": Status, "client_id": UUID}

    @event("Registered")
    def __init__(
        self,
        meta: Meta,
        first_name: str,
        last_name: str,
        email: str,
        role: Role,
        timezone: str,
        status: Status,
        client_id: UUID | None,
    ) -> None:
        self.first_name = first_name
        self.last_name = last_name
        self.email = email
        self.role = role
        self.timezone = timezone
        self.status = status
        self.client_id = client_id

    @property
    def is_active(self) -> bool:
        return self.status == Status.ACTIVE

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @event("Updated")
    def record_update(self, meta: Meta, changes: dict[str, list[Any]]) -> None:
        self.apply_changes(changes)

    def deactivate(self, meta: Meta) -> None:
        require(self.is_active, "user.already_inactive", "The user is already inactive.")
        self._set_status(meta, Status.INACTIVE)

    def reactivate(self, meta: Meta) -> None:
        require(not self.is_active, "user.already_active", "The user is already active.")
        self._set_status(meta, Status.ACTIVE)

    @event("StatusChanged")
    def _set_status(self, meta: Meta, status: Status) -> None:
        self.status = status


class EmailIndex(Aggregate):
    """Claims an email address for one user, so uniqueness holds under concurrency."""

    @staticmethod
    def create_id(email: str, **_: Any) -> UUID:
        return stable_id("email", email.strip().lower())

    @event("Claimed")
    def __init__(self, meta: Meta, email: str, user_id: UUID) -> None:
        self.email = email
        self.user_id: UUID | None = user_id

    @event("Reclaimed")
    def reclaim(self, meta: Meta, user_id: UUID) -> None:
        self.user_id = user_id

    @event("Released")
    def release(self, meta: Meta) -> None:
        self.user_id = None


class ApiKey(Aggregate):
    """An API key, known only by its hash; it authenticates one user."""

    @staticmethod
    def create_id(key_hash: str, **_: Any) -> UUID:
        return stable_id("api-key", key_hash)

    @event("Issued")
    def __init__(self, meta: Meta, user_id: UUID, key_hash: str, label: str) -> None:
        self.user_id = user_id
        self.key_hash = key_hash
        self.label = label
        self.revoked = False


class Client(Aggregate):
    field_types = {
        "company_type": CompanyType,
        "support_coverage": SupportCoverage,
        "preferred_communication": PreferredCommunication,
        "status": Status,
    }

    @event("Registered")
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

    @event("Updated")
    def record_update(self, meta: Meta, changes: dict[str, list[Any]]) -> None:
        self.apply_changes(changes)


class ConfigurationItem(Aggregate):
    field_types = {
        "ci_type": CIType,
        "environment": Environment,
        "operational_status": OperationalStatus,
        "responsible_owner": UUID,
    }

    @event("Registered")
    def __init__(
        self,
        meta: Meta,
        ci_name: str,
        ci_type: CIType,
        environment: Environment,
        operational_status: OperationalStatus,
        responsible_owner: UUID,
    ) -> None:
        self.ci_name = ci_name
        self.ci_type = ci_type
        self.environment = environment
        self.operational_status = operational_status
        self.responsible_owner = responsible_owner
        self.client_ids: list[UUID] = []

    @event("Updated")
    def record_update(self, meta: Meta, changes: dict[str, list[Any]]) -> None:
        self.apply_changes(changes)

    def assign_to_client(self, meta: Meta, client_id: UUID) -> None:
        require(
            client_id not in self.client_ids,
            "configuration_item.already_assigned",
            "The configuration item is already assigned to this client.",
        )
        self._assigned(meta, client_id)

    def unassign_from_client(self, meta: Meta, client_id: UUID) -> None:
        require(
            client_id in self.client_ids,
            "configuration_item.not_assigned",
            "The configuration item is not assigned to this client.",
        )
        self._unassigned(meta, client_id)

    @event("AssignedToClient")
    def _assigned(self, meta: Meta, client_id: UUID) -> None:
        self.client_ids.append(client_id)

    @event("UnassignedFromClient")
    def _unassigned(self, meta: Meta, client_id: UUID) -> None:
        self.client_ids.remove(client_id)
