"""(e) What analysts run, over many incidents: the SLA breach query (GET /sla/breaches: the
summary per status and the first page, at `now`) and the MTTx query (GET /metrics/mtta-mttr
grouped by severity, without provenance), each timed against one plain SQL aggregate over the
same rows of the same view. Used by bench/run.py."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from api.service import Service
from domain.base import Meta
from domain.client import RegisterClient
from domain.configuration_item import AssignCIToClient, RegisterConfigurationItem
from domain.incident import Category, Incident, IncidentStatus, Level
from domain.numbering import Counter
from domain.severity import Severity
from domain.sla import RecordSLAAgreement
from projections.metric_filters import MetricFilters
from projections.metrics import report
from projections.sla_queries import Filters, breaches

PER_SAVE = 100
REPEATS = 7
TIERS = ("premium", "standard", "basic")
SLA_BASELINE = (
    "SELECT count(*), avg(response_minutes), avg(resolution_minutes), max(detection_time) "
    "FROM sla_clock"
)
MTTX_BASELINE = (
    "SELECT severity, count(m), avg(m), percentile_cont(0.5) WITHIN GROUP (ORDER BY m), "
    "percentile_disc(0.9) WITHIN GROUP (ORDER BY m) FROM (SELECT severity, "
    "extract(epoch FROM acknowledged_at - detection_time)::float8 / 60 AS m "
    "FROM sla_incident) AS i GROUP BY severity"
)
"""MTTA's count, mean, median and p90 by severity, written by hand over the incidents' times."""


@dataclass
class AnalyticsRun:
    incidents: int
    pairs: int
    catch_up_events_per_s: float
    sla_ms: float
    sla_baseline_ms: float
    mttx_ms: float
    mttx_baseline_ms: float

    @property
    def sla_ratio(self) -> float:
        return self.sla_ms / self.sla_baseline_ms

    @property
    def mttx_ratio(self) -> float:
        return self.mttx_ms / self.mttx_baseline_ms


def _meta(actor: UUID, command: str, when: datetime) -> Meta:
    return Meta(actor=actor, occurred_at=when, command_id=uuid4(), command=command)


def _reference_data(service: Service, admin: UUID, manager: UUID) -> list[UUID]:
    """Clients of each tier with an agreement, and CIs assigned to one or two of them, all
    recorded as of a year ago (before every incident's detection)."""
    since = datetime.now(UTC) - timedelta(days=365)

    def run(command: Any, actor: UUID) -> Any:
        return service.execute(command.model_copy(update={"occurred_at": since}), actor)

    clients = []
    for n, tier in enumerate(TIERS * 4):
        client = run(
            RegisterClient(
                client_name=f"Bench client {n}",
                registration_number=f"BENCH-{n}",
                company_type="enterprise",
                support_coverage="24x7",
                preferred_communication="email",
            ),
            admin,
        ).id
        run(
            RecordSLAAgreement(
                client=client, tier=tier, support_coverage="24x7", effective_date="2020-01-01"
            ),
            admin,
        )
        clients.append(client)
    cis = []
    for n in range(24):
        ci = run(
            RegisterConfigurationItem(
                ci_name=f"bench-ci-{n}",
                ci_type="service",
                environment="production",
                responsible_owner=manager,
            ),
            admin,
        ).id
        for client in {clients[n % len(clients)], clients[(n * 7) % len(clients)]}:
            run(AssignCIToClient(configuration_item=ci, client=client), admin)
        cis.append(ci)
    return cis


def generate(service: Service, admin: UUID, manager: UUID, total: int, progress: Any) -> None:
    """`total` incidents detected over the last 90 days, each on a CI, most acknowledged and
    resolved (the events OpenIncident, AcknowledgeIncident and the status changes write)."""
    rng = random.Random(9)
    cis = _reference_data(service, admin, manager)
    ledger, now, done = service.ledger, datetime.now(UTC), 0
    while done < total:
        found = ledger.get_or_none(Counter.create_id(prefix="INC"))
        counter = (
            found
            if isinstance(found, Counter)
            else Counter(meta=_meta(manager, "OpenIncident", now), prefix="INC")
        )
        batch = []
        for _ in range(min(PER_SAVE, total - done)):
            detected = now - timedelta(minutes=rng.randint(60, 90 * 1440))
            meta = _meta(manager, "OpenIncident", detected)
            incident = Incident(
                meta=meta, number=counter.next_number(meta), title="Bench incident",
                description="generated", category=rng.choice(list(Category)),
                severity=rng.choice(list(Severity)), impact=Level.MEDIUM, urgency=Level.HIGH,
                reported_by=manager, assigned_to=manager, detection_time=detected,
                assessment=None, decision=None,
            )  # fmt: skip
            incident.link_configuration_item(meta, rng.choice(cis))
            clock = detected + timedelta(minutes=rng.randint(1, 3000))
            if rng.random() < 0.85 and clock < now:
                incident.acknowledge(_meta(manager, "AcknowledgeIncident", clock))
            clock += timedelta(minutes=rng.randint(1, 20000))
            if rng.random() < 0.7 and clock < now:
                moved = _meta(manager, "ChangeIncidentStatus", clock)
                incident.change_status(moved, IncidentStatus.RESOLVED)
            batch.append(incident)
        ledger.save(counter, *batch)
        done += len(batch)
        progress(done)
    progress(done, final=True)


def _median_ms(work: Callable[[], Any]) -> float:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(
    service: Service, total: int, admin: UUID, manager: UUID, progress: Any
) -> AnalyticsRun:
    generate(service, admin, manager, total, progress)
    started = time.perf_counter()
    events = service.project()
    catch_up = events / (time.perf_counter() - started)
    now = datetime.now(UTC)
    with service.reader.reading("analytics") as (curs, _position):
        curs.execute(
            "SELECT (SELECT count(*) FROM sla_incident) AS i, count(*) AS p FROM sla_clock"
        )
        row = curs.fetchone() or {}

        def sla() -> Any:
            return breaches(curs, Filters(now), ("breached", "at_risk"), 100, None)

        def mttx() -> Any:
            filters = MetricFilters(now)
            return report(curs, filters, ["severity"], False)

        def plain(sql: str) -> Callable[[], Any]:
            return lambda: curs.execute(sql).fetchall()

        for work in (sla, mttx, plain(SLA_BASELINE), plain(MTTX_BASELINE)):
            work()  # warm the caches once
        return AnalyticsRun(
            incidents=int(row.get("i") or 0),
            pairs=int(row.get("p") or 0),
            catch_up_events_per_s=catch_up,
            sla_ms=_median_ms(sla),
            sla_baseline_ms=_median_ms(plain(SLA_BASELINE)),
            mttx_ms=_median_ms(mttx),
            mttx_baseline_ms=_median_ms(plain(MTTX_BASELINE)),
        )
