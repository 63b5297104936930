"""The projector runs off the request path: a view that fails on an event (a poison event) takes
nothing down — commands still answer, the other views go on, /health names the view and the
event, the view retries, and a restarted service starts and resumes. Also the separate
`incident-ledger projector` process, for when the API runs without its projector thread."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.service import Service
from api.settings import Settings
from projections.views import TimelineView
from tests.conftest import Actor

WORKTREE = Path(__file__).resolve().parents[2]


def _note(text: str) -> dict[str, str]:
    return {"note_type": "troubleshooting", "note_text": text}


def _until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll `check` until it returns something truthy (the views catch up in the background)."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return found


def _view(health: dict[str, Any], name: str) -> dict[str, Any]:
    return next(v for v in health["projections"] if v["view"] == name)


def _degraded(client: TestClient) -> dict[str, Any] | None:
    health: dict[str, Any] = client.get("/health").json()
    return health if health["status"] == "degraded" else None


@dataclass
class Poison:
    marker: str
    active: bool = True


@pytest.fixture
def poison(monkeypatch: pytest.MonkeyPatch, service: Service) -> Iterator[Poison]:
    """A work note text the timeline view fails on, as a bug in its fold would, in every service
    of this process until `active` is cleared (the fix). The session's projector retries every
    0.3 s meanwhile, and is healthy again afterwards."""
    poison = Poison(f"poison-{uuid4()}")
    fold = TimelineView.fold

    def failing(self: TimelineView, event: Any, notification_id: int) -> Any:
        if poison.active and getattr(event, "note_text", None) == poison.marker:
            raise ValueError(f"cannot fold {poison.marker}")
        return fold(self, event, notification_id)

    monkeypatch.setattr(TimelineView, "fold", failing)
    monkeypatch.setattr(service.projections, "retry_seconds", 0.3)
    yield poison
    poison.active = False
    service.projections.forget_failure("timeline")
    _until(lambda: service.health()["status"] == "ok")


@pytest.fixture
def without_session_projector(service: Service) -> Iterator[None]:
    """Stop the session service's projector thread, to see what another one does alone."""
    assert service.projector is not None
    service.stop_projector()
    try:
        yield
    finally:
        service.start_projector()


def test_failing_view_stops_before_poison_event_while_commands_and_other_views_go_on(
    client: TestClient,
    manager: Actor,
    open_incident: Callable[..., dict[str, Any]],
    poison: Poison,
) -> None:
    number = open_incident()["number"]
    notes = f"/incidents/{number}/work-notes"
    good = client.post(notes, json=_note("fine"), headers=manager.headers)
    bad = client.post(notes, json=_note(poison.marker), headers=manager.headers)
    acked = client.post(f"/incidents/{number}/acknowledge", headers=manager.headers)

    # the commands committed, so they answer their outcome whatever the views do
    assert (good.status_code, bad.status_code, acked.status_code) == (201, 201, 200)
    health = _until(lambda: _degraded(client))
    timeline = _view(health, "timeline")
    assert good.json()["position"] <= timeline["position"] < bad.json()["position"]
    assert timeline["events_behind"] >= 2
    assert timeline["lag_ms"] > 0
    error = timeline["error"]
    assert error["view"] == "timeline"
    assert error["position"] == bad.json()["position"]
    assert error["topic"].endswith("WorkNote.Added")
    assert (error["originator_id"], error["originator_version"]) == (bad.json()["id"], 1)
    assert poison.marker in error["reason"]
    assert error["failed_at"]
    # the other view went on past the poison event
    assert _view(health, "current_state")["error"] is None
    listed = client.get("/incidents", params={"number": number}, headers=manager.headers)
    assert listed.status_code == 200, listed.text
    assert listed.json()["items"][0]["acknowledged_at"] is not None
    # a read that needs the failed view says so at once; one it has reached is served
    refused = client.get(f"/incidents/{number}/timeline", headers=manager.headers)
    assert refused.status_code == 503, refused.text
    assert refused.json()["code"] == "view.failed"
    assert refused.json()["error"]["position"] == bad.json()["position"]
    served = client.get(
        f"/incidents/{number}/timeline",
        params={"min_position": good.json()["position"]},
        headers=manager.headers,
    )
    assert served.status_code == 200, served.text
    assert served.json()["entries"][-1]["position"] == good.json()["position"]

    poison.active = False  # the fix: the next retry (0.3 s here) gets past the event

    _until(lambda: client.get("/health").json()["status"] == "ok")
    resumed = client.get(f"/incidents/{number}/timeline", headers=manager.headers)
    assert resumed.status_code == 200, resumed.text
    assert [e["event_type"] for e in resumed.json()["entries"]][-3:] == [
        "WorkNote.Added",
        "WorkNote.Added",
        "Incident.Acknowledged",
    ]


@pytest.mark.usefixtures("without_session_projector")
def test_restart_starts_with_failed_view_and_resumes_once_fixed(
    client: TestClient,
    settings: Settings,
    manager: Actor,
    open_incident: Callable[..., dict[str, Any]],
    poison: Poison,
) -> None:
    number = open_incident()["number"]
    bad = client.post(
        f"/incidents/{number}/work-notes", json=_note(poison.marker), headers=manager.headers
    )

    started = time.monotonic()
    second = Service.start(settings)  # its projector thread meets the poison event
    try:
        assert time.monotonic() - started < 10  # start-up never waits for the views
        with TestClient(create_app(settings, service=second)) as restarted:
            health = _until(lambda: _degraded(restarted))
            assert _view(health, "timeline")["error"]["position"] == bad.json()["position"]
            later = restarted.post(
                f"/incidents/{number}/work-notes", json=_note("still recording"),
                headers=manager.headers,
            )  # fmt: skip
            assert later.status_code == 201, later.text
    finally:
        second.close()

    poison.active = False  # fixed and restarted: the view resumes where it stopped
    third = Service.start(settings)
    try:
        with TestClient(create_app(settings, service=third)) as restarted:
            timeline = restarted.get(
                f"/incidents/{number}/timeline",
                headers={
                    **manager.headers,
                    "Ledger-Min-Position": later.headers["Ledger-Position"],
                },
            )
            assert timeline.status_code == 200, timeline.text
            notes = [e["changes"]["note_text"][1] for e in timeline.json()["entries"][-2:]]
            assert notes == [poison.marker, "still recording"]
            assert restarted.get("/health").json()["status"] == "ok"
    finally:
        third.close()


@pytest.mark.usefixtures("without_session_projector")
def test_projector_process_keeps_views_current_when_api_runs_without_thread(
    client: TestClient,
    data_dir: Path,
    manager: Actor,
    open_incident: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    log = tmp_path / "projector.log"
    env = {**os.environ, "PYTHONPATH": str(WORKTREE)}
    command = [sys.executable, "-m", "api.cli", "projector", "--data-dir", str(data_dir)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=WORKTREE, env=env, stdout=out, stderr=out)
    try:
        _until(lambda: b"projector running" in log.read_bytes() or process.poll() is not None, 60)
        assert process.poll() is None, log.read_text()
        number = open_incident()["number"]
        note = client.post(
            f"/incidents/{number}/work-notes", json=_note("by the worker"), headers=manager.headers
        )

        timeline = client.get(f"/incidents/{number}/timeline", headers=manager.headers)

        assert timeline.status_code == 200, timeline.text
        assert timeline.json()["entries"][-1]["position"] == note.json()["position"]
        assert int(timeline.headers["Ledger-View-Position"]) >= note.json()["position"]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0, log.read_text()
