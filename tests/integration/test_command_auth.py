"""A command authenticates from this worker's copies of its API key and user (no read per
request), yet a key revoked or a user deactivated in another worker refuses the next command
and records nothing: the decision checks the key again and the append guards the key and the
user, so a stale copy fails the append and the command is decided again on the current state."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from api.service import Service
from domain.api_key import ApiKey, IssueApiKey, RevokeApiKey, hash_key
from domain.context import Outcome
from domain.errors import LedgerError
from domain.ledger import IncidentLedger
from domain.user import DeactivateUser
from domain.work_note import AddWorkNote, NoteType
from tests.conftest import admin_id
from tests.integration.test_cross_record_races import open_incident, user


@pytest.fixture
def other_worker(service: Service) -> Iterator[IncidentLedger]:
    ledger = IncidentLedger(env=service.db.ledger_env(service.settings.app_role, pool_size=2))
    yield ledger
    ledger.close()


def _key(service: Service, holder: UUID) -> tuple[str, UUID]:
    secret = service.ledger.handle(IssueApiKey(user=holder), admin_id(service)).secret
    assert secret is not None
    return secret, ApiKey.create_id(key_hash=hash_key(secret))


def _note(client: TestClient, number: str, secret: str, key: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {secret}"} | ({"Idempotency-Key": key} if key else {})
    return client.post(
        f"/incidents/{number}/work-notes",
        json={"note_type": "progress_update", "note_text": "still here"},
        headers=headers,
    )


def _events(service: Service) -> int:
    return service.ledger.recorder.max_notification_id() or 0  # type: ignore[attr-defined]


def _manager_with_key(service: Service) -> tuple[UUID, str, str, UUID]:
    """A manager, an incident of theirs, and a key: (manager, number, secret, key id)."""
    manager = user(service)
    number = open_incident(service, manager)
    secret, key_id = _key(service, manager)
    return manager, number, secret, key_id


def test_a_key_revoked_in_another_worker_refuses_the_next_command(
    service: Service, client: TestClient, other_worker: IncidentLedger
) -> None:
    manager, number, secret, key_id = _manager_with_key(service)
    assert _note(client, number, secret).status_code == 201  # this worker now holds copies

    other_worker.handle(RevokeApiKey(user=manager, api_key=key_id), admin_id(service))
    head = _events(service)
    refused = _note(client, number, secret)

    assert refused.status_code == 401, refused.text
    assert refused.json()["code"] == "auth.invalid_key"
    assert _events(service) == head


def test_a_revoked_key_gets_no_replay_and_its_refusal_is_not_the_keys_answer(
    service: Service, client: TestClient, other_worker: IncidentLedger
) -> None:
    manager, number, secret, key_id = _manager_with_key(service)
    first = _note(client, number, secret, "note-1")
    assert first.status_code == 201, first.text
    assert _note(client, number, secret, "note-2").status_code == 201
    assert _note(client, number, secret, "note-1").headers["Idempotent-Replayed"] == "true"

    other_worker.handle(RevokeApiKey(user=manager, api_key=key_id), admin_id(service))
    head = _events(service)
    replay = _note(client, number, secret, "note-1")  # a stored answer: not for this key
    refused = _note(client, number, secret, "note-3")  # a new request under a new key
    assert (replay.status_code, replay.json()["code"]) == (401, "auth.invalid_key")
    assert (refused.status_code, refused.json()["code"]) == (401, "auth.invalid_key")
    assert _events(service) == head

    # With a valid key, the same Idempotency-Key is a new request, not the 401 again.
    fresh, _ = _key(service, manager)
    again = _note(client, number, fresh, "note-3")
    assert again.status_code == 201, again.text
    assert "Idempotent-Replayed" not in again.headers


def test_a_user_deactivated_in_another_worker_cannot_command(
    service: Service, client: TestClient, other_worker: IncidentLedger
) -> None:
    manager = user(service)
    number = open_incident(service, manager)
    secret, _ = _key(service, manager)
    assert _note(client, number, secret).status_code == 201

    other_worker.handle(DeactivateUser(user=manager), admin_id(service))
    head = _events(service)
    refused = _note(client, number, secret)

    assert refused.status_code in (401, 403), refused.text
    assert refused.json()["code"] in ("auth.invalid_key", "actor.inactive")
    assert _events(service) == head


def _race_revocation(
    service: Service, manager: UUID, key_id: UUID, note: AddWorkNote
) -> tuple[Outcome | LedgerError, list[Outcome | LedgerError]]:
    """The key's revocation and 8 commands sent with the key, all released together."""
    start = threading.Barrier(9)

    def revoke() -> Outcome | LedgerError:
        start.wait(timeout=30)
        return service.ledger.handle(RevokeApiKey(user=manager, api_key=key_id), admin_id(service))

    def write(_: int) -> Outcome | LedgerError:
        start.wait(timeout=30)
        try:
            return service.ledger.handle(note, manager, api_key=key_id)
        except LedgerError as refusal:
            return refusal

    with ThreadPoolExecutor(max_workers=9) as pool:
        revoked = pool.submit(revoke)
        results = list(pool.map(write, range(8)))
    return revoked.result(), results


def test_no_command_lands_after_its_key_is_revoked_when_they_race(service: Service) -> None:
    """8 commands with a key racing its revocation, 10 times: none lands after the revocation."""
    late: list[int] = []
    codes: set[str] = set()
    for _trial in range(10):
        manager = user(service)
        number = open_incident(service, manager)
        _, key_id = _key(service, manager)
        note = AddWorkNote(incident=number, note_type=NoteType.PROGRESS_UPDATE, note_text="race")
        revoked, results = _race_revocation(service, manager, key_id, note)
        assert isinstance(revoked, Outcome)
        assert revoked.position is not None
        late += [
            r.position
            for r in results
            if isinstance(r, Outcome) and r.position is not None and r.position > revoked.position
        ]
        codes |= {r.code for r in results if isinstance(r, LedgerError)}
    assert late == []
    assert codes <= {"auth.invalid_key", "concurrency.busy"}
