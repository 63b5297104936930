"""The SLA clocks of one incident, from recorded facts (pure): which clients its CIs belonged to,
each client's agreement (tier, coverage), business calendar and the SLA policy — all as of the
incident's detection time, by the events' `occurred_at` — and, per (incident, client) pair, the
response and resolution clocks: target, when each stopped, the minutes used, when 75 % of the
target is used (at risk) and the last instant before it is breached.

Facts that changed after detection (a CI given to another client, a new agreement, a new policy)
never move an earlier incident's clocks. The incident's own facts are its current ones: severity,
acknowledgment, the last resolution (a reopened incident's resolution clock runs again)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from projections.business_time import Calendar

STOPPED_STATUSES = ("resolved", "closed")
AT_RISK = 0.75
"""Share of a target used from which a running clock is at risk."""
CLOCK_STATUSES = ("met", "breached", "running", "at_risk")


@dataclass(frozen=True)
class IncidentFacts:
    id: UUID
    number: str
    severity: str
    category: str
    status: str
    assigned_to: UUID | None
    detection_time: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    reopen_count: int
    ci_ids: tuple[UUID, ...] = ()


@dataclass(frozen=True)
class Fact:
    """One recorded change of reference data: a CI (un)assigned to a client (`subject` the CI,
    `value` the client, `flag` assigned), an agreement recorded or updated (`subject` the client,
    `value` the agreement, `fields` its new values), a client's calendar (`subject` the client,
    `value` the calendar or None)."""

    position: int
    occurred_at: datetime
    subject: UUID
    value: UUID | None
    flag: bool = True
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def order(self) -> tuple[datetime, int]:
        return self.occurred_at, self.position


@dataclass(frozen=True)
class Policy:
    id: UUID
    name: str
    effective_from: datetime
    position: int
    round_the_clock: dict[str, Any]
    business_hours: dict[str, Any]

    def target(self, hours: bool, tier: str, severity: str) -> tuple[int, int] | None:
        found = (self.business_hours if hours else self.round_the_clock).get(tier, {})
        cell = found.get(severity)
        return None if cell is None else (int(cell["response"]), int(cell["resolution"]))


@dataclass
class References:
    ci_facts: dict[UUID, list[Fact]] = field(default_factory=dict)
    agreement_facts: dict[UUID, list[Fact]] = field(default_factory=dict)
    calendar_facts: dict[UUID, list[Fact]] = field(default_factory=dict)
    calendars: dict[UUID, Calendar] = field(default_factory=dict)
    policies: list[Policy] = field(default_factory=list)


def _as_of(facts: Iterable[Fact], moment: datetime) -> list[Fact]:
    return sorted((f for f in facts if f.occurred_at <= moment), key=lambda f: f.order)


def clients_at(incident: IncidentFacts, refs: References) -> dict[UUID, list[Fact]]:
    """The clients the incident's CIs were assigned to at detection, each with the assignments
    that made it affected."""
    found: dict[UUID, list[Fact]] = {}
    for ci in incident.ci_ids:
        latest: dict[UUID | None, Fact] = {}
        for fact in _as_of(refs.ci_facts.get(ci, ()), incident.detection_time):
            latest[fact.value] = fact
        for client, fact in latest.items():
            if fact.flag and client is not None:
                found.setdefault(client, []).append(fact)
    return dict(sorted(found.items(), key=lambda item: str(item[0])))


def agreement_at(client: UUID, refs: References, moment: datetime) -> dict[str, Any] | None:
    """The agreement in force for the client at `moment`: active as recorded by then, and with
    `moment`'s (UTC) date between its effective and expiration dates. If several are, the one
    changed last."""
    states: dict[UUID, dict[str, Any]] = {}
    for fact in _as_of(refs.agreement_facts.get(client, ()), moment):
        assert fact.value is not None
        state = states.setdefault(fact.value, {"id": fact.value})
        state.update(fact.fields)
        state["as_recorded_at"] = fact.occurred_at
        state["position"] = fact.position
    day = moment.date()
    in_force = [
        s
        for s in states.values()
        if s.get("status") == "active"
        and date.fromisoformat(s["effective_date"]) <= day
        and (not s.get("expiration_date") or day <= date.fromisoformat(s["expiration_date"]))
    ]
    if not in_force:
        return None
    return max(in_force, key=lambda s: (s["as_recorded_at"], s["position"]))


def calendar_at(client: UUID, refs: References, moment: datetime) -> Calendar | None:
    facts = _as_of(refs.calendar_facts.get(client, ()), moment)
    if not facts or facts[-1].value is None:
        return None
    return refs.calendars.get(facts[-1].value)


def policy_at(refs: References, moment: datetime) -> Policy | None:
    """The policy in force at `moment`: the one taking effect last at or before it."""
    in_force = [p for p in refs.policies if p.effective_from <= moment]
    return max(in_force, key=lambda p: (p.effective_from, p.position), default=None)


def stops(incident: IncidentFacts) -> tuple[datetime | None, datetime | None]:
    """When the response clock and the resolution clock stopped (None: running). Resolution:
    the last resolution while the incident is resolved or closed (else its closure); a reopened
    incident's clock runs again. Response: the first acknowledgment, or lacking one the
    resolution (an incident resolved without an acknowledgment was responded to then)."""
    resolution = None
    if incident.status in STOPPED_STATUSES:
        resolution = incident.resolved_at or incident.closed_at
    return incident.acknowledged_at or resolution, resolution


@dataclass(frozen=True)
class Clock:
    target: int
    stopped_at: datetime | None
    minutes: float | None
    """Minutes used when stopped (working minutes on a business-hours clock)."""
    at_risk_at: datetime | None
    """When 75 % of the target is used (None: never, within 20 years)."""
    due_at: datetime | None
    """The last instant the target still holds: breached after it."""

    @property
    def met_at(self) -> datetime | None:
        """When it stopped within its target (None: it did not, or not yet)."""
        if self.stopped_at is None or self.minutes is None or self.minutes > self.target:
            return None
        return self.stopped_at

    @property
    def breach_at(self) -> datetime | None:
        """Breached after this instant (None: never, it stopped within its target)."""
        return None if self.met_at is not None else self.due_at


def clock(start: datetime, stop: datetime | None, target: int, cal: Calendar | None) -> Clock:
    full, risk = timedelta(minutes=target), timedelta(minutes=target * AT_RISK)
    if cal is None:
        used = None if stop is None else max(stop - start, timedelta())
        return Clock(target, stop, _minutes(used), start + risk, start + full)
    used = None if stop is None else cal.working(start, stop)
    return Clock(
        target,
        stop,
        _minutes(used),
        cal.reach(start, risk),
        cal.reach(start, full, latest=True),
    )


def _minutes(span: timedelta | None) -> float | None:
    return None if span is None else span.total_seconds() / 60


def status(c: Clock, now: datetime) -> str:
    """met | breached | running | at_risk, as of `now` (a clock that stops after `now` is still
    running then)."""
    if c.stopped_at is not None and c.stopped_at <= now:
        assert c.minutes is not None
        return "breached" if c.minutes > c.target else "met"
    if c.due_at is not None and now > c.due_at:
        return "breached"
    if c.at_risk_at is not None and now >= c.at_risk_at:
        return "at_risk"
    return "running"


def worst(statuses: Sequence[str]) -> str:
    """A pair's status: breached over at_risk over running over met."""
    for candidate in ("breached", "at_risk", "running"):
        if candidate in statuses:
            return candidate
    return "met"


@dataclass(frozen=True)
class Pair:
    incident: IncidentFacts
    client_id: UUID
    through: list[Fact]
    agreement: dict[str, Any] | None
    policy: Policy | None
    calendar: Calendar | None
    response: Clock | None
    resolution: Clock | None

    @property
    def kind(self) -> str:
        return "business_hours" if self.calendar is not None else "round_the_clock"

    def row(self) -> dict[str, Any]:
        """The pair's row in the `sla_clock` table."""
        i, a = self.incident, self.agreement or {}
        row: dict[str, Any] = {
            "incident_id": i.id,
            "client_id": self.client_id,
            "number": i.number,
            "severity": i.severity,
            "category": i.category,
            "status": i.status,
            "assigned_to": i.assigned_to,
            "detection_time": i.detection_time,
            "reopen_count": i.reopen_count,
            "agreement_id": a.get("id"),
            "tier": a.get("tier"),
            "coverage": a.get("support_coverage"),
            "policy_id": self.policy.id if self.policy else None,
            "calendar_id": self.calendar.id if self.calendar else None,
            "clock": self.kind,
        }
        for name, c in (("response", self.response), ("resolution", self.resolution)):
            row |= {
                f"{name}_target": c.target if c else None,
                f"{name}_stop": c.stopped_at if c else None,
                f"{name}_minutes": c.minutes if c else None,
                f"{name}_risk_at": c.at_risk_at if c else None,
                f"{name}_due_at": c.due_at if c else None,
                f"{name}_met_at": c.met_at if c else None,
            }
        # The pair is breached once either clock is, met once both are (see pair_status).
        breaches = [c.breach_at for c in (self.response, self.resolution) if c and c.breach_at]
        mets = [c.met_at for c in (self.response, self.resolution) if c]
        row["breach_at"] = min(breaches, default=None)
        row["met_at"] = max(mets) if len(mets) == 2 and None not in mets else None  # type: ignore[type-var]
        return row


def clock_of(row: dict[str, Any], name: str) -> Clock:
    """A clock back from its `sla_clock` row."""
    return Clock(
        row[f"{name}_target"],
        row[f"{name}_stop"],
        row[f"{name}_minutes"],
        row[f"{name}_risk_at"],
        row[f"{name}_due_at"],
    )


def derive(incident: IncidentFacts, refs: References) -> list[Pair]:
    """One pair per client the incident affected at detection. A pair whose client had no
    agreement in force (or with no policy) has no clocks: no SLA applied."""
    detected = incident.detection_time
    policy = policy_at(refs, detected)
    response_stop, resolution_stop = stops(incident)
    pairs = []
    for client, through in clients_at(incident, refs).items():
        agreement = agreement_at(client, refs, detected)
        calendar = None
        clocks: tuple[Clock | None, Clock | None] = (None, None)
        if agreement is not None and policy is not None:
            if agreement.get("support_coverage") == "business_hours":
                calendar = calendar_at(client, refs, detected)
            targets = policy.target(calendar is not None, agreement["tier"], incident.severity)
            if targets is not None:
                clocks = (
                    clock(detected, response_stop, targets[0], calendar),
                    clock(detected, resolution_stop, targets[1], calendar),
                )
        pairs.append(Pair(incident, client, through, agreement, policy, calendar, *clocks))
    return pairs
