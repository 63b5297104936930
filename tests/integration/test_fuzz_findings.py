"""What the OpenAPI fuzzer (test_fuzz_openapi.py) found, pinned: a body that is not UTF-8 was an
undocumented 400, a JSON `null` body where the body is optional was a 500."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Actor, Refuse


def test_command_refused_when_body_is_not_utf8(
    client: TestClient,
    manager: Actor,
    open_incident: Callable[..., dict[str, Any]],
    refuse: Refuse,
) -> None:
    number = open_incident()["number"]
    body = refuse(
        lambda: client.patch(
            f"/incidents/{number}",
            content=b'{"title": "\xff\xfe"}',
            headers={**manager.headers, "Content-Type": "application/json"},
        ),
        422,
        "request.invalid",
    )
    assert body["errors"] == [
        {"field": None, "message": "the body is not UTF-8 JSON", "type": "json_invalid"}
    ]


def test_null_body_counts_as_no_body_where_the_body_is_optional(
    client: TestClient, manager: Actor, open_incident: Callable[..., dict[str, Any]]
) -> None:
    number = open_incident()["number"]
    acknowledged = client.post(
        f"/incidents/{number}/acknowledge",
        content=b"null",
        headers={**manager.headers, "Content-Type": "application/json"},
    )
    assert acknowledged.status_code == 200, acknowledged.text
    assert acknowledged.json()["version"] == 2


def test_null_body_refused_where_the_body_is_required(
    client: TestClient, manager: Actor, refuse: Refuse
) -> None:
    refuse(
        lambda: client.post(
            "/incidents",
            content=b"null",
            headers={**manager.headers, "Content-Type": "application/json"},
        ),
        422,
        "request.invalid",
    )


def test_forged_cursor_with_nul_is_refused_not_run(client: TestClient, admin: Actor) -> None:
    """A cursor carrying text PostgreSQL cannot store is a 422, never a 500."""
    import base64
    import json

    forged = base64.urlsafe_b64encode(
        json.dumps(["\u0000", "00000000-0000-0000-0000-000000000000"]).encode()
    ).decode()
    refused = client.get(
        "/incidents", params={"sort": "number", "cursor": forged}, headers=admin.headers
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "query.invalid"
