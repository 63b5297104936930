"""Communications (SOP 11): a message about an incident or a problem, to a recipient."""

from __future__ import annotations

from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import event

from domain.base import Aggregate, Meta
from domain.text import Text
from domain.work_note import WRITERS, IncidentOrProblem


class CommunicationType(StrEnum):
    STATUS_UPDATE = "status_update"
    RESOLUTION_NOTICE = "resolution_notice"
    ESCALATION_NOTICE = "escalation_notice"
    BRIDGE_INVITATION = "bridge_invitation"
    OTHER = "other"


class RecipientType(StrEnum):
    CLIENT = "client"
    INTERNAL = "internal"
    EXECUTIVE = "executive"


class DeliveryMethod(StrEnum):
    EMAIL = "email"
    PORTAL = "portal"
    SMS = "sms"
    PHONE = "phone"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"


class SendCommunication(IncidentOrProblem):
    """SOP 11: record a communication about an incident or a problem."""

    roles = WRITERS
    communication_type: CommunicationType
    recipient_type: RecipientType
    delivery_method: DeliveryMethod
    delivery_status: DeliveryStatus = DeliveryStatus.PENDING
    recipient: UUID | None = None
    message_content: Text


class Communication(Aggregate):
    class Sent(Aggregate.Created):
        incident_id: UUID | None
        problem_id: UUID | None
        communication_type: CommunicationType
        recipient_type: RecipientType
        sender: UUID | None
        recipient: UUID | None
        delivery_method: DeliveryMethod
        delivery_status: DeliveryStatus
        message_content: str

    @event(Sent)
    def __init__(
        self,
        meta: Meta,
        incident_id: UUID | None,
        problem_id: UUID | None,
        communication_type: CommunicationType,
        recipient_type: RecipientType,
        sender: UUID | None,
        recipient: UUID | None,
        delivery_method: DeliveryMethod,
        delivery_status: DeliveryStatus,
        message_content: str,
    ) -> None:
        self.incident_id = incident_id
        self.problem_id = problem_id
        self.communication_type = communication_type
        self.recipient_type = recipient_type
        self.sender = sender
        self.recipient = recipient
        self.delivery_method = delivery_method
        self.delivery_status = delivery_status
        self.message_content = message_content
