"""Issue 10 item 8: the dashboard page (`GET /dashboard`). Without a browser: the page, its files
and their headers (a strict Content-Security-Policy, no key needed, nothing from elsewhere, no
markup built from data). In headless Chromium (marked `browser`, skipped when no Chromium is
installed): the page served by uvicorn on the session's service loads without console errors or
failed requests, asks for a key, then shows what the API answers for the same key — SLA clocks,
obligations, MTTA / MTTR by week and severity as a chart (one series per severity), and an
incident's timeline found by the search — and never requests anything outside its origin, even
when the data hold markup."""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from uuid import uuid4

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from api.app import create_app
from api.dashboard import ASSETS, STATIC
from api.service import Service
from tests.conftest import Actor

HOSTILE = '<img src="http://example.invalid/x.png"> <script>alert(1)</script> & "quotes"'
"""A title that would fetch from elsewhere (and run script) if the page parsed data as markup."""


def _chromium() -> str | None:
    for candidate in (
        os.environ.get("CHROMIUM"),
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


CHROMIUM = _chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium binary found (install Debian's `chromium`, or set CHROMIUM to one)",
)
"""Browser tests are skipped, with this reason, on a machine without Chromium."""


# --- without a browser ----------------------------------------------------------------------------


def test_page_served_without_key_with_strict_content_security_policy(client: TestClient) -> None:
    page = client.get("/dashboard")

    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    policy = dict(
        part.strip().split(" ", 1) for part in page.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["object-src"] == policy["base-uri"] == policy["form-action"] == "'none'"
    assert "unsafe" not in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    # No inline script or style: every script is a file of the app, no style attribute.
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", page.text, re.S)
    assert scripts == [""]
    assert 'src="/dashboard/dashboard.js"' in page.text
    assert "<style" not in page.text
    assert " style=" not in page.text


def test_page_files_served_from_the_app_and_nothing_else(client: TestClient) -> None:
    for name, media in ASSETS.items():
        answer = client.get(f"/dashboard/{name}")
        assert answer.status_code == 200, name
        assert answer.headers["content-type"] == media
        assert answer.headers["x-content-type-options"] == "nosniff"
    missing = client.get("/dashboard/secrets.txt")
    assert missing.status_code == 404
    assert missing.json()["code"] == "dashboard.not_found"
    assert client.get("/dashboard/..%2Fdashboard.py").status_code == 404


def test_dashboard_is_no_api_operation(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith("/dashboard")]


def test_page_files_name_no_other_origin_and_build_no_markup_from_text() -> None:
    texts = {p.name: p.read_text() for p in STATIC.iterdir()}
    assert set(texts) == {"dashboard.html", *ASSETS}
    for name, text in texts.items():
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.\w+[^\s\"')]*", text))
        assert urls <= {"http://www.w3.org/2000/svg"}, (name, urls)
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, (name, sink)
        assert "@import" not in text, name
        assert "@font-face" not in text, name


# --- in headless Chromium -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_url(service: Service) -> Iterator[str]:
    """The app on the session's service, served by uvicorn on a free port in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(service.settings, service=service), log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("no Chromium binary found")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


@dataclass
class Watched:
    """A page and what happened on it: console errors, uncaught errors, requests."""

    page: Any
    console: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def wait_ready(self) -> None:
        self.page.wait_for_selector("body[data-ready=true]", timeout=10_000)


@pytest.fixture
def watched(browser: Any, app_url: str) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    seen = Watched(page)
    page.on("console", lambda m: m.type == "error" and seen.console.append(m.text))
    page.on("pageerror", lambda e: seen.console.append(f"uncaught: {e}"))
    page.on("request", lambda r: seen.requests.append(r.url))
    page.on("requestfailed", lambda r: seen.failed.append(f"{r.url}: {r.failure}"))
    page.on("response", lambda r: r.status >= 400 and seen.failed.append(f"{r.url}: {r.status}"))
    yield seen
    context.close()
    outside = [url for url in seen.requests if not url.startswith(app_url + "/")]
    assert outside == [], "the page made requests outside the app's origin"


@dataclass(frozen=True)
class Data:
    analyst: Actor
    support: Actor
    major: dict[str, Any]
    """A P1 resolved three weeks ago (its timeline has several entries)."""
    hostile: dict[str, Any]


def _post(client: TestClient, actor: Actor, url: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.post(url, json=body, headers=actor.headers)
    assert answer.status_code in (200, 201), answer.text
    return dict(answer.json())


@pytest.fixture(scope="module")
def data(
    client: TestClient, service: Service, admin: Actor, make_user: Callable[..., Actor]
) -> Data:
    """A premium 24x7 client (agreement and CI from 60 days ago) and incidents on its CI over
    the last weeks, every severity, through the API: some acknowledged and resolved (MTTA and
    MTTR per week), one P1 unacknowledged for 3 h (breached), one P2 for 100 min (at risk:
    120 min target), a P1 with nobody to host a bridge and a resolved P1 without an RCA
    (obligations)."""
    now = datetime.now(UTC)
    setup = (now - timedelta(days=60)).isoformat()
    manager = make_user("incident_manager")
    customer = _post(
        client,
        admin,
        "/clients",
        {
            "client_name": "Dashboard client",
            "registration_number": uuid4().hex[:10],
            "company_type": "enterprise",
            "support_coverage": "24x7",
            "preferred_communication": "email",
            "occurred_at": setup,
        },
    )["id"]
    _post(
        client,
        admin,
        "/sla-agreements",
        {
            "client": customer,
            "tier": "premium",
            "support_coverage": "24x7",
            "effective_date": "2020-01-01",
            "occurred_at": setup,
        },
    )
    ci = _post(
        client,
        admin,
        "/configuration-items",
        {
            "ci_name": f"dashboard-ci-{uuid4().hex[:6]}",
            "ci_type": "service",
            "environment": "production",
            "responsible_owner": manager.id,
            "occurred_at": setup,
        },
    )["id"]
    _post(
        client,
        admin,
        f"/configuration-items/{ci}/clients",
        {"client": customer, "occurred_at": setup},
    )

    def incident(severity: str, ago: timedelta, title: str, **fields: Any) -> dict[str, Any]:
        detected = (now - ago).isoformat()
        body = {
            "title": title,
            "description": "for the dashboard",
            "category": "network",
            "impact": "high",
            "urgency": "high",
            "reported_by": manager.id,
            "assigned_to": manager.id,
            "detection_time": detected,
            "occurred_at": detected,
            "severity": severity,
            "configuration_items": [ci],
        }
        return _post(client, manager, "/incidents", body | fields)

    def handled(found: dict[str, Any], ack: int, resolve: int) -> None:
        detected = datetime.fromisoformat(found["detection_time"])
        url = f"/incidents/{found['id']}"
        at = (detected + timedelta(minutes=ack)).isoformat()
        _post(client, manager, f"{url}/acknowledge", {"occurred_at": at})
        at = (detected + timedelta(minutes=resolve)).isoformat()
        _post(client, manager, f"{url}/status", {"status": "resolved", "occurred_at": at})

    major = incident("P1", timedelta(days=20), "Core router down")
    handled(major, 45, 180)
    for severity, days, ack, resolve in (
        ("P2", 20, 20, 300),
        ("P2", 13, 30, 200),
        ("P3", 13, 120, 1440),
        ("P3", 6, 90, 600),
        ("P4", 6, 300, 2000),
    ):
        handled(incident(severity, timedelta(days=days), f"{severity} case"), ack, resolve)
    incident("P1", timedelta(hours=3), "Unowned outage", assigned_to=None)
    incident("P2", timedelta(minutes=100), "Slow checkout")
    hostile = incident("P4", timedelta(days=1), HOSTILE)
    service.project()
    return Data(make_user("analyst"), make_user("technical_support"), major, hostile)


def _sign_in(watched: Watched, app_url: str, key: str) -> None:
    page = watched.page
    page.goto(f"{app_url}/dashboard")
    page.fill("#key", key)
    page.click("#signin button[type=submit]")


def _key(actor: Actor) -> str:
    return actor.headers["Authorization"].removeprefix("Bearer ")


def _figure(page: Any, scope: str, name: str) -> str:
    return str(page.text_content(f"{scope} [data-figure={name}] .value")).strip()


def _number(value: float | None) -> str:
    """A figure as the page shows it (JavaScript's String(number))."""
    if value is None:
        return "—"
    return str(int(value)) if value == int(value) else repr(value)


@pytest.mark.browser
@needs_chromium
def test_page_shows_what_the_api_answers(
    watched: Watched, app_url: str, data: Data, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    page = watched.page
    page.goto(f"{app_url}/dashboard")
    assert page.is_visible("#signin")
    assert page.is_hidden("#board")
    loaded = {urlsplit(u).path for u in watched.requests}
    assert loaded - {"/dashboard/favicon.svg"} == {
        "/dashboard",
        "/dashboard/dashboard.css",
        "/dashboard/dashboard.js",
        "/dashboard/chart.js",
    }
    with (
        page.expect_response(lambda r: "/sla/breaches" in r.url) as sla_answer,
        page.expect_response(lambda r: "/metrics/mtta-mttr" in r.url) as metrics_answer,
    ):
        page.fill("#key", _key(data.analyst))
        page.click("#signin button[type=submit]")
    watched.wait_ready()
    assert page.evaluate("sessionStorage.getItem('incident-ledger.api-key')") == _key(data.analyst)
    assert "(analyst)" in str(page.text_content("#who"))
    api = httpx.Client(base_url=app_url, headers=data.analyst.headers, timeout=10)
    request.addfinalizer(api.close)

    # SLA clocks, measured by the API at the moment the page's answer was.
    shown_now = sla_answer.value.json()["now"]
    sla = api.get("/sla/breaches", params={"limit": 100, "now": shown_now}).json()
    summary = sla["summary"]
    assert summary["breached"] >= 1
    assert summary["at_risk"] >= 1
    for name, key in (("breached", "breached"), ("at-risk", "at_risk"), ("running", "running"),
                      ("met", "met")):  # fmt: skip
        assert _figure(page, "#sla-summary", name) == str(summary[key])
    rows = page.query_selector_all("#sla-table tbody tr[data-number]")
    assert [r.get_attribute("data-number") for r in rows] == [i["number"] for i in sla["items"]]

    # Obligations: the count and the first (oldest) one.
    owed = api.get("/obligations").json()["items"]
    assert page.text_content("#obligations-count") == f"{len(owed)} open"
    first = page.query_selector("#obligations-table tbody tr")
    assert first is not None
    assert (owed[0]["number"] or owed[0]["record_id"]) in str(first.text_content())
    kinds = {o["kind"] for o in owed}
    assert {"major_incident_without_bridge", "major_incident_without_rca"} <= kinds

    # MTTA / MTTR: the page's own query, asked again of the API.
    asked = dict(parse_qsl(urlsplit(metrics_answer.value.url).query))
    assert asked["detected_from"] <= (datetime.now(UTC) - timedelta(days=21)).date().isoformat()
    report = api.get(
        "/metrics/mtta-mttr",
        params={
            "group_by": ["week", "severity"],
            "detected_from": asked["detected_from"],
            "provenance": "false",
        },
    ).json()
    overall = report["overall"]
    assert overall["mtta"]["count"] >= 6
    assert _figure(page, "#overall", "mtta-mean") == _number(overall["mtta"]["mean"])
    assert _figure(page, "#overall", "mttr-mean") == _number(overall["mttr"]["mean"])
    assert _figure(page, "#overall", "incidents") == str(overall["incidents"])
    severities = sorted({g["key"]["severity"] for g in report["groups"]})
    assert severities == ["P1", "P2", "P3", "P4"]
    for metric in ("mtta", "mttr"):
        series = page.query_selector_all(f"#chart-{metric} svg g.series")
        assert [s.get_attribute("data-series") for s in series] == severities
        for s in series:
            severity = s.get_attribute("data-series")
            expected = sorted(
                g[metric]["mean"]
                for g in report["groups"]
                if g["key"]["severity"] == severity and g[metric]["mean"] is not None
            )
            points = [float(c.get_attribute("data-value")) for c in s.query_selector_all("circle")]
            assert sorted(points) == expected
    legend = page.query_selector_all("#chart-mtta .legend li")
    assert [li.text_content() for li in legend] == severities

    # The search opens an incident's timeline with its entries.
    page.fill("#incident", data.major["number"].lower())
    page.click("#search button[type=submit]")
    page.wait_for_selector("#timeline-table tbody tr")
    timeline = api.get(f"/incidents/{data.major['id']}/timeline").json()
    assert str(page.text_content("#timeline-incident")).startswith(data.major["number"])
    shown = page.query_selector_all("#timeline-table tbody tr")
    assert [r.get_attribute("data-position") for r in shown] == [
        str(e["position"]) for e in timeline["entries"]
    ]
    assert len(shown) >= 4  # opened, bridge, acknowledged, resolved, ...
    assert page.text_content("#timeline-count") == f"{len(timeline['entries'])} entries"
    assert "Incident.Acknowledged" in str(page.text_content("#timeline-table"))

    # An incident named in the SLA table opens its timeline too (a link, then the hash).
    first_link = page.query_selector("#sla-table a.incident-link")
    assert first_link is not None
    number = str(first_link.text_content())
    first_link.click()
    page.wait_for_function(
        "n => (document.querySelector('#timeline-incident') || {}).textContent?.startsWith(n)",
        arg=number,
    )

    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    if target := os.environ.get("DASHBOARD_SCREENSHOT"):
        shutil.copy(tmp_path / "dashboard.png", target)
    assert watched.console == []
    assert watched.failed == []


@pytest.mark.browser
@needs_chromium
def test_markup_in_data_shown_as_text_and_fetches_nothing(
    watched: Watched, app_url: str, data: Data
) -> None:
    page = watched.page
    _sign_in(watched, app_url, _key(data.analyst))
    watched.wait_ready()
    page.fill("#incident", data.hostile["id"])
    page.click("#search button[type=submit]")
    page.wait_for_selector("#timeline-table tbody tr")

    assert HOSTILE in str(page.text_content("#timeline-incident"))
    assert page.query_selector_all("#timeline img, #timeline script") == []
    assert not [u for u in watched.requests if "example.invalid" in u]
    assert watched.console == []
    assert watched.failed == []


@pytest.mark.browser
@needs_chromium
def test_refused_key_and_forbidden_role_shown_clearly(
    watched: Watched, app_url: str, data: Data
) -> None:
    page = watched.page
    _sign_in(watched, app_url, "not-a-key-" + uuid4().hex)
    page.wait_for_selector("#message:not([hidden])")

    assert "not accepted" in str(page.text_content("#message"))
    assert "auth.invalid_key" in str(page.text_content("#message"))
    assert page.is_hidden("#board")
    assert page.evaluate("sessionStorage.getItem('incident-ledger.api-key')") is None
    assert [f.rsplit(": ", 1)[1] for f in watched.failed] == ["401"]

    watched.failed.clear()
    page.fill("#key", _key(data.support))
    page.click("#signin button[type=submit]")
    watched.wait_ready()
    for section in ("#trend", "#sla", "#obligations"):
        error = str(page.text_content(f"{section} .error"))
        assert "may not read this" in error, section
        assert "403 role.forbidden" in error, section
    assert page.is_hidden("#message")
    assert {f.rsplit(": ", 1)[1] for f in watched.failed} == {"403"}
    # Chromium reports each refused fetch on the console; nothing else went wrong.
    assert all("status of 40" in line for line in watched.console), watched.console

    page.fill("#incident", "INC9999999")
    page.click("#search button[type=submit]")
    page.wait_for_selector("#timeline .error:not([hidden])")
    assert "No incident INC9999999" in str(page.text_content("#timeline .error"))
