"""The service answers: health, OpenAPI docs, and authentication."""

from __future__ import annotations

from fastapi.testclient import TestClient

from projections.views import VIEWS


def test_health_reports_projection_lag(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["head"] > 0
    assert {lag["view"] for lag in body["projections"]} == {view.name for view in VIEWS}
    for view in body["projections"]:
        assert set(view) == {"view", "position", "head", "events_behind", "lag_ms", "error"}
        assert view["position"] <= view["head"] == body["head"]
        assert view["error"] is None


def test_docs_and_openapi_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert "/incidents/{incident}/acknowledge" in paths
    assert "/incidents/{incident}/timeline" in paths


def test_request_without_key_is_401(client: TestClient) -> None:
    response = client.get("/incidents")
    assert response.status_code == 401
    assert response.json()["code"] == "auth.missing_key"


def test_request_with_unknown_key_is_401(client: TestClient) -> None:
    response = client.get("/incidents", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.json()["code"] == "auth.invalid_key"
