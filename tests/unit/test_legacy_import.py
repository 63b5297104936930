"""The import's pure mapping (domain/legacy) and its runs on the in-memory ledger: deterministic
ids and events, legacy data recorded as found, counters and roster moved once, a repeated run
appends nothing, an interrupted run resumes, a conflicting ledger is refused before anything is
appended, and an audit-trail entry is history that changes no state or view field.

Reads the reference data by path: INCIDENT_LEDGER_REFERENCE_DATA, default
../shared/reference-data beside the repository."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from api.importer import BATCH_BYTES, import_folder, read_folder
from domain.base import AuditTrailEntry, Meta, record_id
from domain.bridge import Bridge
from domain.errors import RuleViolation
from domain.incident import Incident, OpenIncident
from domain.ledger import IncidentLedger
from domain.legacy import plan_import
from domain.legacy.rows import LegacyDataError, legacy_id
from domain.numbering import Counter
from domain.rca import RootCauseAnalysis
from domain.user import AdministratorRoster, RegisterUser, User
from projections.folds import changes_of, record_rows
from tests.conftest import bootstrap

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = Path(
    os.environ.get("INCIDENT_LEDGER_REFERENCE_DATA", ROOT.parent / "shared" / "reference-data")
)
pytestmark = pytest.mark.skipif(
    not (REFERENCE / "incidents.json").is_file(),
    reason=f"the reference data is not at {REFERENCE} (set INCIDENT_LEDGER_REFERENCE_DATA)",
)


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    return read_folder(REFERENCE)


def head(ledger: IncidentLedger) -> int:
    return int(ledger.recorder.max_notification_id() or 0)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def imported() -> IncidentLedger:
    ledger = IncidentLedger()
    bootstrap(ledger)
    import_folder(ledger, REFERENCE)
    return ledger


def test_a_plan_is_the_same_every_time_and_keeps_legacy_ids_numbers_and_times(
    data: dict[str, Any],
) -> None:
    first, second = plan_import(data), plan_import(data)

    def shape(plan: Any) -> list[tuple[Any, ...]]:
        return [
            (e.originator_id, e.originator_version, type(e).__qualname__, e.meta.source,
             e.meta.occurred_at, e.meta.command_id, e.meta.command)
            for e in plan.events
        ]  # fmt: skip

    assert shape(first) == shape(second)
    assert all(e.meta.command == "Import" for e in first.events)
    opened = next(e for e in first.events if e.meta.source == "incidents:1")
    assert opened.originator_id == record_id("INC0000001")
    row = data["incidents"]["1"]
    assert opened.meta.occurred_at == datetime.fromisoformat(row["detection_time"]).replace(
        tzinfo=UTC
    )
    assert opened.meta.actor == legacy_id("users", row["reported_by"])
    note = next(e for e in first.events if e.meta.source == "work_notes:1")
    assert note.originator_id == legacy_id("work_notes", "1")
    assert note.meta.actor == legacy_id("users", data["work_notes"]["1"]["created_by"])
    assert first.numbers["INC"][0] == 200


def test_legacy_data_that_breaks_todays_rules_is_recorded_as_found(
    data: dict[str, Any], imported: IncidentLedger
) -> None:
    both = next(k for k, r in data["root_cause_analyses"].items()
                if r["incident_id"] and r["problem_ticket_id"])  # fmt: skip
    rca = imported.find(RootCauseAnalysis, data["root_cause_analyses"][both]["rca_number"], "rca")
    assert rca.incident_id is not None
    assert rca.problem_id is not None
    users = data["users"]
    inactive = next(
        k
        for k, r in data["incidents"].items()
        if r["assigned_to"] and users[r["assigned_to"]]["status"] == "inactive"
    )
    incident = imported.find(Incident, data["incidents"][inactive]["incident_number"], "incident")
    assignee = imported.find(User, incident.assigned_to or "", "user")
    assert assignee.status == "inactive"
    found = 0
    for bridge_row in data["bridges"].values():
        row = data["incidents"][bridge_row["incident_id"]]
        if bridge_row["status"] == "active" and row["status"] == "closed":
            bridge = imported.find(Bridge, bridge_row["bridge_number"], "bridge")
            on = imported.find(Incident, row["incident_number"], "incident")
            assert (bridge.status, on.status, on.active_bridge_id) == (
                "active",
                "closed",
                bridge.id,
            )
            found += 1
    assert found > 0
    plan = plan_import(data)
    assert len(plan.findings["bridge.active_on_closed_incident"]) == found


def test_counters_move_past_the_imported_numbers_and_a_second_import_appends_nothing(
    imported: IncidentLedger,
) -> None:
    counter = imported.get_or_none(Counter.create_id("INC"))
    assert isinstance(counter, Counter)
    assert counter.last == 200
    roster = imported.get_or_none(AdministratorRoster.create_id())
    assert isinstance(roster, AdministratorRoster)
    assert len(roster.members) > 1
    before = head(imported)
    again = import_folder(imported, REFERENCE)
    assert again.nothing_new
    assert head(imported) == before
    manager = legacy_id("users", "1")
    opened = imported.handle(
        OpenIncident(
            title="Next", description="after the import", category="software", impact="low",
            urgency="low", severity="P4", reported_by=manager, assigned_to=manager,
            detection_time=datetime.now(UTC) - timedelta(minutes=1),
        ),
        manager,
    )  # fmt: skip
    assert opened.number == "INC0000201"


def test_an_interrupted_import_resumes_where_it_stopped(
    data: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = IncidentLedger()
    bootstrap(ledger)
    start = head(ledger)
    saves = {"n": 0}
    save = ledger.save

    def failing(*objs: Any, **kwargs: Any) -> Any:
        saves["n"] += 1
        if saves["n"] == 4:
            raise ConnectionError("the database went away")
        return save(*objs, **kwargs)

    monkeypatch.setattr(ledger, "save", failing)
    with pytest.raises(ConnectionError):
        import_folder(ledger, REFERENCE, batch_bytes=BATCH_BYTES // 2)
    monkeypatch.undo()
    partial = head(ledger)
    assert start < partial
    resumed = import_folder(ledger, REFERENCE)
    assert resumed.events > 0
    assert sum(t.skipped for t in resumed.tables.values()) > 0
    clean = IncidentLedger()
    bootstrap(clean)
    whole = import_folder(clean, REFERENCE)
    assert head(ledger) - start == whole.events
    for event in plan_import(data).events[-50:]:
        assert ledger.repository.get(event.originator_id).version == (
            clean.repository.get(event.originator_id).version
        )


def test_a_record_the_ledger_holds_from_elsewhere_is_a_conflict_and_nothing_is_appended() -> None:
    ledger = IncidentLedger()
    admin = bootstrap(ledger)
    manager = ledger.handle(
        RegisterUser(first_name="Ima", last_name="Manager", email="ima@example.test",
                     role="incident_manager", timezone="UTC"),
        admin,
    ).id  # fmt: skip
    assert manager is not None
    ledger.handle(
        OpenIncident(
            title="Live", description="opened before the import", category="network",
            impact="low", urgency="low", severity="P4", reported_by=manager,
            detection_time=datetime.now(UTC) - timedelta(minutes=1),
        ),
        UUID(str(manager)),
    )  # fmt: skip
    before = head(ledger)
    with pytest.raises(RuleViolation) as refused:
        import_folder(ledger, REFERENCE)
    assert refused.value.code == "import.conflict"
    assert "INC0000001" in refused.value.message
    assert head(ledger) == before


def test_a_malformed_table_names_its_file_key_and_field(data: dict[str, Any]) -> None:
    spoiled = json.loads(json.dumps(data))
    spoiled["audit_trails"]["5"]["reference_type"] = "spaceship"
    with pytest.raises(LegacyDataError) as refused:
        plan_import(spoiled)
    assert (refused.value.code, refused.value.file, refused.value.key, refused.value.field) == (
        "import.malformed", "audit_trails.json", "5", "reference_type",
    )  # fmt: skip
    missing = {k: v for k, v in data.items() if k != "clients"}
    with pytest.raises(LegacyDataError, match=r"clients\.json"):
        plan_import(missing)
    spoiled = json.loads(json.dumps(data))
    spoiled["users"]["9"] = ["not", "a", "row"]
    with pytest.raises(LegacyDataError) as refused:
        plan_import(spoiled)
    assert (refused.value.file, refused.value.key) == ("users.json", "9")


def test_an_audit_trail_entry_is_history_that_changes_no_state_or_view_field(
    imported: IncidentLedger,
) -> None:
    bridge = imported.find(Bridge, "BRG0000001", "bridge")
    before = bridge.state()
    at = datetime(2025, 9, 29, tzinfo=UTC)
    meta = Meta(actor=None, occurred_at=at, command_id=legacy_id("t", "1"), command="Import")
    bridge.trigger_event(
        Bridge.AuditTrailRecorded, meta=meta, action="update", changes={"status": ("a", "b")}
    )
    (event,) = bridge.collect_events()
    assert isinstance(event, AuditTrailEntry)
    assert type(event).__qualname__ == "Bridge.AuditTrailRecorded"
    unchanged = ("version", "updated_at")
    assert {k: v for k, v in bridge.state().items() if k not in unchanged} == {
        k: v for k, v in before.items() if k not in unchanged
    }
    assert changes_of(event) == {"status": ["a", "b"]}  # type: ignore[arg-type]
    (row,) = record_rows(event)  # type: ignore[arg-type]
    assert set(row.values) == {"version", "updated_at"}
