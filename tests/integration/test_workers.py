"""`incident-ledger serve --workers 2` on a fresh data directory: two uvicorn worker processes on
one database (the parent's embedded server). Commands raced over both workers stay consistent,
a read through either worker sees every write (Ledger-Min-Position), and SIGTERM stops it all."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.integration.databases import ROOT, cli_env

ADMIN_KEY = "workers-admin-key-0123456789abcdef"
THREADS = 8
OWN_INCIDENTS = 2
"""Incidents each thread opens and acknowledges (besides acknowledging the shared one)."""


@dataclass
class Server:
    base: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    data_dir: Path

    def workers(self) -> list[psutil.Process]:
        """The processes listening on the port besides the parent (uvicorn's workers; not,
        say, multiprocessing's resource tracker)."""
        return [
            child
            for child in psutil.Process(self.proc.pid).children(recursive=True)
            if any(
                c.status == psutil.CONN_LISTEN and c.laddr.port == self.port
                for c in child.net_connections(kind="tcp")
            )
        ]

    def worker_of(self, response: httpx.Response) -> int | None:
        """The pid of the worker holding the (kept-alive) connection `response` came over."""
        stream = response.extensions["network_stream"]
        client_port = stream.get_extra_info("client_addr")[1]
        for worker in self.workers():
            for conn in worker.net_connections(kind="tcp"):
                if conn.laddr.port == self.port and conn.raddr and conn.raddr.port == client_port:
                    return int(worker.pid)
        return None


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    port = _free_port()
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "api.cli", "serve", "--workers", "2", "--port", str(port)]
    data_dir = tmp_path / "data"
    command += ["--data-dir", str(data_dir)]
    env = cli_env(INCIDENT_LEDGER_ADMIN_KEY=ADMIN_KEY)
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    running = Server(f"http://127.0.0.1:{port}", port, proc, log, data_dir)
    try:
        deadline = time.monotonic() + 60
        while log.read_text().count("Application startup complete") < 2:
            assert proc.poll() is None, f"serve exited ({proc.returncode}):\n{log.read_text()}"
            assert time.monotonic() < deadline, f"workers not ready:\n{log.read_text()}"
            time.sleep(0.1)
        assert httpx.get(f"{running.base}/health", timeout=5).status_code == 200
        yield running
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _clients_on_each_worker(server: Server, per_worker: int, key: str) -> list[httpx.Client]:
    """Kept-alive clients, `per_worker` on each of the two workers (the kernel hands each new
    connection to either worker)."""
    placed: dict[int, list[httpx.Client]] = {}
    spare: list[httpx.Client] = []
    headers = {"Authorization": f"Bearer {key}"}
    for _ in range(200):
        client = httpx.Client(base_url=server.base, headers=headers, timeout=20)
        pid = server.worker_of(client.get("/health"))
        assert pid is not None
        group = placed.setdefault(pid, [])
        (group if len(group) < per_worker else spare).append(client)
        if len(placed) == 2 and all(len(g) == per_worker for g in placed.values()):
            break
    for client in spare:
        client.close()
    assert sorted(len(g) for g in placed.values()) == [per_worker, per_worker], placed
    return [client for group in zip(*placed.values(), strict=True) for client in group]


def _incident(actor: str) -> dict[str, Any]:
    return {
        "title": "Checkout latency",
        "description": "p99 above 3s",
        "category": "software",
        "impact": "medium",
        "urgency": "medium",
        "reported_by": actor,
        "detection_time": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "severity": "P3",
        "assigned_to": actor,
    }


def test_two_workers_race_commands_consistently_and_stop_on_sigterm(server: Server) -> None:
    admin = httpx.Client(
        base_url=server.base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=20
    )
    user = admin.post(
        "/users",
        json={
            "first_name": "Ima",
            "last_name": "Manager",
            "email": "ima@example.test",
            "role": "incident_manager",
            "timezone": "UTC",
        },
    )
    assert user.status_code == 201, user.text
    manager = user.json()["id"]
    key = admin.post(f"/users/{manager}/api-keys", json={}).json()["key"]
    clients = _clients_on_each_worker(server, THREADS // 2, key)
    shared = clients[0].post("/incidents", json=_incident(manager))
    assert shared.status_code == 201, shared.text
    shared_id = shared.json()["id"]

    answers: list[tuple[str, str, httpx.Response]] = []  # (kind, incident id, response)
    lock = threading.Lock()
    barrier = threading.Barrier(THREADS)

    def race(client: httpx.Client) -> None:
        barrier.wait()
        mine = [("ack-shared", shared_id, client.post(f"/incidents/{shared_id}/acknowledge"))]
        for _ in range(OWN_INCIDENTS):
            opened = client.post("/incidents", json=_incident(manager))
            assert opened.status_code == 201, opened.text
            own = opened.json()["id"]
            acked = client.post(f"/incidents/{own}/acknowledge")
            mine += [("open", own, opened), ("ack", own, acked)]
        with lock:
            answers.extend(mine)

    threads = [threading.Thread(target=race, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(answers) == THREADS * (1 + 2 * OWN_INCIDENTS), "a thread failed"

    # Exactly one acknowledgment of the shared incident wins; the others are refused as such.
    shared_acks = [r for kind, _, r in answers if kind == "ack-shared"]
    assert sorted(r.status_code for r in shared_acks) == [200] + [409] * (THREADS - 1)
    for refused in (r for r in shared_acks if r.status_code == 409):
        code = refused.json()["code"]
        assert code == "incident.already_acknowledged" or code.startswith("concurrency."), code
    # Every own acknowledgment succeeds; numbers unique and gapless (the shared one is first).
    own_acks = [r for kind, _, r in answers if kind == "ack"]
    assert all(r.status_code == 200 for r in own_acks), [r.text for r in own_acks]
    opened = [shared] + [r for kind, _, r in answers if kind == "open"]
    numbers = sorted(int(r.json()["number"].removeprefix("INC")) for r in opened)
    assert numbers == list(range(1, len(opened) + 1))
    # Versions gapless: opened at 1, acknowledged at 2, and nothing else recorded.
    assert {r.json()["version"] for r in opened} == {1}
    assert {r.json()["version"] for r in [*own_acks, *shared_acks] if r.status_code == 200} == {2}
    positions = [int(r.headers["Ledger-Position"]) for _, _, r in answers if r.is_success]
    assert len(set(positions)) == len(positions)

    # A read through either worker sees every write at the position it names.
    readers = clients[:2]
    assert {server.worker_of(r.get("/health")) for r in readers} == {
        w.pid for w in server.workers()
    }
    writes = [(incident, r) for kind, incident, r in answers if r.is_success and kind != "open"]
    for incident, written in writes:
        wanted = {"Ledger-Min-Position": written.headers["Ledger-Position"]}
        for reader in readers:
            state = reader.get(f"/incidents/{incident}").json()
            assert (state["version"], state["acknowledged_at"] is not None) == (2, True)
            timeline = reader.get(f"/incidents/{incident}/timeline", headers=wanted)
            assert timeline.status_code == 200, timeline.text
            events = [e["event_type"] for e in timeline.json()["entries"]]
            assert events.count("Incident.Acknowledged") == 1, events
            listed = reader.get("/incidents", params={"number": state["number"]}, headers=wanted)
            assert listed.status_code == 200, listed.text
            assert listed.json()["items"][0]["acknowledged_at"] is not None

    for client in [admin, *clients]:
        client.close()
    workers = server.workers()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=10) == 0, server.log.read_text()
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
    assert ADMIN_KEY not in server.log.read_text()
    assert not (server.data_dir / "pgdata" / "postmaster.pid").exists()  # the parent stopped it
