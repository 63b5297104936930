"""The incident bridge (SOP 4, 5): its commands, the rules on its own state, the Bridge aggregate
with its participants' tenures, and its nested events. The rules that read the incident live in
domain/handlers/bridge.py (`open_bridge`: the one way a bridge opens, also for OpenIncident)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Self
from uuid import UUID

from eventsourcing.domain import event
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from domain.base import Aggregate, Meta, Numbered, RecordCommand
from domain.errors import RuleViolation, require
from domain.incident import MANAGERS, IncidentCommand
from domain.severity import Severity
from domain.text import Ref


class BridgeType(StrEnum):
    MAJOR_INCIDENT = "major_incident"
    COORDINATION = "coordination"
    TECHNICAL = "technical"


class BridgeStatus(StrEnum):
    ACTIVE = "active"
    CLOSED = "closed"


class RoleInBridge(StrEnum):
    HOST = "host"
    TECHNICAL_SUPPORT = "technical_support"
    ACCOUNT_MANAGER = "account_manager"
    EXECUTIVE = "executive"


MAJOR = frozenset({Severity.P1, Severity.P2})


def allowed_types(severity: Severity) -> frozenset[BridgeType]:
    """SOP 4.1 step 4: P1/P2 bridges are `major_incident`; others `coordination` or `technical`."""
    if severity in MAJOR:
        return frozenset({BridgeType.MAJOR_INCIDENT})
    return frozenset({BridgeType.COORDINATION, BridgeType.TECHNICAL})


def require_type(severity: Severity, bridge_type: BridgeType) -> None:
    allowed = allowed_types(severity)
    if bridge_type not in allowed:
        raise RuleViolation(
            "bridge.wrong_type",
            f"A {severity.value} incident's bridge must be "
            f"{' or '.join(sorted(t.value for t in allowed))}, not {bridge_type.value}.",
            allowed=sorted(t.value for t in allowed),
        )


class BridgeParticipant(BaseModel):
    """Who joins, in which role (`host` is the incident manager's alone: given by the ledger)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user: UUID
    role_in_bridge: RoleInBridge


Participants = Annotated[list[BridgeParticipant], Field(min_length=1, max_length=50)]


def _no_user_twice(participants: list[BridgeParticipant]) -> None:
    users = [p.user for p in participants]
    if len(set(users)) != len(users):
        raise ValueError("'participants' lists a user twice")


class Tenure(BaseModel):
    """One stay of one user on the bridge: kept after they leave (history)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user: UUID
    role_in_bridge: RoleInBridge
    joined_at: AwareDatetime
    left_at: AwareDatetime | None = None


# --- commands -------------------------------------------------------------------------------------


class OpenBridge(IncidentCommand):
    """SOP 4.1: open a bridge on the incident, hosted by its incident manager."""

    roles = MANAGERS
    bridge_type: BridgeType
    participants: list[BridgeParticipant] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _once_each(self) -> Self:
        _no_user_twice(self.participants)
        return self


class BridgeCommand(RecordCommand):
    """A command on one existing bridge (by UUID or number), optionally version-checked."""

    bridge: Ref


class AddBridgeParticipants(BridgeCommand):
    """SOP 4.2: add participants to an active bridge; one work note on the incident."""

    roles = MANAGERS
    participants: Participants

    @model_validator(mode="after")
    def _once_each(self) -> Self:
        _no_user_twice(self.participants)
        return self


class RemoveBridgeParticipant(BridgeCommand):
    """A participant leaves the bridge (their tenure is kept, with its end)."""

    roles = MANAGERS
    user: UUID


class CloseBridge(BridgeCommand):
    """SOP 5: close the bridge once the incident is resolved or monitoring."""

    roles = MANAGERS


# --- aggregate ------------------------------------------------------------------------------------


class Bridge(Numbered):
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
        # The host is a participant from the start (SOP 4.1 step 3).
        self.participants = [
            Tenure(user=host, role_in_bridge=RoleInBridge.HOST, joined_at=start_time)
        ]

    # rules, then the event -------------------------------------------------------------------

    def present(self, user: UUID) -> Tenure | None:
        """The user's current tenure (joined and not left), if any."""
        return next((t for t in self.participants if t.user == user and t.left_at is None), None)

    def require_active(self, what: str) -> None:
        require(
            self.status == BridgeStatus.ACTIVE,
            "bridge.closed",
            f"Bridge {self.number} is closed; a closed bridge cannot {what}.",
        )

    def add_participants(self, meta: Meta, participants: list[BridgeParticipant]) -> None:
        self.require_active("take participants")
        for participant in participants:
            require(
                participant.role_in_bridge != RoleInBridge.HOST,
                "bridge.host_reserved",
                "The host is the incident's incident manager, set by the ledger; add "
                "participants as technical_support, account_manager or executive.",
                user=str(participant.user),
            )
            require(
                self.present(participant.user) is None,
                "bridge.already_participant",
                f"That user is already on bridge {self.number}.",
                user=str(participant.user),
            )
        self._participants_added(meta, participants)

    def leave(self, meta: Meta, user: UUID) -> None:
        self.require_active("lose participants")
        require(
            self.present(user) is not None,
            "bridge.not_participant",
            f"That user is not on bridge {self.number}.",
            user=str(user),
        )
        require(
            user != self.host,
            "bridge.host_cannot_leave",
            f"The host cannot leave bridge {self.number}; reassign the incident to another "
            "incident manager (the host follows) or close the bridge.",
        )
        self._participant_left(meta, user)

    def change_host(self, meta: Meta, host: UUID) -> None:
        """The incident's manager changed: the new one hosts (SOP 5 checks the host)."""
        self.require_active("change host")
        if host != self.host:
            self._host_changed(meta, host, self.host)

    def close(self, meta: Meta) -> None:
        self.require_active("close again")
        self._closed(meta, BridgeStatus.CLOSED, self.status, meta.occurred_at)

    # events ------------------------------------------------------------------------------------

    def _end(self, user: UUID, at: datetime) -> None:
        self.participants = [
            t.model_copy(update={"left_at": at}) if t.user == user and t.left_at is None else t
            for t in self.participants
        ]

    class ParticipantsAdded(Aggregate.Event):
        participants: list[BridgeParticipant]

    @event(ParticipantsAdded)
    def _participants_added(self, meta: Meta, participants: list[BridgeParticipant]) -> None:
        self.participants = [
            *self.participants,
            *(
                Tenure(user=p.user, role_in_bridge=p.role_in_bridge, joined_at=meta.occurred_at)
                for p in participants
            ),
        ]

    class ParticipantLeft(Aggregate.Event):
        user: UUID

    @event(ParticipantLeft)
    def _participant_left(self, meta: Meta, user: UUID) -> None:
        self._end(user, meta.occurred_at)

    class HostChanged(Aggregate.Event):
        host: UUID
        previous: UUID

    @event(HostChanged)
    def _host_changed(self, meta: Meta, host: UUID, previous: UUID) -> None:
        # The old host's tenure (as host) ends; the new host's current tenure, if any, ends too
        # and a tenure as host begins.
        self._end(previous, meta.occurred_at)
        self._end(host, meta.occurred_at)
        joined = Tenure(user=host, role_in_bridge=RoleInBridge.HOST, joined_at=meta.occurred_at)
        self.participants = [*self.participants, joined]
        self.host = host

    class Closed(Aggregate.Event):
        status: BridgeStatus
        previous: BridgeStatus
        end_time: AwareDatetime

    @event(Closed)
    def _closed(
        self, meta: Meta, status: BridgeStatus, previous: BridgeStatus, end_time: datetime
    ) -> None:
        self.status = status
        self.end_time = end_time
        for tenure in self.participants:  # everyone still on the bridge leaves as it closes
            if tenure.left_at is None:
                self._end(tenure.user, meta.occurred_at)
