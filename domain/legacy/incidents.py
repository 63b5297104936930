"""Legacy rows → records, part 1: parties and assets (users, clients, configuration items and
their client assignments), problems, incidents with their status history, CI and problem links,
bridges with their participants, and escalations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.base import Aggregate, Role
from domain.bridge import Bridge, BridgeParticipant, BridgeStatus, BridgeType, RoleInBridge
from domain.client import Client, CompanyType, PreferredCommunication, SupportCoverage
from domain.configuration_item import CIType, ConfigurationItem, Environment, OperationalStatus
from domain.escalation import Escalation, EscalationStatus
from domain.incident import Category, Incident, IncidentStatus, Level
from domain.legacy.builder import Builder, undated
from domain.legacy.rows import Row, Tables
from domain.problem import Problem, ProblemCategory, ProblemStatus
from domain.severity import Severity
from domain.user import EmailIndex, Status, User


def walk(
    b: Builder,
    record: Aggregate,
    row: Row,
    mover: Any,
    start: Any,
    path: list[tuple[Any, datetime]],
    *extra: Any,
) -> None:
    """Status-machine moves from `start` along `path` (status, when), as chain steps:
    `mover(meta, status, previous, *extra)`."""
    previous = start
    for status, at in path:
        b.step(record, row, at, None, mover, status, previous, *extra, chain=True)
        previous = status


def users(t: Tables, b: Builder) -> None:
    for row in t.rows("users"):
        at = row.time("created_at")
        role, status, email = row.enum("role", Role), row.enum("status", Status), row.text("email")
        user = b.create(
            User, User.Registered, row, at, None,
            first_name=row.text("first_name"), last_name=row.text("last_name"), email=email,
            role=role, timezone=row.text("timezone"), status=status,
            client_id=row.opt_ref("client_id", "clients"),
        )  # fmt: skip
        index = EmailIndex.create_id(email=email)
        if index in b.records:
            b.found("user.email_taken", row)
        else:
            b.create(
                EmailIndex, EmailIndex.Claimed, row, at, None,
                record_id=index, email=email, user_id=user.id,
            )  # fmt: skip
        if role == Role.SYSTEM_ADMINISTRATOR and status == Status.ACTIVE:
            b.administrators.append((user.id, row))


def clients(t: Tables, b: Builder) -> None:
    for row in t.rows("clients"):
        b.create(
            Client, Client.Registered, row, row.time("created_at"), None,
            client_name=row.text("client_name"),
            registration_number=row.text("registration_number"),
            company_type=row.enum("company_type", CompanyType),
            support_coverage=row.enum("support_coverage", SupportCoverage),
            preferred_communication=row.enum("preferred_communication", PreferredCommunication),
            primary_address=row.opt_text("primary_address"), status=row.enum("status", Status),
        )  # fmt: skip


def configuration_items(t: Tables, b: Builder) -> None:
    for row in t.rows("configuration_items"):
        b.create(
            ConfigurationItem, ConfigurationItem.Registered, row, row.time("created_at"), None,
            ci_name=row.text("ci_name"), ci_type=row.enum("ci_type", CIType),
            environment=row.enum("environment", Environment),
            operational_status=row.enum("operational_status", OperationalStatus),
            responsible_owner=row.ref("responsible_owner", "users"),
        )  # fmt: skip
    for row in t.rows("ci_client_assignments"):
        ci = b.get(ConfigurationItem, row.ref("ci_id", "configuration_items"))
        client = row.ref("client_id", "clients")
        b.step(ci, row, row.time("created_at"), None, ci._assigned, client)


def problems(t: Tables, b: Builder) -> None:
    for row in t.rows("problem_tickets"):
        problem = b.create(
            Problem, Problem.Opened, row, row.time("created_at"), row.actor("reported_by"),
            number=row.number(), title=row.text("title"), description=row.text("description"),
            category=row.enum("category", ProblemCategory),
            reported_by=row.ref("reported_by", "users"),
            assigned_to=row.ref("assigned_to", "users"), detected_at=row.time("detected_at"),
        )  # fmt: skip
        updated = undated(row, "updated_at", "created_at")
        resolved = row.opt_time("resolved_at") or updated
        path = {
            ProblemStatus.OPEN: [],
            ProblemStatus.INVESTIGATING: [(ProblemStatus.INVESTIGATING, updated)],
            ProblemStatus.RESOLVED: [(ProblemStatus.RESOLVED, resolved)],
            ProblemStatus.CLOSED: [
                (ProblemStatus.RESOLVED, resolved),
                (ProblemStatus.CLOSED, row.opt_time("closed_at") or updated),
            ],
        }[row.enum("status", ProblemStatus)]
        walk(b, problem, row, problem._status_changed, ProblemStatus.OPEN, path)
    for row in t.rows("problem_configuration_items"):
        problem = b.get(Problem, row.ref("problem_id", "problem_tickets"))
        ci = row.ref("ci_id", "configuration_items")
        b.step(problem, row, row.time("created_at"), None, problem._ci_linked, ci)


def incidents(t: Tables, b: Builder) -> None:
    for row in t.rows("incidents"):
        detected = row.time("detection_time")
        incident = b.create(
            Incident, Incident.Opened, row, detected, row.actor("reported_by"),
            number=row.number(), title=row.text("title"), description=row.text("description"),
            category=row.enum("category", Category), severity=row.enum("severity", Severity),
            impact=row.enum("impact", Level), urgency=row.enum("urgency", Level),
            reported_by=row.ref("reported_by", "users"),
            assigned_to=row.opt_ref("assigned_to", "users"), detection_time=detected,
            assessment=None, decision=None,
        )  # fmt: skip
        acknowledged = row.opt_time("acknowledged_at")
        if acknowledged is not None:
            b.step(incident, row, acknowledged, None, incident._acknowledged)
        updated = undated(row, "updated_at", "created_at")
        resolved = row.opt_time("resolved_at") or updated
        status = row.enum("status", IncidentStatus)
        path = {
            IncidentStatus.OPEN: [],
            IncidentStatus.IN_PROGRESS: [(status, updated)],
            IncidentStatus.MONITORING: [(status, updated)],
            IncidentStatus.RESOLVED: [(IncidentStatus.RESOLVED, resolved)],
            IncidentStatus.CLOSED: [
                (IncidentStatus.RESOLVED, resolved),
                (IncidentStatus.CLOSED, row.opt_time("closed_at") or updated),
            ],
        }[status]
        walk(b, incident, row, incident._status_changed, IncidentStatus.OPEN, path)
        problem_row = row.linked("problem_id", "problem_tickets")
        if problem_row is not None:  # linked when both records existed
            at = max(row.time("created_at"), problem_row.time("created_at"))
            problem = b.get(Problem, problem_row.id)
            b.step(incident, row, at, None, incident._linked_to_problem, problem.id)
            b.step(problem, row, at, None, problem._incident_linked, incident.id)
    for row in t.rows("incident_configuration_items"):
        incident = b.get(Incident, row.ref("incident_id", "incidents"))
        ci = row.ref("ci_id", "configuration_items")
        b.step(incident, row, row.time("created_at"), None, incident._ci_linked, ci)


def bridges(t: Tables, b: Builder) -> None:
    for row in t.rows("bridges"):
        start = row.time("start_time")
        incident = b.get(Incident, row.ref("incident_id", "incidents"))
        bridge = b.create(
            Bridge, Bridge.Opened, row, start, None,
            number=row.number(), incident_id=incident.id,
            bridge_type=row.enum("bridge_type", BridgeType),
            host=row.ref("bridge_host", "users"), start_time=start,
        )  # fmt: skip
        b.step(incident, row, start, None, incident._bridge_opened, bridge.id)
        if row.enum("status", BridgeStatus) == BridgeStatus.CLOSED:
            end = row.opt_time("end_time") or undated(row, "created_at")
            closed, active = BridgeStatus.CLOSED, BridgeStatus.ACTIVE
            b.step(bridge, row, end, None, bridge._closed, closed, active, end, chain=True)
            b.step(incident, row, end, None, incident.record_bridge_closed, bridge.id)
    for row in t.rows("bridge_participants"):
        bridge = b.get(Bridge, row.ref("bridge_id", "bridges"))
        joined = BridgeParticipant(
            user=row.ref("user_id", "users"),
            role_in_bridge=row.enum("role_in_bridge", RoleInBridge),
        )
        b.step(bridge, row, row.time("joined_at"), None, bridge._participants_added, [joined])


def escalations(t: Tables, b: Builder) -> None:
    for row in t.rows("escalations"):
        at = row.time("requested_at")
        escalation = b.create(
            Escalation, Escalation.Created, row, at, row.actor("escalated_from"),
            incident_id=row.ref("incident_id", "incidents"),
            escalated_from=row.opt_ref("escalated_from", "users"),
            escalated_to=row.ref("escalated_to", "users"),
            reason=row.text("escalation_reason"),
        )  # fmt: skip
        status = row.enum("status", EscalationStatus)
        if status != EscalationStatus.PENDING:
            when = row.opt_time("responded_at") or at
            walk(b, escalation, row, escalation._status_updated, EscalationStatus.PENDING,
                 [(status, when)])  # fmt: skip
