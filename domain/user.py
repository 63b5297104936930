"""Users (SOP 1): their commands, the User aggregate, and the email index that keeps addresses
unique under concurrency."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from eventsourcing.domain import event
from pydantic import AfterValidator, Field

from domain.base import Aggregate, Changes, Command, Meta, RecordCommand, Role, stable_id
from domain.errors import require
from domain.text import Name

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


Timezone = Annotated[Name, AfterValidator(_valid_timezone)]
Email = Annotated[Name, AfterValidator(_valid_email)]


class Status(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"


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


class UpdateUser(RecordCommand):
    """SOP 1: update a user's details (only the fields given)."""

    roles = ADMIN
    user: UUID
    first_name: Name | None = None
    last_name: Name | None = None
    email: Email | None = None
    role: Role | None = None
    timezone: Timezone | None = None
    client_id: UUID | None = None


class DeactivateUser(RecordCommand):
    """SOP 1: an inactive user can no longer act or be referenced."""

    roles = ADMIN
    user: UUID


class ReactivateUser(RecordCommand):
    """SOP 1: make an inactive user active again; their earlier API keys stay dead unless
    `restore_keys` says so."""

    roles = ADMIN
    user: UUID
    restore_keys: bool = Field(
        default=False,
        description="Let the keys that worked before the last deactivation work again.",
    )


# --- aggregates -----------------------------------------------------------------------------------


class User(Aggregate):
    HIDDEN = frozenset({"key_generation", "api_key_ids"})

    class Registered(Aggregate.Created):
        first_name: str
        last_name: str
        email: str
        role: Role
        timezone: str
        status: Status
        client_id: UUID | None

    @event(Registered)
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
        self.key_generation = 0
        self.api_key_ids: list[UUID] = []

    @property
    def is_active(self) -> bool:
        return self.status == Status.ACTIVE

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    def update(self, meta: Meta, changes: Changes) -> None:
        require(bool(changes), "user.no_change", "The update changes nothing.")
        self._updated(meta, changes)

    def deactivate(self, meta: Meta) -> None:
        require(self.is_active, "user.already_inactive", "The user is already inactive.")
        self._status_changed(meta, Status.INACTIVE)

    def reactivate(self, meta: Meta, restore_keys: bool = False) -> None:
        require(not self.is_active, "user.already_active", "The user is already active.")
        self._status_changed(meta, Status.ACTIVE, restore_keys)

    class Updated(Aggregate.Event):
        changes: Changes

    @event(Updated)
    def _updated(self, meta: Meta, changes: Changes) -> None:
        self.apply_changes(changes, User.Registered)

    class StatusChanged(Aggregate.Event):
        status: Status
        restore_keys: bool = False

    @event(StatusChanged)
    def _status_changed(self, meta: Meta, status: Status, restore_keys: bool = False) -> None:
        # A key works only in the generation it was issued in: a deactivation ends it, and a
        # reactivation starts a new one unless the administrator restores the previous one.
        if status == Status.INACTIVE:
            self.key_generation += 1
        elif restore_keys:
            self.key_generation -= 1
        self.status = status

    def record_key(self, meta: Meta, key_id: UUID) -> None:
        require(self.is_active, "user.inactive", f"{self.full_name} is inactive.")
        self._key_issued(meta, key_id)

    class ApiKeyIssued(Aggregate.Event):
        key_id: UUID

    @event(ApiKeyIssued)
    def _key_issued(self, meta: Meta, key_id: UUID) -> None:
        self.api_key_ids.append(key_id)


class EmailIndex(Aggregate):
    """Claims an email address for one user, so uniqueness holds under concurrency."""

    @staticmethod
    def create_id(email: str, **_: Any) -> UUID:
        return stable_id("email", email.strip().lower())

    class Claimed(Aggregate.Created):
        email: str
        user_id: UUID

    @event(Claimed)
    def __init__(self, meta: Meta, email: str, user_id: UUID) -> None:
        self.email = email
        self.user_id: UUID | None = user_id

    def claim(self, meta: Meta, user_id: UUID) -> None:
        require(
            self.user_id is None,
            "user.email_taken",
            f"The email address {self.email} already belongs to another user.",
        )
        self._reclaimed(meta, user_id)

    class Reclaimed(Aggregate.Event):
        user_id: UUID

    @event(Reclaimed)
    def _reclaimed(self, meta: Meta, user_id: UUID) -> None:
        self.user_id = user_id

    class Released(Aggregate.Event):
        pass

    @event(Released)
    def release(self, meta: Meta) -> None:
        self.user_id = None


class AdministratorRoster(Aggregate):
    """The active system administrators. Every change to who is one is saved here in the same
    append, so two concurrent demotions cannot leave the ledger with nobody to administer it."""

    @staticmethod
    def create_id(**_: Any) -> UUID:
        return stable_id("roster", "system_administrator")

    class Started(Aggregate.Created):
        pass

    @event(Started)
    def __init__(self, meta: Meta) -> None:
        self.members: list[UUID] = []

    def join(self, meta: Meta, user_id: UUID) -> None:
        if user_id not in self.members:
            self._joined(meta, user_id)

    def leave(self, meta: Meta, user_id: UUID) -> None:
        if user_id not in self.members:
            return
        require(
            len(self.members) > 1,
            "user.last_administrator",
            "This is the last active system administrator; make another user one first.",
        )
        self._left(meta, user_id)

    class Joined(Aggregate.Event):
        user_id: UUID

    @event(Joined)
    def _joined(self, meta: Meta, user_id: UUID) -> None:
        self.members.append(user_id)

    class Left(Aggregate.Event):
        user_id: UUID

    @event(Left)
    def _left(self, meta: Meta, user_id: UUID) -> None:
        self.members.remove(user_id)
