"""Issue 11, integrity: every appended event is chained (the append's SQL and the verifier's Python
agree), and tampering as the database owner, with the immutability triggers off, is named by
`verify` every time: one changed byte, a deleted event, two swapped events, an event inserted
behind the ledger's back. An export verifies offline with the same verdict, and a signed
checkpoint detects a rewritten chain."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import StoredEvent
from fastapi.testclient import TestClient

from api.database import Database
from api.integrity import (
    Verdict,
    check,
    check_checkpoint,
    export_line,
    ledger_as_stored,
    load_private,
    load_public,
    new_key,
    read_export,
    sign_checkpoint,
)
from api.roles import EVENTS_TABLE
from api.service import Service
from api.settings import Settings
from api.store import CHAIN_TABLE
from tests.conftest import Actor
from tests.integration.databases import cli, fresh_database, url

EVENTS = 10_000


def verify(service: Service) -> Verdict:
    with ledger_as_stored(service.ledger.recorder) as stored:
        return check(stored)


def test_the_session_ledger_verifies_and_the_api_says_so(
    client: TestClient,
    service: Service,
    admin: Actor,
    make_user: Callable[..., Actor],
    open_incident: Callable[..., Any],
) -> None:
    open_incident()
    verdict = verify(service)
    assert verdict.ok, verdict.first_bad
    head = service.ledger.recorder.max_notification_id()
    assert verdict.head_position == head
    answer = client.get("/integrity", headers=make_user("auditor").headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["ok"] is True
    assert answer.json()["count"] >= verdict.count
    refused = client.get("/integrity", headers=make_user("incident_manager").headers)
    assert (refused.status_code, refused.json()["code"]) == (403, "role.forbidden")


@pytest.fixture(scope="module")
def ledger(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A ledger of its own with over 10,000 events: real commands, then many small appends."""
    with fresh_database(database) as db:
        data_dir = tmp_path_factory.mktemp("integrity")
        settings = Settings(database_url=url(db), allow_superuser=True, data_dir=data_dir)
        service = Service.start(settings, projector=False)
        try:
            service.bootstrap_admin()
            recorder = service.ledger.recorder
            for batch in range(EVENTS // 250):
                recorder.insert_events(
                    [
                        StoredEvent(
                            originator_id=uuid.uuid4(),
                            originator_version=1,
                            topic="tests.integrity:Filler.Created",
                            state=f'{{"batch": {batch}, "n": {n}}}'.encode(),
                        )
                        for n in range(250)
                    ]
                )
            yield service
        finally:
            service.close()


def owner(service: Service) -> psycopg.Connection[Any]:
    db = service.db
    conn = psycopg.connect(**db.conninfo(autocommit=True))
    conn.execute(f"ALTER TABLE {EVENTS_TABLE} DISABLE TRIGGER ALL")
    conn.execute(f"ALTER TABLE {CHAIN_TABLE} DISABLE TRIGGER ALL")
    return conn


def restore(conn: psycopg.Connection[Any]) -> None:
    for table in (EVENTS_TABLE, CHAIN_TABLE):
        for trigger in ("immutable", "no_truncate"):
            conn.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_{trigger}")
    conn.close()


def positions(conn: psycopg.Connection[Any]) -> list[int]:
    return [r[0] for r in conn.execute(f"SELECT notification_id FROM {EVENTS_TABLE} ORDER BY 1")]


def test_an_untouched_ledger_of_ten_thousand_events_verifies(ledger: Service) -> None:
    verdict = verify(ledger)
    assert verdict.ok, verdict.first_bad
    assert verdict.count > EVENTS


def test_one_changed_byte_is_named_every_time(ledger: Service) -> None:
    conn = owner(ledger)
    try:
        rng = random.Random(11)
        for target in rng.sample(positions(conn), 5):
            (state,) = conn.execute(
                f"SELECT state FROM {EVENTS_TABLE} WHERE notification_id = %s", (target,)
            ).fetchone()  # type: ignore[misc]
            changed = bytearray(state)
            at = rng.randrange(len(changed))
            changed[at] ^= 0x01
            conn.execute(
                f"UPDATE {EVENTS_TABLE} SET state = %s WHERE notification_id = %s",
                (bytes(changed), target),
            )
            verdict = verify(ledger)
            conn.execute(
                f"UPDATE {EVENTS_TABLE} SET state = %s WHERE notification_id = %s",
                (state, target),
            )
            assert not verdict.ok
            assert verdict.first_bad is not None
            assert verdict.first_bad["position"] == target
        assert verify(ledger).ok
    finally:
        restore(conn)


def test_a_deleted_event_is_named_with_or_without_its_chain_link(ledger: Service) -> None:
    conn = owner(ledger)
    try:
        rng = random.Random(12)
        every = positions(conn)
        for target in rng.sample(every[:-1], 3):
            row = conn.execute(
                f"SELECT * FROM {EVENTS_TABLE} WHERE notification_id = %s", (target,)
            ).fetchone()
            link = conn.execute(
                f"SELECT * FROM {CHAIN_TABLE} WHERE notification_id = %s", (target,)
            ).fetchone()
            assert row is not None
            assert link is not None
            conn.execute(f"DELETE FROM {EVENTS_TABLE} WHERE notification_id = %s", (target,))
            alone = verify(ledger)
            conn.execute(f"DELETE FROM {CHAIN_TABLE} WHERE notification_id = %s", (target,))
            both = verify(ledger)
            conn.execute(f"INSERT INTO {EVENTS_TABLE} VALUES ({', '.join(['%s'] * len(row))})", row)
            conn.execute(f"INSERT INTO {CHAIN_TABLE} VALUES (%s, %s)", link)
            assert alone.first_bad is not None
            assert alone.first_bad["position"] == target
            assert "missing" in alone.first_bad["reason"]
            following = every[every.index(target) + 1]
            assert both.first_bad is not None
            assert both.first_bad["position"] == following
        assert verify(ledger).ok
    finally:
        restore(conn)


def swap(conn: psycopg.Connection[Any], first: int, second: int) -> None:
    """The two events trade places in the ledger's order."""
    move = f"UPDATE {EVENTS_TABLE} SET notification_id = %s WHERE notification_id = %s"
    conn.execute(move, (-1, first))
    conn.execute(move, (first, second))
    conn.execute(move, (second, -1))


def test_two_swapped_events_are_named(ledger: Service) -> None:
    conn = owner(ledger)
    try:
        rng = random.Random(13)
        for _ in range(3):
            first, second = sorted(rng.sample(positions(conn), 2))
            swap(conn, first, second)
            verdict = verify(ledger)
            swap(conn, first, second)
            assert verdict.first_bad is not None
            assert verdict.first_bad["position"] == first
        assert verify(ledger).ok
    finally:
        restore(conn)


def test_an_event_inserted_behind_the_ledgers_back_is_named(ledger: Service) -> None:
    conn = owner(ledger)
    try:
        (inserted,) = conn.execute(
            f"INSERT INTO {EVENTS_TABLE} (originator_id, originator_version, topic, state) "
            "VALUES (%s, 1, 'tests.integrity:Forged.Created', '\\x7b7d') "
            "RETURNING notification_id",
            (uuid.uuid4(),),
        ).fetchone()  # type: ignore[misc]
        verdict = verify(ledger)
        conn.execute(f"DELETE FROM {EVENTS_TABLE} WHERE notification_id = %s", (inserted,))
        assert verdict.first_bad is not None
        assert verdict.first_bad["position"] == inserted
        assert "not in the chain" in verdict.first_bad["reason"]
        assert verify(ledger).ok
    finally:
        restore(conn)


def test_an_export_verifies_offline_and_a_checkpoint_catches_a_rewritten_chain(
    ledger: Service, tmp_path: Path
) -> None:
    export = tmp_path / "events.ndjson"
    with ledger_as_stored(ledger.ledger.recorder) as stored, export.open("w") as out:
        for row in stored:
            out.write(export_line(row) + "\n")
    online = verify(ledger)
    with export.open() as lines:
        offline = check(read_export(lines))
    assert offline == online
    assert offline.ok
    private, public = new_key()
    (tmp_path / "key.pem").write_bytes(private)
    (tmp_path / "key.pub.pem").write_bytes(public)
    checkpoint = sign_checkpoint(online, load_private(tmp_path / "key.pem"))
    key = load_public(tmp_path / "key.pub.pem")
    with export.open() as lines:
        assert check_checkpoint(checkpoint, key, read_export(lines))[0]
    # Rewrite history and recompute the whole chain: it verifies, the checkpoint does not.
    rows = [json.loads(line) for line in export.read_text().splitlines()]
    rows[5]["state"] = "e30="  # {}
    from api.integrity import Stored, link

    previous = b""
    rewritten = []
    for row in rows:
        stored = next(read_export([json.dumps(row)]))  # type: ignore[arg-type]
        assert stored.record is not None
        assert stored.version is not None
        assert stored.topic is not None
        assert stored.state is not None
        previous = link(
            previous, stored.position, stored.record, stored.version, stored.topic, stored.state
        )
        rewritten.append(Stored(**{**stored.__dict__, "hash": previous}))
    assert check(rewritten).ok
    holds, why = check_checkpoint(checkpoint, key, rewritten)
    assert not holds
    assert "not in this ledger" in why
    other, _ = new_key()
    (tmp_path / "other.pem").write_bytes(other)
    forged = sign_checkpoint(check(rewritten), load_private(tmp_path / "other.pem"))
    assert not check_checkpoint(forged, key, rewritten)[0]


def test_the_cli_exports_verifies_offline_and_signs(ledger: Service, tmp_path: Path) -> None:
    env = {"DATABASE_URL": url(ledger.db), "INCIDENT_LEDGER_ALLOW_SUPERUSER": "true"}
    data = str(tmp_path / "data")
    made = cli("keygen", "--out", str(tmp_path / "signer"), "--data-dir", data)
    assert made.returncode == 0, made.stderr
    signed = cli(
        "checkpoint", "--key", str(tmp_path / "signer.pem"), "--out", str(tmp_path / "cp.json"),
        "--data-dir", data, **env,
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr + signed.stdout
    exported = cli("export", "--events", str(tmp_path / "out.ndjson"), "--data-dir", data, **env)
    assert exported.returncode == 0, exported.stderr
    offline = cli(
        "verify", "--offline", str(tmp_path / "out.ndjson"), "--checkpoint",
        str(tmp_path / "cp.json"), "--public-key", str(tmp_path / "signer.pub.pem"),
    )  # fmt: skip
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert "verified:" in offline.stdout
    assert "checkpoint holds" in offline.stdout
    online = cli("verify", "--data-dir", data, **env)
    assert online.returncode == 0, online.stdout + online.stderr
    verdicts = [
        next(line for line in run.stdout.splitlines() if line.startswith("verified:"))
        for run in (online, offline)
    ]
    assert verdicts[0] == verdicts[1]
