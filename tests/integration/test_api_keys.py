"""API keys behave like credentials: listed by prefix and label only, revoked at once, never
chosen except the first administrator's, not revived by a reactivation unless the administrator
says so, hashes in no view; repeated failures from one client are slowed (429)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from api.app import create_app
from api.service import Service
from tests.conftest import Actor


def _issue(client: TestClient, admin: Actor, user: str, label: str = "") -> dict[str, Any]:
    issued = client.post(f"/users/{user}/api-keys", json={"label": label}, headers=admin.headers)
    assert issued.status_code == 201, issued.text
    return dict(issued.json())


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_keys_listed_by_prefix_and_label_never_the_key_or_hash(
    client: TestClient, admin: Actor, make_user: Callable[..., Actor]
) -> None:
    holder = make_user("analyst")
    issued = _issue(client, admin, holder.id, "laptop")
    key = issued["key"]
    listed = client.get(f"/users/{holder.id}/api-keys", headers=admin.headers)
    assert listed.status_code == 200, listed.text
    mine = [k for k in listed.json() if k["key_id"] == issued["extra"]["key_id"]]
    assert len(mine) == 1
    assert mine[0]["prefix"] == key[:8]
    assert mine[0]["label"] == "laptop"
    assert mine[0]["works"] is True
    assert key not in listed.text
    # The holder may list their own keys; another non-administrator may not.
    assert client.get(f"/users/{holder.id}/api-keys", headers=_bearer(key)).status_code == 200
    other = make_user("analyst")
    assert client.get(f"/users/{holder.id}/api-keys", headers=other.headers).status_code == 403


def test_revoked_key_is_refused_at_once(
    client: TestClient,
    admin: Actor,
    make_user: Callable[..., Actor],
    refuse: Callable[..., dict[str, Any]],
) -> None:
    holder = make_user("incident_manager")
    issued = _issue(client, admin, holder.id)
    key_id = issued["extra"]["key_id"]
    assert client.get("/me", headers=_bearer(issued["key"])).status_code == 200
    revoked = client.delete(f"/users/{holder.id}/api-keys/{key_id}", headers=admin.headers)
    assert revoked.status_code == 200, revoked.text
    refused = client.get("/me", headers=_bearer(issued["key"]))
    assert refused.status_code == 401
    assert refused.json()["code"] == "auth.invalid_key"
    refuse(
        lambda: client.delete(f"/users/{holder.id}/api-keys/{key_id}", headers=admin.headers),
        409,
        "api_key.already_revoked",
    )
    stranger = make_user("analyst")
    refuse(
        lambda: client.delete(f"/users/{stranger.id}/api-keys/{key_id}", headers=admin.headers),
        404,
        "api_key.not_found",
    )
    # The holder's other key still works.
    assert client.get("/me", headers=holder.headers).status_code == 200


def test_only_generated_keys_can_be_issued(
    client: TestClient, admin: Actor, make_user: Callable[..., Actor]
) -> None:
    holder = make_user("analyst")
    chosen = client.post(
        f"/users/{holder.id}/api-keys",
        json={"key": "my-own-chosen-key-0123456789abcdef"},
        headers=admin.headers,
    )
    assert chosen.status_code == 422
    assert chosen.json()["errors"][0]["field"] == "key"


def test_reactivation_does_not_revive_earlier_keys_unless_restored(
    client: TestClient, admin: Actor, make_user: Callable[..., Actor]
) -> None:
    holder = make_user("incident_manager")
    me = lambda: client.get("/me", headers=holder.headers).status_code  # noqa: E731

    def cycle(restore: bool) -> None:
        path = f"/users/{holder.id}"
        assert client.post(f"{path}/deactivate", headers=admin.headers).status_code == 200
        assert me() == 403  # the account is inactive
        body = {"restore_keys": True} if restore else {}
        assert (
            client.post(f"{path}/reactivate", json=body, headers=admin.headers).status_code == 200
        )

    cycle(restore=True)
    assert me() == 200  # the administrator restored the keys
    cycle(restore=False)
    assert me() == 401  # a key issued before the deactivation stays dead
    fresh = _issue(client, admin, holder.id)
    assert client.get("/me", headers=_bearer(fresh["key"])).status_code == 200
    listed = client.get(f"/users/{holder.id}/api-keys", headers=admin.headers).json()
    assert [k["works"] for k in listed] == [False, True]


def test_key_hash_appears_in_no_timeline(
    client: TestClient, admin: Actor, service: Service, make_user: Callable[..., Actor]
) -> None:
    holder = make_user("analyst")
    _issue(client, admin, holder.id)
    service.projections.catch_up()
    with service.ledger.recorder.datastore.transaction() as curs:  # type: ignore[attr-defined]
        curs.execute("SELECT count(*) AS n FROM timeline_entry WHERE changes ? 'key_hash'")
        row = curs.fetchone()
    assert row is not None
    assert row["n"] == 0


def test_repeated_authentication_failures_are_slowed(service: Service) -> None:
    settings = service.settings.model_copy(update={"auth_failure_limit": 3})
    with TestClient(create_app(settings, service=service)) as fresh:
        bad = _bearer("il_not-a-key-0123456789abcdefghijklmnop")
        assert [fresh.get("/me", headers=bad).status_code for _ in range(3)] == [401] * 3
        slowed = fresh.get("/me", headers=bad)
        assert slowed.status_code == 429
        assert slowed.json()["code"] == "auth.too_many_failures"
        assert int(slowed.headers["Retry-After"]) >= 1
