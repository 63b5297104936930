"""What the legacy data holds that today's rules would refuse (SPEC 10): the import records it as
found and reports each kind with the rows that show it. Read from the tables; no IO."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from domain.legacy.rows import Tables

FINDINGS: dict[str, str] = {
    "incident.assignee_inactive": "incidents assigned to an inactive user",
    "incident.assignee_wrong_role": "incidents assigned to a user who is neither incident "
    "manager nor technical support",
    "incident.reporter_inactive": "incidents reported by an inactive user",
    "incident.resolved_before_acknowledged": "incidents resolved before they were acknowledged",
    "incident.linked_to_closed_problem": "incidents linked to a closed problem",
    "incident.updated_before_its_steps": "incidents whose last update (updated_at) is before "
    "their acknowledgment or resolution",
    "bridge.active_on_closed_incident": "active bridges on closed incidents",
    "bridge.host_inactive": "bridges hosted by an inactive user",
    "bridge.host_not_assignee": "bridges whose host is not the incident's assignee",
    "bridge.extra_host": "bridge participants in the role host who are not the bridge's host",
    "bridge.already_participant": "users on one bridge twice (or the host again)",
    "bridge.participant_inactive": "inactive users among bridge participants",
    "rca.incident_and_problem": "root-cause analyses naming both an incident and a problem",
    "rca.not_major_incident": "root-cause analyses of incidents that are not P1/P2",
    "rca.incident_not_resolved": "root-cause analyses of incidents not resolved or closed",
    "change.approval_required": "emergency changes approved, scheduled or implemented without "
    "a granted approval request",
    "change.approver_while_requested": "changes still requested that name who approved them",
    "rollback.change_not_implemented": "rollbacks of changes that were not implemented",
    "approval.approver_inactive": "approval requests naming an inactive approver",
    "work_note.before_detection": "work notes dated before their incident's or problem's detection",
    "work_note.author_role": "work notes written by users whose role may not write them today",
    "communication.recipient_inactive": "communications to an inactive user",
    "configuration_item.owner_inactive": "configuration items owned by an inactive user",
    "problem.assignee_not_allowed": "problems assigned to an inactive user or one who is "
    "neither incident manager nor technical support",
    "user.email_taken": "users whose email another user already has",
    "approval.duplicate_pending": "pending approval requests duplicating another's action, "
    "record and approver",
}
"""Each kind of finding: what it means."""

RESPONDERS = {"incident_manager", "technical_support"}
NOTE_WRITERS = {*RESPONDERS, "account_manager"}


def _rows(t: Tables, table: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for key, row in t.data.get(table, {}).items():
        yield f"{table}:{key}", row


def _get(t: Tables, table: str, key: Any) -> dict[str, Any]:
    return t.data.get(table, {}).get(str(key), {}) if key is not None else {}


def find(t: Tables) -> dict[str, list[str]]:
    """Each kind of finding → the rows (table:key) that show it."""

    def user(key: Any) -> dict[str, Any]:
        return _get(t, "users", key)

    def inactive(key: Any) -> bool:
        return user(key).get("status") == "inactive"

    def incident(key: Any) -> dict[str, Any]:
        return _get(t, "incidents", key)

    found: dict[str, list[str]] = {}

    def add(kind: str, source: str, condition: Any) -> None:
        if condition:
            found.setdefault(kind, []).append(source)

    for source, row in _rows(t, "incidents"):
        assignee = row.get("assigned_to")
        add("incident.assignee_inactive", source, inactive(assignee))
        add("incident.assignee_wrong_role", source,
            assignee and user(assignee).get("role") not in RESPONDERS)  # fmt: skip
        add("incident.reporter_inactive", source, inactive(row.get("reported_by")))
        ack, resolved = row.get("acknowledged_at"), row.get("resolved_at")
        add("incident.resolved_before_acknowledged", source, ack and resolved and resolved < ack)
        problem = _get(t, "problem_tickets", row.get("problem_id"))
        add("incident.linked_to_closed_problem", source, problem.get("status") == "closed")
        updated = row.get("updated_at") or ""
        add("incident.updated_before_its_steps", source,
            any(step and step > updated for step in (ack, resolved)))  # fmt: skip
    for source, row in _rows(t, "bridges"):
        inc = incident(row.get("incident_id"))
        add("bridge.active_on_closed_incident", source,
            row.get("status") == "active" and inc.get("status") == "closed")  # fmt: skip
        add("bridge.host_inactive", source, inactive(row.get("bridge_host")))
        add("bridge.host_not_assignee", source, row.get("bridge_host") != inc.get("assigned_to"))
    seen: Counter[tuple[Any, Any]] = Counter()
    for source, row in _rows(t, "bridge_participants"):
        bridge = _get(t, "bridges", row.get("bridge_id"))
        host, who = bridge.get("bridge_host"), row.get("user_id")
        add("bridge.extra_host", source, row.get("role_in_bridge") == "host" and who != host)
        key = (row.get("bridge_id"), who)
        seen[key] += 1
        add("bridge.already_participant", source, who == host or seen[key] > 1)
        add("bridge.participant_inactive", source, inactive(who))
    for source, row in _rows(t, "root_cause_analyses"):
        inc = incident(row.get("incident_id"))
        add("rca.incident_and_problem", source,
            row.get("incident_id") and row.get("problem_ticket_id"))  # fmt: skip
        add("rca.not_major_incident", source, inc and inc.get("severity") not in ("P1", "P2"))
        add("rca.incident_not_resolved", source,
            inc and inc.get("status") not in ("resolved", "closed"))  # fmt: skip
    granted = {
        str(row.get("reference_id"))
        for _, row in _rows(t, "approval_requests")
        if row.get("reference_type") == "change" and row.get("status") == "approved"
    }
    for source, row in _rows(t, "change_requests"):
        add("change.approval_required", source,
            row.get("change_type") == "emergency" and source.split(":")[1] not in granted
            and row.get("status") in ("approved", "scheduled", "implemented"))  # fmt: skip
        add("change.approver_while_requested", source,
            row.get("status") == "requested" and row.get("approved_by"))  # fmt: skip
    for source, row in _rows(t, "rollback_requests"):
        change = _get(t, "change_requests", row.get("change_id"))
        add("rollback.change_not_implemented", source, change.get("status") != "implemented")
    for source, row in _rows(t, "approval_requests"):
        add("approval.approver_inactive", source, inactive(row.get("approver")))
    for source, row in _rows(t, "work_notes"):
        parent = incident(row.get("incident_id")).get("detection_time") or _get(
            t, "problem_tickets", row.get("problem_ticket_id")
        ).get("detected_at")
        add("work_note.before_detection", source, parent and row.get("created_at", "") < parent)
        add("work_note.author_role", source,
            user(row.get("created_by")).get("role") not in NOTE_WRITERS)  # fmt: skip
    for source, row in _rows(t, "communications"):
        add("communication.recipient_inactive", source, inactive(row.get("recipient")))
    for source, row in _rows(t, "configuration_items"):
        add("configuration_item.owner_inactive", source, inactive(row.get("responsible_owner")))
    for source, row in _rows(t, "problem_tickets"):
        assignee = row.get("assigned_to")
        add("problem.assignee_not_allowed", source,
            inactive(assignee) or user(assignee).get("role") not in RESPONDERS)  # fmt: skip
    return found
