"""Where events stored under an earlier module layout are found now. A stored topic is forever
(`module:Class.Event`); when a class moves, its old module path is registered here."""

from __future__ import annotations

from eventsourcing.utils import register_topic

from domain.api_key import ApiKey
from domain.attachment import Attachment
from domain.client import Client
from domain.communication import Communication
from domain.configuration_item import ConfigurationItem
from domain.escalation import Escalation
from domain.numbering import Counter
from domain.report import IncidentReport
from domain.user import EmailIndex, User
from domain.work_note import WorkNote

MOVED: dict[str, type] = {
    # Before the one-module-per-aggregate layout (issue 6), parties and records shared modules.
    "domain.parties:User": User,
    "domain.parties:EmailIndex": EmailIndex,
    "domain.parties:ApiKey": ApiKey,
    "domain.parties:Client": Client,
    "domain.parties:ConfigurationItem": ConfigurationItem,
    "domain.records:Escalation": Escalation,
    "domain.records:WorkNote": WorkNote,
    "domain.records:Communication": Communication,
    "domain.records:Attachment": Attachment,
    "domain.records:IncidentReport": IncidentReport,
    "domain.records:Counter": Counter,
}


def register_moved_topics() -> None:
    """Make old topics (and the nested event topics under them) resolve to today's classes."""
    for topic, cls in MOVED.items():
        register_topic(topic, cls)
