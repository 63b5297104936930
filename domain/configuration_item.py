"""Configuration items (SPEC 4.1, SOP 10): commands, the aggregate, and its client assignments."""

from __future__ import annotations

from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import event

from domain.base import Aggregate, Changes, Command, Meta, RecordCommand
from domain.errors import require
from domain.text import Name
from domain.user import ADMIN


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


class RegisterConfigurationItem(Command):
    """Register a configuration item (server, application, database, ...)."""

    roles = ADMIN
    ci_name: Name
    ci_type: CIType
    environment: Environment
    operational_status: OperationalStatus = OperationalStatus.OPERATIONAL
    responsible_owner: UUID


class UpdateConfigurationItem(RecordCommand):
    """Update a configuration item (only the fields given)."""

    roles = ADMIN
    configuration_item: UUID
    ci_name: Name | None = None
    ci_type: CIType | None = None
    environment: Environment | None = None
    operational_status: OperationalStatus | None = None
    responsible_owner: UUID | None = None


class AssignCIToClient(RecordCommand):
    """Record that a client depends on a configuration item."""

    roles = ADMIN
    configuration_item: UUID
    client: UUID


class UnassignCIFromClient(RecordCommand):
    """Remove a client's dependency on a configuration item."""

    roles = ADMIN
    configuration_item: UUID
    client: UUID


class ConfigurationItem(Aggregate):
    class Registered(Aggregate.Created):
        ci_name: str
        ci_type: CIType
        environment: Environment
        operational_status: OperationalStatus
        responsible_owner: UUID

    @event(Registered)
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

    def update(self, meta: Meta, changes: Changes) -> None:
        require(bool(changes), "configuration_item.no_change", "The update changes nothing.")
        self._updated(meta, changes)

    class Updated(Aggregate.Event):
        changes: Changes

    @event(Updated)
    def _updated(self, meta: Meta, changes: Changes) -> None:
        self.apply_changes(changes, ConfigurationItem.Registered)

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

    class AssignedToClient(Aggregate.Event):
        client_id: UUID

    @event(AssignedToClient)
    def _assigned(self, meta: Meta, client_id: UUID) -> None:
        self.client_ids.append(client_id)

    class UnassignedFromClient(Aggregate.Event):
        client_id: UUID

    @event(UnassignedFromClient)
    def _unassigned(self, meta: Meta, client_id: UUID) -> None:
        self.client_ids.remove(client_id)
