"""SPEC 3 and 5, route by route from `api.routes.ROUTES`: every command route refuses anonymous
and unknown callers (401), the roles its command does not allow (403), unknown fields, wrong JSON
types, text PostgreSQL cannot store and over-long text (422) — and a refusal appends nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.routes import ROUTES, CommandRoute
from domain.base import Role
from tests.conftest import Actor, Refuse
from tests.integration.route_matrix import (
    ROUTE_IDS,
    Leaf,
    Records,
    json_with_escape,
    leaves,
    make_records,
    request_for,
    send,
    send_raw,
    with_value,
)


@pytest.fixture(scope="module")
def rec(client: TestClient, make_user: Callable[..., Actor], admin: Actor) -> Records:
    return make_records(client, make_user, admin)


def _fields(body: dict[str, Any]) -> list[str | None]:
    return [error["field"] for error in body["errors"]]


def _cases(
    make: Callable[[CommandRoute, Leaf], list[tuple[Any, str]]],
) -> tuple[list[tuple[CommandRoute, str, Any]], list[str]]:
    """(route, field, value) for each leaf of each route's body, with readable ids."""
    cases, ids = [], []
    for route, route_id in zip(ROUTES, ROUTE_IDS, strict=True):
        for leaf in leaves(route):
            for value, label in make(route, leaf):
                cases.append((route, leaf.field, value))
                ids.append(f"{route_id} {leaf.field}={label}")
    return cases, ids


# --- authentication ------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_command_refused_when_key_missing_or_unknown(
    client: TestClient, rec: Records, refuse: Refuse, route: CommandRoute
) -> None:
    url, body = request_for(route, rec)
    refuse(lambda: send(client, route, url, body), 401, "auth.missing_key")
    bogus = {"Authorization": "Bearer il_not-a-key-anyone-was-given-0000"}
    refuse(lambda: send(client, route, url, body, bogus), 401, "auth.invalid_key")


# --- roles ---------------------------------------------------------------------------------------

FORBIDDEN = [(route, role) for route in ROUTES for role in Role if role not in route.command.roles]


@pytest.mark.parametrize(
    ("route", "role"),
    FORBIDDEN,
    ids=[f"{route.method} {route.path} as {role.value}" for route, role in FORBIDDEN],
)
def test_command_refused_when_role_not_allowed(
    client: TestClient, rec: Records, refuse: Refuse, route: CommandRoute, role: Role
) -> None:
    url, body = request_for(route, rec)
    actor = rec.actors[role]
    refused = refuse(lambda: send(client, route, url, body, actor.headers), 403, "role.forbidden")
    assert role.value in refused["message"]


# --- malformed input -----------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_command_refused_when_body_has_unknown_field(
    client: TestClient, rec: Records, refuse: Refuse, route: CommandRoute
) -> None:
    url, body = request_for(route, rec, on_fire=True)
    actor = rec.allowed(route)
    refused = refuse(lambda: send(client, route, url, body, actor.headers), 422, "request.invalid")
    assert _fields(refused) == ["on_fire"], refused
    assert "on_fire" in refused["message"]


def _wrong_types(_: CommandRoute, leaf: Leaf) -> list[tuple[Any, str]]:
    if leaf.type == "integer":
        return [("5", "str")]
    if leaf.type == "boolean":
        return [("yes", "str"), (1, "int")]
    if leaf.format == "date-time":
        return [(1700000000, "int"), (True, "bool")]
    return [(5, "int"), (True, "bool")]


WRONG_TYPES, WRONG_TYPE_IDS = _cases(_wrong_types)


@pytest.mark.parametrize(("route", "field", "value"), WRONG_TYPES, ids=WRONG_TYPE_IDS)
def test_command_refused_when_field_has_wrong_json_type(
    client: TestClient,
    rec: Records,
    refuse: Refuse,
    route: CommandRoute,
    field: str,
    value: Any,
) -> None:
    # strict JSON: "5" is not 5, "yes" and 1 are not true, 5 is not "5", a number is not a time
    url, body = request_for(route, rec)
    actor = rec.allowed(route)
    refused = refuse(
        lambda: send(client, route, url, with_value(body, field, value), actor.headers),
        422,
        "request.invalid",
    )
    assert _fields(refused) == [field], refused


def _unstorable(_: CommandRoute, leaf: Leaf) -> list[tuple[Any, str]]:
    if leaf.type != "string":
        return []
    controls = [("ok\u001bhidden", "ESC"), ("ok\u007fhidden", "DEL")] if leaf.free_text else []
    return [("ok\u0000hidden", "NUL"), *controls]


UNSTORABLE, UNSTORABLE_IDS = _cases(_unstorable)


@pytest.mark.parametrize(("route", "field", "value"), UNSTORABLE, ids=UNSTORABLE_IDS)
def test_command_refused_when_text_has_control_character(
    client: TestClient,
    rec: Records,
    refuse: Refuse,
    route: CommandRoute,
    field: str,
    value: str,
) -> None:
    # PostgreSQL text cannot hold NUL: an event carrying one would commit and then break views
    url, body = request_for(route, rec)
    actor = rec.allowed(route)
    refused = refuse(
        lambda: send(client, route, url, with_value(body, field, value), actor.headers),
        422,
        "request.invalid",
    )
    assert _fields(refused) == [field], refused


SURROGATE, SURROGATE_IDS = _cases(
    lambda _, leaf: [(None, "lone-surrogate")] if leaf.type == "string" else []
)


@pytest.mark.parametrize(("route", "field", "_value"), SURROGATE, ids=SURROGATE_IDS)
def test_command_refused_when_text_has_lone_surrogate(
    client: TestClient,
    rec: Records,
    refuse: Refuse,
    route: CommandRoute,
    field: str,
    _value: None,
) -> None:
    url, body = request_for(route, rec)
    actor = rec.allowed(route)
    raw = json_with_escape(body, field, "\\ud800")
    refused = refuse(
        lambda: send_raw(client, route, url, raw, actor.headers), 422, "request.invalid"
    )
    assert _fields(refused) == [field], refused


def _too_long(_: CommandRoute, leaf: Leaf) -> list[tuple[Any, str]]:
    if leaf.max_length is None:
        return []
    return [("x" * (leaf.max_length + 1), f"{leaf.max_length + 1}-chars")]


TOO_LONG, TOO_LONG_IDS = _cases(_too_long)


@pytest.mark.parametrize(("route", "field", "value"), TOO_LONG, ids=TOO_LONG_IDS)
def test_command_refused_when_text_longer_than_documented(
    client: TestClient,
    rec: Records,
    refuse: Refuse,
    route: CommandRoute,
    field: str,
    value: str,
) -> None:
    url, body = request_for(route, rec)
    actor = rec.allowed(route)
    refused = refuse(
        lambda: send(client, route, url, with_value(body, field, value), actor.headers),
        422,
        "request.invalid",
    )
    assert _fields(refused) == [field], refused
    assert refused["errors"][0]["type"] in ("string_too_long", "too_long"), refused  # str, secret


def test_service_answers_after_unstorable_text_refused(
    client: TestClient, rec: Records, refuse: Refuse
) -> None:
    route = next(r for r in ROUTES if r.path == "/incidents/{incident}/work-notes")
    url, body = request_for(route, rec)
    actor = rec.allowed(route)
    refuse(
        lambda: send(client, route, url, body | {"note_text": "a\u0000b"}, actor.headers),
        422,
        "request.invalid",
    )
    raw = json_with_escape(body, "note_text", "\\udfff")
    refuse(lambda: send_raw(client, route, url, raw, actor.headers), 422, "request.invalid")

    health = client.get("/health")
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "ok"
    added = send(client, route, url, body, actor.headers)
    assert added.status_code == 201, added.text
    timeline = client.get(f"/incidents/{rec.incident}/timeline", headers=actor.headers)
    assert timeline.status_code == 200, timeline.text
    assert added.json()["id"] in {e["record_id"] for e in timeline.json()["entries"]}
