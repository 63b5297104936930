"""The analysts' and auditors' dashboard (issue 10): one read-only page served by the API, with
its script, style sheet and icon, all from this package (no CDN, no web font, no network beyond
this origin). The page needs no key; it asks for one, keeps it in the tab's sessionStorage and
sends it as `Authorization: Bearer` on the API reads it makes (`/me`, `/metrics/mtta-mttr`,
`/sla/breaches`, `/obligations`, `/incidents/{id}` and its timeline). Not API operations, so
not in the OpenAPI document.

A strict Content-Security-Policy: scripts, styles, images and fetches from this origin only,
no inline script or style, no plugins, no framing, no form submissions (the forms are handled
by the script, so a key never lands in a URL)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Response

from domain.errors import NotFound

STATIC = Path(__file__).parent / "static"
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "font-src 'none'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-cache",
}
ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "chart.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
"""The files the page loads, by name, with their media types; nothing else is served."""

router = APIRouter(include_in_schema=False)


def _read(name: str) -> bytes:
    return (STATIC / name).read_bytes()


PAGE = _read("dashboard.html")
FILES = {name: _read(name) for name in ASSETS}


@router.get("/dashboard")
def dashboard() -> Response:
    """The page itself: static HTML, no data and no key needed."""
    return Response(PAGE, media_type="text/html; charset=utf-8", headers=HEADERS)


@router.get("/dashboard/{name}")
def dashboard_asset(name: str) -> Response:
    """The page's script, style sheet and icon."""
    if name not in FILES:
        raise NotFound("dashboard.not_found", f"No dashboard file {name!r}.")
    return Response(FILES[name], media_type=ASSETS[name], headers=HEADERS)
