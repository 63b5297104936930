"""`incident-ledger serve` with its default projector: a child process (its own interpreter, so
projecting never waits on requests). The views follow the commands, a killed projector is
started again, and SIGTERM stops the server and its projector."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import httpx
import psutil
import pytest

from tests.integration.databases import ROOT, cli_env, stop_server
from tests.integration.test_workers import _free_port

ADMIN_KEY = "projector-process-admin-key-0123456789"
Served = tuple[subprocess.Popen[bytes], str, Path, set[int]]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Served]:
    port = _free_port()
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "api.cli", "serve", "--port", str(port)]
    command += ["--data-dir", str(tmp_path / "data")]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=cli_env(INCIDENT_LEDGER_ADMIN_KEY=ADMIN_KEY),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    seen: set[int] = set()  # every projector child, to clean up whatever happens
    try:
        deadline = time.monotonic() + 60
        while "Application startup complete" not in log.read_text():
            assert proc.poll() is None, f"serve exited ({proc.returncode}):\n{log.read_text()}"
            assert time.monotonic() < deadline, f"serve not ready:\n{log.read_text()}"
            time.sleep(0.1)
        yield proc, base, log, seen
    finally:
        with suppress(psutil.Error):
            seen |= {p.pid for p in _projectors(proc)}
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in seen:
            with suppress(psutil.Error):
                psutil.Process(pid).kill()
        pgdata = tmp_path / "data" / "pgdata"
        if (pgdata / "postmaster.pid").exists():  # serve was killed: its server lives on
            with suppress(Exception):
                stop_server(pgdata, mode="immediate")


def _projectors(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """The server's live projector children."""
    found = []
    for child in psutil.Process(proc.pid).children(recursive=True):
        try:
            if child.cmdline()[-2:] == ["projector", "--migrated"]:
                found.append(child)
        except psutil.Error:  # gone, or a zombie not yet reaped
            continue
    return found


def _register_and_read(client: httpx.Client, name: str) -> None:
    """A command, then a read of the view at the command's position (Ledger-Min-Position): no
    projector thread runs in the server, so only the child can have projected it."""
    created = client.post(
        "/users",
        json={
            "first_name": name,
            "last_name": "Projected",
            "email": f"{name.lower()}@example.test",
            "role": "auditor",
            "timezone": "UTC",
        },
    )
    assert created.status_code == 201, created.text
    wanted = {"Ledger-Min-Position": created.headers["Ledger-Position"]}
    deadline = time.monotonic() + 60  # a restarted projector first imports and connects
    while True:
        listed = client.get(
            "/users", params={"email": f"{name.lower()}@example.test"}, headers=wanted
        )
        if listed.status_code != 503 or time.monotonic() > deadline:
            break
        assert listed.json()["code"] == "view.behind", listed.text
    assert listed.status_code == 200, listed.text
    assert [u["first_name"] for u in listed.json()["items"]] == [name]


def test_serve_projects_in_a_child_process_restarts_it_and_stops_it(serve: Served) -> None:
    proc, base, log, seen = serve
    client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    (projector,) = _projectors(proc)
    seen.add(projector.pid)
    _register_and_read(client, "Ada")

    projector.kill()
    deadline = time.monotonic() + 20
    while not [p for p in _projectors(proc) if p.pid != projector.pid]:
        assert time.monotonic() < deadline, f"projector not restarted:\n{log.read_text()}"
        time.sleep(0.1)
    _register_and_read(client, "Grace")
    assert "projector process exited" in log.read_text()

    (restarted,) = _projectors(proc)
    seen.add(restarted.pid)
    client.close()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) in (0, -signal.SIGTERM), log.read_text()  # uvicorn re-raises
    assert not restarted.is_running() or restarted.status() == psutil.STATUS_ZOMBIE


def test_the_projector_stops_by_itself_when_serve_dies(serve: Served) -> None:
    proc, _base, log, seen = serve
    (projector,) = _projectors(proc)
    seen.add(projector.pid)
    proc.kill()  # no shutdown: the child is on its own
    proc.wait()
    try:
        projector.wait(timeout=20)
    except psutil.TimeoutExpired:
        pytest.fail(f"the projector outlived serve:\n{log.read_text()}")
