"""SPEC 5, route by route: `If-Match` and `expected_version` guard every command on an existing
record (412 / 409 with the current version), time rules on well-formed input answer 409 and times
outside 1970..2200 are 422, and the OpenAPI document promises the refusals the API gives."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.routes import ROUTES, CommandRoute
from api.service import Service
from domain.api_key import RevokeApiKey
from domain.base import RecordCommand
from domain.context import resolve
from domain.incident import OpenIncident
from tests.conftest import Actor, Refuse
from tests.integration.route_matrix import (
    ROUTE_IDS,
    Records,
    make_records,
    path_params,
    request_for,
    send,
)


@pytest.fixture(scope="module")
def rec(client: TestClient, make_user: Callable[..., Actor], admin: Actor) -> Records:
    return make_records(client, make_user, admin)


def _route(method: str, path: str) -> CommandRoute:
    return next(r for r in ROUTES if (r.method, r.path) == (method, path))


def _version(service: Service, route: CommandRoute, url: str) -> int:
    """The current version of the record a route addresses (its first path parameter, or the
    key a revocation names)."""
    name = "api_key" if route.command is RevokeApiKey else path_params(route)[0]
    ref = url.split("/")[route.path.split("/").index(f"{{{name}}}")]
    found = service.ledger.get_or_none(resolve(ref, name))
    assert found is not None
    return int(found.version)


# --- If-Match and expected_version ---------------------------------------------------------------


def test_acknowledge_incident_checks_if_match_against_etag(
    client: TestClient, manager: Actor, open_incident: Callable[..., dict[str, Any]], refuse: Refuse
) -> None:
    number = open_incident()["number"]
    state = client.get(f"/incidents/{number}", headers=manager.headers)
    assert state.headers["ETag"] == '"1"'
    renamed = client.patch(
        f"/incidents/{number}",
        json={"title": "Renamed"},
        headers={**manager.headers, "If-Match": '"1"'},
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.headers["ETag"] == '"2"'

    url = f"/incidents/{number}/acknowledge"
    stale = refuse(
        lambda: client.post(url, headers={**manager.headers, "If-Match": '"1"'}),
        412,
        "precondition.failed",
    )
    assert stale["current_version"] == 2
    refuse(
        lambda: client.post(url, headers={**manager.headers, "If-Match": '"abc"'}),
        412,
        "precondition.invalid",
    )
    acknowledged = client.post(url, headers={**manager.headers, "If-Match": '"2"'})
    assert acknowledged.status_code == 200, acknowledged.text
    assert acknowledged.headers["ETag"] == '"3"'
    assert acknowledged.json()["version"] == 3


def test_update_user_checks_if_match_and_expected_version(
    client: TestClient, admin: Actor, make_user: Callable[..., Actor], refuse: Refuse
) -> None:
    url = f"/users/{make_user('analyst').id}"
    first = client.patch(url, json={"first_name": "Once"}, headers=admin.headers)
    assert first.status_code == 200, first.text
    version = int(first.headers["ETag"].strip('"'))

    stale = refuse(
        lambda: client.patch(
            url,
            json={"first_name": "Twice"},
            headers={**admin.headers, "If-Match": f'"{version - 1}"'},
        ),
        412,
        "precondition.failed",
    )
    assert stale["current_version"] == version
    mismatch = refuse(
        lambda: client.patch(
            url,
            json={"first_name": "Twice", "expected_version": version + 5},
            headers=admin.headers,
        ),
        409,
        "concurrency.version_mismatch",
    )
    assert mismatch["current_version"] == version
    refuse(
        lambda: client.patch(
            url, json={"first_name": "Twice"}, headers={**admin.headers, "If-Match": "abc"}
        ),
        412,
        "precondition.invalid",
    )

    expected = client.patch(
        url, json={"first_name": "Twice", "expected_version": version}, headers=admin.headers
    )
    assert expected.status_code == 200, expected.text
    assert expected.headers["ETag"] == f'"{version + 1}"'
    matched = client.patch(
        url,
        json={"first_name": "Thrice"},
        headers={**admin.headers, "If-Match": f'"{version + 1}"'},
    )
    assert matched.status_code == 200, matched.text
    assert matched.json()["version"] == version + 2


RECORD_ROUTES = [r for r in ROUTES if issubclass(r.command, RecordCommand)]


@pytest.mark.parametrize(
    "route", RECORD_ROUTES, ids=[f"{r.method} {r.path}" for r in RECORD_ROUTES]
)
def test_record_command_refused_when_version_stale(
    client: TestClient, service: Service, rec: Records, refuse: Refuse, route: CommandRoute
) -> None:
    url, body = request_for(route, rec)
    actor = rec.allowed(route)
    current = _version(service, route, url)
    stale = current - 1 if current > 1 else current + 1
    in_body = refuse(
        lambda: send(client, route, url, body | {"expected_version": stale}, actor.headers),
        409,
        "concurrency.version_mismatch",
    )
    in_header = refuse(
        lambda: send(client, route, url, body, {**actor.headers, "If-Match": f'"{stale}"'}),
        412,
        "precondition.failed",
    )
    assert in_body["current_version"] == in_header["current_version"] == current


# --- time ----------------------------------------------------------------------------------------


def _later(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_command_refused_when_occurred_at_in_future(
    client: TestClient, rec: Records, refuse: Refuse, route: CommandRoute
) -> None:
    url, body = request_for(route, rec, occurred_at=_later(minutes=10))
    actor = rec.allowed(route)
    refuse(lambda: send(client, route, url, body, actor.headers), 409, "occurred_at.in_future")


@pytest.mark.parametrize(
    "moment", ["0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "2201-01-01T00:00:00Z"]
)
@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_command_refused_when_occurred_at_out_of_range(
    client: TestClient, rec: Records, refuse: Refuse, route: CommandRoute, moment: str
) -> None:
    url, body = request_for(route, rec, occurred_at=moment)
    actor = rec.allowed(route)
    refused = refuse(lambda: send(client, route, url, body, actor.headers), 422, "request.invalid")
    assert [e["field"] for e in refused["errors"]] == ["occurred_at"], refused


BEFORE_DETECTION = [
    r for r in ROUTES if {"incident", "escalation", "work_note"} & set(path_params(r))
] + [_route("POST", "/attachments")]


@pytest.mark.parametrize(
    "route", BEFORE_DETECTION, ids=[f"{r.method} {r.path}" for r in BEFORE_DETECTION]
)
def test_incident_step_refused_when_occurred_at_before_detection(
    client: TestClient, rec: Records, refuse: Refuse, route: CommandRoute
) -> None:
    before = (rec.detection_time - timedelta(minutes=1)).isoformat()
    url, body = request_for(route, rec, occurred_at=before)
    actor = rec.allowed(route)
    refuse(
        lambda: send(client, route, url, body, actor.headers),
        409,
        "occurred_at.before_detection",
    )


OPEN = _route("POST", "/incidents")


@pytest.mark.parametrize(
    ("times", "status", "code"),
    [
        ({"detection_time": _later(hours=1)}, 409, "detection_time.in_future"),
        (
            {"detection_time": _later(hours=-1), "occurred_at": _later(hours=-2)},
            409,
            "occurred_at.before_detection",
        ),
        ({"detection_time": "0001-01-01T00:00:00Z"}, 422, "request.invalid"),
        ({"detection_time": "2201-01-01T00:00:00Z"}, 422, "request.invalid"),
    ],
    ids=["detection-in-future", "occurred-before-detection", "year-1", "year-2201"],
)
def test_open_incident_refused_when_times_wrong(
    client: TestClient,
    rec: Records,
    refuse: Refuse,
    times: dict[str, str],
    status: int,
    code: str,
) -> None:
    assert issubclass(OPEN.command, OpenIncident)
    url, body = request_for(OPEN, rec, **times)
    actor = rec.allowed(OPEN)
    refused = refuse(lambda: send(client, OPEN, url, body, actor.headers), status, code)
    if status == 422:
        assert [e["field"] for e in refused["errors"]] == ["detection_time"], refused
