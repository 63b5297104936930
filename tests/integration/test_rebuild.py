"""A projection rebuilt from zero is identical to the live one (SPEC section 6), both through
`Projections.rebuild()` and through the `incident-ledger projections rebuild` command."""

from __future__ import annotations

import itertools
import logging
import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psutil
import psycopg
import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic
from fastapi.testclient import TestClient
from psycopg.rows import dict_row
from psycopg.sql import SQL, Identifier

from api import cli
from api.database import Database
from api.service import Service
from domain.base import Command, Meta, Role
from domain.client import RegisterClient
from domain.configuration_item import (
    AssignCIToClient,
    RegisterConfigurationItem,
    UnassignCIFromClient,
)
from domain.escalation import Escalate, EscalationStatus, UpdateEscalationStatus
from domain.incident import (
    AcknowledgeIncident,
    AssignIncident,
    ChangeIncidentStatus,
    UpdateIncidentDetails,
)
from domain.mapper import PydanticMapper
from domain.numbering import Counter
from domain.severity import SeverityAssessment
from domain.user import DeactivateUser, UpdateUser
from domain.work_note import AddWorkNote, NoteType, UpdateWorkNote
from projections import rebuild as rebuild_module
from projections.rebuild import RebuildFailed, Workers
from projections.views import PAGE, LedgerView
from tests.conftest import Actor, admin_id, open_command, register_user

# Every table of every view, with the columns that order its rows.
VIEW_TABLES: dict[str, tuple[str, ...]] = {
    "incident_view": ("id",),
    "user_view": ("id",),
    "ci_client": ("ci_id", "client_id"),
    "timeline_entry": ("notification_id",),
    "timeline_links": ("record_id", "root_id"),
    "timeline_actor": ("id",),
    "record_view": ("id",),
}
_serial = itertools.count(1)

Snapshot = dict[str, list[dict[str, Any]]]


def snapshot(database: Database) -> Snapshot:
    with psycopg.connect(**database.conninfo(), row_factory=dict_row) as conn:
        return {
            table: conn.execute(
                SQL("SELECT * FROM {} ORDER BY {}").format(
                    Identifier(table), SQL(", ").join(Identifier(c) for c in keys)
                )
            ).fetchall()
            for table, keys in VIEW_TABLES.items()
        }


def differences(before: Snapshot, after: Snapshot) -> dict[str, Any]:
    """Per table, the rows only in one of the two snapshots (empty when identical)."""
    found: dict[str, Any] = {}
    for table in VIEW_TABLES:
        if before[table] == after[table]:  # the common case, in one pass
            continue
        # Rows compared by their repr (columns come in table order): one pass each, not n².
        had, has = {repr(row) for row in before[table]}, {repr(row) for row in after[table]}
        lost = [row for row in before[table] if repr(row) not in has]
        gained = [row for row in after[table] if repr(row) not in had]
        found[table] = {"live_only": lost[:5], "rebuilt_only": gained[:5]}
    return found


@dataclass
class Activity:
    manager: UUID
    support: UUID
    closed_incident: UUID
    open_incident: UUID


def run(service: Service, command: Command, actor: UUID | None) -> UUID:
    return service.execute(command, actor or admin_id(service)).id


@pytest.fixture(scope="module")
def activity(service: Service) -> Activity:
    """Incidents through several statuses, notes, escalations, CIs and clients, user changes."""
    manager = register_user(service, "Rhea", Role.INCIDENT_MANAGER)
    support = register_user(service, "Sam", Role.TECHNICAL_SUPPORT)
    leaver = register_user(service, "Lee", Role.ANALYST)
    client = run(
        service,
        RegisterClient(
            client_name="Acme",
            registration_number=f"REG-{next(_serial)}",
            company_type="enterprise",
            support_coverage="24x7",
            preferred_communication="email",
        ),
        None,
    )
    cis = [
        run(
            service,
            RegisterConfigurationItem(
                ci_name=f"orders-{kind}-{next(_serial)}",
                ci_type=kind,
                environment="production",
                responsible_owner=manager,
            ),
            None,
        )
        for kind in ("application", "database")
    ]
    for ci in cis:
        run(service, AssignCIToClient(configuration_item=ci, client=client), None)
    run(service, UnassignCIFromClient(configuration_item=cis[1], client=client), None)

    first = run(service, open_command(manager, configuration_items=cis), manager)
    ref = str(first)
    run(service, AcknowledgeIncident(incident=ref), manager)
    run(service, ChangeIncidentStatus(incident=ref, status="in_progress"), manager)
    note = run(
        service,
        AddWorkNote(incident=ref, note_type=NoteType.TROUBLESHOOTING, note_text="pool at max"),
        manager,
    )
    run(service, UpdateWorkNote(work_note=note, note_text="pool at max; raised to 200"), manager)
    escalation = run(
        service, Escalate(incident=ref, escalated_to=support, reason="needs a DBA"), manager
    )
    run(
        service,
        UpdateEscalationStatus(escalation=escalation, status=EscalationStatus.APPROVED),
        manager,
    )
    run(
        service,
        UpdateIncidentDetails(incident=ref, title="Orders API down", severity="P2"),
        manager,
    )
    for status in ("monitoring", "resolved", "in_progress", "resolved", "closed"):
        run(service, ChangeIncidentStatus(incident=ref, status=status), manager)

    second = run(
        service,
        open_command(
            manager,
            title="Search degraded",
            severity=None,
            assessment=SeverityAssessment(single_department=True),
            assigned_to=None,
        ),
        manager,
    )
    run(service, AssignIncident(incident=str(second), assigned_to=manager), manager)
    run(service, AcknowledgeIncident(incident=str(second)), manager)
    run(service, UpdateUser(user=leaver, timezone="UTC"), None)
    run(service, DeactivateUser(user=leaver), None)
    return Activity(manager, support, first, second)


def test_rebuild_reproduces_views_when_activity_was_projected_live(
    service: Service, database: Database, activity: Activity
) -> None:
    service.project()
    live = snapshot(database)
    incidents = {row["id"]: row for row in live["incident_view"]}
    closed = incidents[activity.closed_incident]
    assert (closed["status"], closed["reopen_count"], closed["severity"]) == ("closed", 1, "P2")
    assert incidents[activity.open_incident]["severity"] == "P3"
    assert all(live[table] for table in VIEW_TABLES), "every view table should hold rows"

    total = service.rebuild()

    assert total >= 2 * len(live["timeline_entry"])  # both views refolded every event
    assert differences(live, snapshot(database)) == {}
    assert all(lag["events_behind"] == 0 for lag in service.projections.lag())


def test_cli_rebuild_reproduces_views_when_server_already_runs(
    service: Service,
    database: Database,
    data_dir: Path,
    activity: Activity,
    capsys: pytest.CaptureFixture[str],
) -> None:
    service.project()
    live = snapshot(database)

    code = cli.main(["projections", "rebuild", "--data-dir", str(data_dir)])

    assert code == 0
    out = capsys.readouterr().out
    assert "rebuilt:" in out
    folded = [line for line in out.splitlines() if line.startswith("  events folded: ")]
    assert folded, out
    assert all(f" {view.name} " in folded[-1] for view in service.projections.views)
    assert "(0 behind)" in out
    assert differences(live, snapshot(database)) == {}
    # the session's service still works on the same server afterwards
    run(
        service,
        AddWorkNote(
            incident=str(activity.open_incident),
            note_type=NoteType.PROGRESS_UPDATE,
            note_text="after the CLI rebuild",
        ),
        activity.manager,
    )


@pytest.fixture
def live_after_rename(
    service: Service, database: Database, activity: Activity, event_count: Callable[[], int]
) -> Snapshot:
    """A user acts, is renamed, acts again, each event projected live; the views afterwards."""
    user = register_user(service, "Nora", Role.INCIDENT_MANAGER)
    incident = run(service, open_command(user, title="Renamed actor"), user)
    if event_count() % PAGE == 0:
        # The rename would open a rebuild page; one more act keeps it in the same page as
        # events the user did under the old name, which is the case this test is about.
        note = AddWorkNote(incident=str(incident), note_type="progress_update", note_text="on it")
        run(service, note, user)
    run(service, UpdateUser(user=user, first_name="Noor", last_name="Renamed"), None)
    run(service, AcknowledgeIncident(incident=str(incident)), user)
    service.project()
    live = snapshot(database)
    names = [row["actor_name"] for row in live["timeline_entry"] if row["actor_id"] == user]
    assert names[0].startswith("Nora ")  # live: the name as it was when the event happened
    assert names[-1] == "Noor Renamed"
    return live


def test_rebuild_keeps_actor_names_when_actor_was_renamed_later(
    service: Service, database: Database, live_after_rename: Snapshot
) -> None:
    service.rebuild()

    assert differences(live_after_rename, snapshot(database)) == {}


def test_rebuild_never_shows_readers_fewer_entries_when_run_under_reads_and_writes(
    service: Service,
    client: TestClient,
    admin: Actor,
    database: Database,
    data_dir: Path,
    activity: Activity,
    monkeypatch: pytest.MonkeyPatch,
    event_count: Callable[[], int],
) -> None:
    incidents = [str(activity.closed_incident), str(activity.open_incident)]
    service.project()
    before = snapshot(database)
    # About 20 slowed pages, so the readers and the writer overlap every phase of the rebuild.
    monkeypatch.setattr(rebuild_module, "PAGE", max(20, event_count() // 20))
    write = LedgerView.write

    folded = [0]  # view-pages the rebuild has folded

    def slow_write(self: LedgerView, curs: Any, page: Any, suffix: str = "") -> None:
        if suffix:
            time.sleep(0.004)
            folded[0] += 1
        write(self, curs, page, suffix)

    monkeypatch.setattr(LedgerView, "write", slow_write)
    stop = threading.Event()
    problems: list[str] = []
    reads = [0]
    written: list[int] = []

    def read() -> None:
        seen: dict[str, int] = {}
        while not stop.is_set():
            for incident in incidents:
                response = client.get(f"/incidents/{incident}/timeline", headers=admin.headers)
                if response.status_code != 200:
                    problems.append(f"{response.status_code} {response.text}")
                    return
                count = len(response.json()["entries"])
                if count < seen.get(incident, 0):
                    problems.append(f"{incident}: {count} entries after {seen[incident]}")
                seen[incident] = count
                reads[0] += 1
                time.sleep(0.005)  # three readers in one interpreter leave the rebuild the GIL

    def write_notes() -> None:
        while not stop.is_set():
            note = AddWorkNote(
                incident=incidents[1], note_type=NoteType.PROGRESS_UPDATE, note_text="meanwhile"
            )
            position = service.execute(note, activity.manager).position
            assert position is not None
            written.append(position)
            # A note per three pages the rebuild folds, or per 0.1 s between its phases: a writer
            # as fast as the rebuild's pages would have it chase the head without end.
            start, deadline = folded[0], time.monotonic() + 0.1
            while folded[0] < start + 12 and time.monotonic() < deadline and not stop.is_set():
                time.sleep(0.002)

    threads = [threading.Thread(target=read) for _ in range(3)]
    threads.append(threading.Thread(target=write_notes))
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.2)
        assert cli.main(["projections", "rebuild", "--data-dir", str(data_dir)]) == 0
        time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    assert problems == []
    assert reads[0] > 50
    assert written
    service.project()
    after = snapshot(database)
    # the views are what they were, plus exactly the notes written meanwhile
    changed = differences(before, after)
    assert set(changed) <= {"timeline_entry", "timeline_links", "record_view"}
    assert all(not table["live_only"] for table in changed.values())
    gained = [row["notification_id"] for row in after["timeline_entry"]]
    assert sorted(set(gained) - {r["notification_id"] for r in before["timeline_entry"]}) == written
    assert service.health()["status"] == "ok"


# --- a rebuild shared out between processes ---------------------------------------------------

POISON_NOTE = "a note the other rebuild process cannot read"


class PoisonMapper(PydanticMapper):
    """Reads every event as the ledger's mapper does, except a work note saying POISON_NOTE: a
    mapper only the other process of a rebuild uses (named in its environment), as a bug in
    code that only it ran would."""

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        event = super().to_domain_event(stored_event)
        if getattr(event, "note_text", None) == POISON_NOTE:
            raise ValueError("this process cannot read the poisoned note")
        return event


def in_two_processes(service: Service, **changes: Any) -> Workers:
    """Two processes whatever the ledger's size or the machine's CPUs."""
    return replace(service.rebuild_workers(), processes=2, min_events=0, **changes)


def shadow_tables(database: Database) -> list[str]:
    with psycopg.connect(**database.conninfo()) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE '%%\\_\\_new'")
        return [row[0] for row in rows.fetchall()]


def rebuild_processes() -> list[psutil.Process]:
    children = psutil.Process().children(recursive=True)
    return [p for p in children if "projections.rebuild" in " ".join(p.cmdline())]


def assert_live_views_kept(database: Database, live: Snapshot) -> None:
    """The views are as they were, and the rebuild left no new table and no process behind."""
    assert differences(live, snapshot(database)) == {}
    assert shadow_tables(database) == []
    assert rebuild_processes() == []


def test_rebuild_in_two_processes_reproduces_views(
    service: Service,
    database: Database,
    activity: Activity,
    caplog: pytest.LogCaptureFixture,
    event_count: Callable[[], int],
) -> None:
    service.project()
    live = snapshot(database)
    folded: dict[str, int] = {}

    with caplog.at_level(logging.INFO, logger="incident_ledger.projections"):
        total = service.rebuild(
            progress=lambda view, n: folded.__setitem__(view, n),
            workers=in_two_processes(service),
        )

    assert "in 2 processes" in caplog.text
    assert differences(live, snapshot(database)) == {}
    views = service.projections.views
    assert set(folded) == {view.name for view in views}
    events = event_count()
    assert all(n == events for n in folded.values())  # the other process's progress, relayed
    assert total == events * len(views)
    assert all(lag["events_behind"] == 0 for lag in service.projections.lag())
    assert shadow_tables(database) == []
    assert rebuild_processes() == []


def test_rebuild_stops_and_keeps_live_views_when_other_process_cannot_read_an_event(
    service: Service, database: Database, activity: Activity
) -> None:
    bad = run(
        service,
        AddWorkNote(
            incident=str(activity.open_incident),
            note_type=NoteType.TROUBLESHOOTING,
            note_text=POISON_NOTE,
        ),
        activity.manager,
    )
    service.project()
    live = snapshot(database)
    workers = in_two_processes(service)
    poisoned = replace(workers, env={**workers.env, "MAPPER_TOPIC": get_topic(PoisonMapper)})

    with pytest.raises(RebuildFailed) as failed:
        service.rebuild(workers=poisoned)

    failure = failed.value.failure
    assert (failure.originator_id, failure.originator_version) == (str(bad), 1)
    assert failure.topic.endswith("WorkNote.Added")
    assert "cannot read the poisoned note" in failure.reason
    assert failure.view != "timeline"  # a view of the other process's share
    assert_live_views_kept(database, live)


def test_rebuild_says_why_when_other_process_cannot_start(
    service: Service, database: Database, activity: Activity
) -> None:
    service.project()
    live = snapshot(database)

    with pytest.raises(RuntimeError, match=r"rebuild process .* failed: .*no_such_module"):
        service.rebuild(workers=in_two_processes(service, app_topic="no_such_module:Ledger"))

    assert_live_views_kept(database, live)


def test_rebuild_process_stops_when_its_rebuild_is_gone(
    service: Service, database: Database, activity: Activity
) -> None:
    meta = Meta(
        actor=activity.manager, occurred_at=datetime.now(UTC), command_id=uuid4(), command="t"
    )
    counter = Counter(meta=meta, prefix=f"GONE{next(_serial)}")  # at least three pages' worth
    for _ in range(3):
        for _ in range(PAGE):
            counter.next_number(meta)
        service.ledger.save(counter)
    views = service.projections.views
    with psycopg.connect(**database.conninfo(), autocommit=True, row_factory=dict_row) as conn:
        rebuild_module._create_shadows(conn, views)
        try:
            child = subprocess.Popen(
                [sys.executable, "-m", "projections.rebuild"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            assert child.stdin is not None
            assert child.stdout is not None
            assert child.stderr is not None
            head = service.projections.status()[0]
            with child.stdin:
                job = (service.rebuild_workers(), ["timeline"], head, os.getpid())
                pickle.dump(job, child.stdin)
            child.stdout.close()  # the rebuild that started it is gone: nobody reads its answers
            child.wait(timeout=60)
            err = child.stderr.read()
            entries = conn.execute("SELECT count(*) AS n FROM timeline_entry__new").fetchone()
        finally:
            rebuild_module._drop_shadows(conn, views)

    assert child.returncode == 1
    assert b"the rebuild that started it is gone" in err
    assert entries is not None
    assert entries["n"] == PAGE  # it stopped after the first page it could not report


def test_rebuild_waits_for_a_process_of_an_earlier_rebuild_still_writing(
    service: Service, database: Database, activity: Activity
) -> None:
    service.project()
    live = snapshot(database)
    with psycopg.connect(**database.conninfo(), autocommit=True) as leftover:
        # as a process of a rebuild that died holds it while it folds its last page
        leftover.execute(
            "SELECT pg_advisory_lock_shared(hashtext(%s))", (rebuild_module.SHADOWS_LOCK,)
        )
        done = threading.Event()
        rebuilding = threading.Thread(target=lambda: (service.rebuild(), done.set()))
        rebuilding.start()
        try:
            assert not done.wait(1.0)  # it waits before it makes the new tables
            assert shadow_tables(database) == []
        finally:
            leftover.execute(
                "SELECT pg_advisory_unlock_shared(hashtext(%s))", (rebuild_module.SHADOWS_LOCK,)
            )
            rebuilding.join(timeout=60)
    assert done.is_set()
    assert differences(live, snapshot(database)) == {}


def test_rebuild_process_never_imports_from_the_working_directory(
    service: Service,
    database: Database,
    activity: Activity,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    marker = tmp_path / "imported"
    (tmp_path / "queue.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    service.project()
    live = snapshot(database)
    monkeypatch.chdir(tmp_path)

    service.rebuild(workers=in_two_processes(service))

    assert not marker.exists()
    assert differences(live, snapshot(database)) == {}
