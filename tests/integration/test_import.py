"""Issue 11, import (SPEC 10): the reference folder imported into a fresh database records every
row of every table (per-table counts equal the table sizes) in seconds, with the legacy numbers,
ids and times; importing it again appends nothing; the next incident number follows the imported
ones; an imported incident reads back and its timeline tells its legacy steps at their legacy
times with the audit trail's changes; the views agree with the records; the hash chain verifies;
a malformed copy of the folder is refused naming its file, key and field, and records nothing.

The reference data is read by path (never copied into the repository):
INCIDENT_LEDGER_REFERENCE_DATA, default ../shared/reference-data beside the repository."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.rows import dict_row

from api.app import create_app
from api.collections import COLLECTIONS
from api.database import Database
from api.importer import ImportSummary, import_folder
from api.service import Service
from api.settings import Settings
from domain.base import record_id
from domain.incident import OpenIncident
from domain.legacy import TABLES
from domain.legacy.rows import LegacyDataError, legacy_id
from tests.conftest import ADMIN_KEY
from tests.integration.databases import ROOT, cli, fresh_database, url

REFERENCE = Path(
    os.environ.get("INCIDENT_LEDGER_REFERENCE_DATA", ROOT.parent / "shared" / "reference-data")
)
pytestmark = pytest.mark.skipif(
    not (REFERENCE / "incidents.json").is_file(),
    reason=f"the reference data is not at {REFERENCE} (set INCIDENT_LEDGER_REFERENCE_DATA)",
)
HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}


def table(name: str, folder: Path = REFERENCE) -> dict[str, dict[str, Any]]:
    return dict(json.loads((folder / f"{name}.json").read_text(encoding="utf-8")))


def utc(text: str) -> str:
    """A legacy naive time as the API shows it (UTC)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def at(text: str) -> datetime:
    """A time as the API or the legacy data writes it (naive legacy times are UTC)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def count_events(service: Service) -> int:
    with service.ledger.recorder.datastore.transaction() as curs:  # type: ignore[attr-defined]
        curs.execute("SELECT count(*) AS n FROM incidentledger_events")
        row = curs.fetchone()
    assert row is not None
    return int(row["n"])


def start(db: Database, data_dir: Path) -> Service:
    settings = Settings(
        database_url=url(db), allow_superuser=True, data_dir=data_dir, admin_key=ADMIN_KEY
    )
    service = Service.start(settings, projector=False)
    service.bootstrap_admin()
    return service


@pytest.fixture(scope="module")
def fresh(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A ledger of its own, on a new database: only its first administrator."""
    with fresh_database(database) as db:
        service = start(db, tmp_path_factory.mktemp("import"))
        try:
            yield service
        finally:
            service.close()


@dataclass
class Imported:
    service: Service
    summary: ImportSummary
    progress: list[str]
    seconds: float
    before: int
    """Events before the import (the first administrator's)."""


@pytest.fixture(scope="module")
def imported(fresh: Service) -> Imported:
    before = count_events(fresh)
    lines: list[str] = []
    started = time.perf_counter()
    summary = import_folder(fresh, REFERENCE, progress=lines.append)
    seconds = time.perf_counter() - started
    fresh.project()
    return Imported(fresh, summary, lines, seconds, before)


@pytest.fixture(scope="module")
def client(imported: Imported) -> Iterator[TestClient]:
    service = imported.service
    with TestClient(create_app(service.settings, service=service)) as test_client:
        yield test_client


def cli_env(service: Service) -> dict[str, str]:
    return {
        "DATABASE_URL": url(service.db),
        "INCIDENT_LEDGER_ALLOW_SUPERUSER": "true",
        "INCIDENT_LEDGER_DATA_DIR": str(service.settings.data_dir),
    }


def test_every_row_of_every_table_is_recorded_in_seconds(imported: Imported) -> None:
    summary = imported.summary
    assert set(summary.tables) == set(TABLES)
    for name in TABLES:
        counts = summary.tables[name]
        assert counts.rows == len(table(name)), name
        assert counts.imported == counts.rows, (name, counts)
        assert (counts.skipped, counts.deferred) == (0, 0), name
    for name in ("incidents", "bridges", "users", "attachments", "approval_requests",
                 "sla_agreements"):  # fmt: skip
        assert summary.tables[name].records == len(table(name)), name
    assert summary.events == count_events(imported.service) - imported.before
    assert summary.events == sum(t.events for t in summary.tables.values())
    assert summary.events > 5_000
    assert imported.seconds < 30, imported.seconds
    assert any("events/s" in line and "ETA" in line for line in imported.progress)
    kinds = set(summary.findings)
    assert {
        "rca.incident_and_problem",
        "incident.assignee_inactive",
        "bridge.active_on_closed_incident",
    } <= kinds
    assert len(summary.findings["bridge.active_on_closed_incident"]) == sum(
        1
        for bridge in table("bridges").values()
        if bridge["status"] == "active"
        and table("incidents")[bridge["incident_id"]]["status"] == "closed"
    )


def test_importing_the_folder_again_appends_nothing_and_says_so(imported: Imported) -> None:
    service = imported.service
    before = count_events(service)
    again = cli("import", str(REFERENCE), **cli_env(service))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing to import" in again.stdout
    assert "appended nothing" in again.stdout
    assert count_events(service) == before
    summary = import_folder(service, REFERENCE)
    assert summary.nothing_new
    assert all(t.imported == 0 for t in summary.tables.values())
    assert all(t.skipped + t.deferred == t.rows for t in summary.tables.values())
    assert count_events(service) == before


def test_the_hash_chain_verifies_after_the_import(imported: Imported) -> None:
    verified = cli("verify", **cli_env(imported.service))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"verified: {count_events(imported.service)} events" in verified.stdout


def test_the_next_incident_gets_the_next_number(imported: Imported) -> None:
    users = table("users")
    key = next(
        k for k, u in users.items() if u["role"] == "incident_manager" and u["status"] == "active"
    )
    manager = legacy_id("users", key)
    opened = imported.service.execute(
        OpenIncident(
            title="After the import",
            description="the first incident the ledger numbers itself",
            category="software",
            impact="low",
            urgency="low",
            severity="P4",
            reported_by=manager,
            assigned_to=manager,
            detection_time=datetime.now(UTC),
        ),
        manager,
    )
    last = max(row["incident_number"] for row in table("incidents").values())
    assert last == "INC0000200"
    assert opened.number == "INC0000201"


def test_an_imported_incident_reads_back_with_its_legacy_numbers_and_times(
    client: TestClient,
) -> None:
    row = table("incidents")["1"]
    answer = client.get("/incidents/INC0000001", headers=HEADERS)
    assert answer.status_code == 200, answer.text
    incident = answer.json()
    assert incident["id"] == str(record_id("INC0000001"))
    assert incident["number"] == row["incident_number"]
    assert incident["status"] == row["status"]
    assert incident["detection_time"] == utc(row["detection_time"])
    assert incident["acknowledged_at"] == utc(row["acknowledged_at"])
    assert incident["assigned_to"] == str(legacy_id("users", row["assigned_to"]))
    problem = table("problem_tickets")[row["problem_id"]]
    assert incident["problem_id"] == str(record_id(problem["problem_number"]))
    links = [r["ci_id"] for r in table("incident_configuration_items").values()
             if r["incident_id"] == "1"]  # fmt: skip
    assert incident["configuration_items"] == [
        str(legacy_id("configuration_items", c)) for c in links
    ]
    bridge = next(b for b in table("bridges").values() if b["incident_id"] == "3")
    read = client.get(f"/bridges/{bridge['bridge_number']}", headers=HEADERS)
    assert read.status_code == 200, read.text
    assert read.json()["status"] == bridge["status"]


def test_the_timeline_tells_the_legacy_steps_at_their_times_with_the_audit_trail(
    imported: Imported, client: TestClient
) -> None:
    key = "5"  # closed, with an audit-trail entry (its problem changed)
    row = table("incidents")[key]
    audits = {k: a for k, a in table("audit_trails").items()
              if a["reference_type"] == "incident" and a["reference_id"] == key}  # fmt: skip
    assert row["status"] == "closed"
    assert audits
    answer = client.get(f"/incidents/{row['incident_number']}/timeline", headers=HEADERS)
    assert answer.status_code == 200, answer.text
    own = [e for e in answer.json()["entries"] if e["record_id"] == str(record_id("INC0000005"))]
    steps = [(e["event_type"], at(e["occurred_at"]), e["changes"].get("status")) for e in own
             if e["source"] == f"incidents:{key}"]  # fmt: skip
    assert steps[0][:2] == ("Incident.Opened", at(row["detection_time"]))
    assert ("Incident.Acknowledged", at(row["acknowledged_at"]), None) in steps
    moves = [(when, status) for kind, when, status in steps if kind == "Incident.StatusChanged"]
    assert moves == [
        (at(row["resolved_at"]), ["open", "resolved"]),
        (at(row["closed_at"]), ["resolved", "closed"]),
    ]
    assert all(e["command"] == "Import" for e in own)
    problems = table("problem_tickets")
    for audit_key, audit in audits.items():
        entry = next(e for e in own if e["source"] == f"audit_trails:{audit_key}")
        assert entry["event_type"] == "Incident.AuditTrailRecorded"
        assert at(entry["occurred_at"]) == at(audit["created_at"])
        assert entry["actor_id"] == str(legacy_id("users", audit["user_id"]))
        user = table("users")[audit["user_id"]]
        assert entry["actor_name"] == f"{user['first_name']} {user['last_name']}"
        before, after = (
            str(record_id(problems[v]["problem_number"]))
            for v in (audit["old_value"], audit["new_value"])
        )
        assert entry["changes"] == {audit["field_name"]: [before, after]}
    # The audit trail is history: the incident still shows the problem its row names.
    incident = client.get(f"/incidents/{row['incident_number']}", headers=HEADERS).json()
    assert incident["problem_id"] == str(record_id(problems[row["problem_id"]]["problem_number"]))


def test_the_views_hold_each_imported_record_as_the_record_does(imported: Imported) -> None:
    service = imported.service
    service.project()
    by_type = {c.aggregate.__name__: c for c in COLLECTIONS}
    with psycopg.connect(**service.db.conninfo(), row_factory=dict_row) as conn:
        rows = conn.execute("SELECT id, record_type, version, fields FROM record_view").fetchall()
        incidents = conn.execute("SELECT * FROM incident_view").fetchall()
    checked = 0
    for row in rows:
        collection = by_type.get(row["record_type"])
        if collection is None:
            continue
        state = service.ledger.repository.get(row["id"], version=row["version"]).state()
        for name in collection.filters:
            assert row["fields"].get(name) == state[name], (row["record_type"], name)
        checked += 1
    assert checked >= sum(len(table(t)) for t in ("users", "bridges", "attachments"))
    for view in incidents:
        state = service.ledger.repository.get(view["id"]).state()
        for name in ("status", "assigned_to", "problem_id", "acknowledged_at", "resolved_at"):
            shown = view[name]
            shown = (
                shown.isoformat().replace("+00:00", "Z") if isinstance(shown, datetime) else shown
            )
            assert (str(shown) if shown is not None else None) == state[name], (
                view["number"],
                name,
            )


MALFORMED: list[tuple[str, str, str | None, Callable[[dict[str, Any]], None]]] = [
    ("bridges", "7", "incident_id", lambda t: t["7"].update(incident_id="9999")),
    ("incidents", "12", "severity", lambda t: t["12"].update(severity="P9")),
    ("attachments", "1045", "uploaded_at", lambda t: t["1045"].update(uploaded_at="yesterday")),
    ("work_notes", "3", "note_text", lambda t: t["3"].pop("note_text")),
]


@pytest.fixture(scope="module")
def empty(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with fresh_database(database) as db:
        service = start(db, tmp_path_factory.mktemp("malformed"))
        try:
            yield service
        finally:
            service.close()


@pytest.mark.parametrize(
    ("name", "key", "field", "spoil"), MALFORMED, ids=[m[0] for m in MALFORMED]
)
def test_a_malformed_file_is_named_with_its_key_and_nothing_is_recorded(
    empty: Service, tmp_path: Path, name: str, key: str, field: str | None,
    spoil: Callable[[dict[str, Any]], None],
) -> None:  # fmt: skip
    copy = tmp_path / "legacy"
    shutil.copytree(REFERENCE, copy)
    rows = table(name, copy)
    spoil(rows)
    (copy / f"{name}.json").write_text(json.dumps(rows), encoding="utf-8")
    before = count_events(empty)
    with pytest.raises(LegacyDataError) as refused:
        import_folder(empty, copy)
    assert (refused.value.code, refused.value.file, refused.value.key) == (
        "import.malformed", f"{name}.json", key,
    )  # fmt: skip
    assert refused.value.field == field
    assert f"{name}.json" in refused.value.message
    assert count_events(empty) == before


def test_the_cli_names_a_file_that_is_not_json_and_records_nothing(
    empty: Service, tmp_path: Path
) -> None:
    copy = tmp_path / "legacy"
    shutil.copytree(REFERENCE, copy)
    (copy / "escalations.json").write_text('{"1": {', encoding="utf-8")
    before = count_events(empty)
    refused = cli("import", str(copy), **cli_env(empty))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "escalations.json" in refused.stderr
    assert "not valid JSON" in refused.stderr
    assert "Nothing was recorded" in refused.stderr
    assert count_events(empty) == before


def test_after_the_import_the_reference_sla_query_is_the_sop_tools_answer(
    imported: Imported, client: TestClient
) -> None:
    """SPEC 10: over all 200 imported incidents, `mode=reference` gives one row per breaching
    (incident, client) pair — the rows an independent rendition of the SOP tool computes from the
    legacy tables themselves."""
    from tests.integration.test_sla_reference import as_tool, tool

    tables = {
        name: table(name)
        for name in ("incidents", "incident_configuration_items", "ci_client_assignments",
                     "sla_agreements")
    }  # fmt: skip
    expected = tool(tables)
    assert len(expected) > 10, "the reference data holds breaches: the comparison tests nothing"
    found = client.get(
        "/sla/breaches",
        params={"mode": "reference"},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert found.status_code == 200, found.text
    rows = found.json()["breach_incidents"]
    legacy = {
        **{str(record_id(r["incident_number"])): k for k, r in tables["incidents"].items()},
        **{str(legacy_id("clients", k)): k for k in table("clients")},
        **{str(legacy_id("sla_agreements", k)): k for k in tables["sla_agreements"]},
    }
    ours = [
        {**as_tool(r), **{f: legacy[r[f]] for f in ("incident_id", "client_id", "sla_id")}}
        for r in rows
    ]

    def key(r: dict[str, Any]) -> tuple[int, int]:
        return int(r["incident_id"]), int(r["client_id"])

    assert sorted(ours, key=key) == sorted(expected, key=key)


def test_after_the_import_mttx_counts_the_imported_incidents(
    imported: Imported, client: TestClient
) -> None:
    incidents = table("incidents").values()
    acknowledged = [i for i in incidents if i["acknowledged_at"]]
    last = max(i["detection_time"] for i in incidents)[:10]  # not the incidents opened since
    report = client.get(
        "/metrics/mtta-mttr",
        params={"group_by": "severity", "provenance": "false", "detected_to": last},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    ).json()
    assert report["overall"]["incidents"] == len(table("incidents"))
    assert report["overall"]["mtta"]["count"] == len(acknowledged)
    by_severity = {g["key"]["severity"]: g["incidents"] for g in report["groups"]}
    assert sum(by_severity.values()) == len(table("incidents"))
