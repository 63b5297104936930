"""SPEC 5: the OpenAPI document promises every refusal a route can give, as `ErrorBody`
(`code`, `message`), and the refusals the API really sends match that documented schema."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.routes import ROUTES
from tests.conftest import Actor, Refuse

ERROR_BODY = "#/components/schemas/ErrorBody"
COMMANDS = {(route.method.lower(), route.path) for route in ROUTES}
PUBLIC = {("get", "/health")}
"""Read operations anyone may call (no key, no parameters): they document no refusal."""


@pytest.fixture(scope="module")
def spec(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    }


def _schema_ref(response: dict[str, Any]) -> str | None:
    ref = response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
    return str(ref) if ref else None


def _undocumented(operation: dict[str, Any], statuses: tuple[str, ...]) -> list[str]:
    responses = operation["responses"]
    return [s for s in statuses if s not in responses or _schema_ref(responses[s]) != ERROR_BODY]


def test_openapi_documents_every_refusal_of_every_command(spec: dict[str, Any]) -> None:
    operations = _operations(spec)
    assert set(operations) >= COMMANDS, COMMANDS - set(operations)
    missing = {
        f"{method.upper()} {path}": gaps
        for method, path in sorted(COMMANDS)
        if (
            gaps := _undocumented(
                operations[method, path], ("401", "403", "404", "409", "412", "422")
            )
        )
    }
    assert missing == {}


def test_openapi_documents_refusals_of_every_read(spec: dict[str, Any]) -> None:
    reads = set(_operations(spec)) - COMMANDS - PUBLIC
    assert ("get", "/incidents/{incident}") in reads
    missing = {
        f"{method.upper()} {path}": gaps
        for method, path in sorted(reads)
        if (
            gaps := _undocumented(
                _operations(spec)[method, path],
                ("401", "404", "422") if "{" in path else ("401", "422"),  # 404: a named record
            )
        )
    }
    assert missing == {}


def test_openapi_error_body_requires_code_and_message(spec: dict[str, Any]) -> None:
    schema = spec["components"]["schemas"]["ErrorBody"]
    assert set(schema["required"]) == {"code", "message"}
    assert schema["properties"]["code"]["type"] == schema["properties"]["message"]["type"]
    assert schema["properties"]["code"]["type"] == "string"


def _conforms(value: Any, schema: dict[str, Any], spec: dict[str, Any], at: str = "$") -> list[str]:
    """Where `value` breaks the JSON schema (the subset OpenAPI documents here use)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _conforms(value, spec["components"]["schemas"][name], spec, at)
    if "anyOf" in schema:
        branches = [_conforms(value, branch, spec, at) for branch in schema["anyOf"]]
        return [] if any(not b for b in branches) else [f"{at}: matches no branch"]
    kinds = {
        "string": str,
        "integer": int,
        "number": (int, float),
        "boolean": bool,
        "object": dict,
        "array": list,
        "null": type(None),
    }
    kind = schema.get("type")
    if kind is not None and (
        not isinstance(value, kinds[kind])
        or (kind in ("integer", "number") and isinstance(value, bool))
    ):
        return [f"{at}: {value!r} is not {kind}"]
    problems: list[str] = []
    if isinstance(value, dict):
        problems += [f"{at}.{k}: missing" for k in schema.get("required", ()) if k not in value]
        for key, item in value.items():
            if key in schema.get("properties", {}):
                problems += _conforms(item, schema["properties"][key], spec, f"{at}.{key}")
            elif schema.get("additionalProperties") is False:
                problems.append(f"{at}.{key}: not allowed")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += _conforms(item, schema["items"], spec, f"{at}[{i}]")
    return problems


def test_refusals_match_documented_error_body(
    client: TestClient,
    spec: dict[str, Any],
    admin: Actor,
    manager: Actor,
    make_user: Callable[..., Actor],
    open_incident: Callable[..., dict[str, Any]],
    refuse: Refuse,
) -> None:
    number = open_incident()["number"]
    auditor = make_user("auditor")
    ack = f"/incidents/{number}/acknowledge"
    refusals = [
        refuse(lambda: client.post(ack), 401, "auth.missing_key"),
        refuse(lambda: client.post(ack, headers=auditor.headers), 403, "role.forbidden"),
        refuse(
            lambda: client.post("/incidents/INC9999999/acknowledge", headers=manager.headers),
            404,
            "incident.not_found",
        ),
        refuse(
            lambda: client.post(f"/users/{admin.id}/deactivate", headers=admin.headers),
            409,
            "user.cannot_deactivate_self",
        ),
        refuse(
            lambda: client.post(ack, json={"expected_version": 7}, headers=manager.headers),
            409,
            "concurrency.version_mismatch",
        ),
        refuse(
            lambda: client.post(ack, headers={**manager.headers, "If-Match": '"7"'}),
            412,
            "precondition.failed",
        ),
        refuse(
            lambda: client.post(ack, json={"on_fire": True}, headers=manager.headers),
            422,
            "request.invalid",
        ),
        refuse(
            lambda: client.get("/incidents", params={"limit": 0}, headers=manager.headers),
            422,
            "request.invalid",
        ),
    ]
    schema = {"$ref": ERROR_BODY}
    assert {body["code"]: _conforms(body, schema, spec) for body in refusals} == {
        body["code"]: [] for body in refusals
    }
    assert refusals[4]["current_version"] == refusals[5]["current_version"] == 1
    assert refusals[6]["errors"][0]["field"] == "on_fire"
