"""The FastAPI application: built from settings, with the service started in its lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI

from api import errors
from api.analytics import router as analytics_router
from api.audit import router as audit_router
from api.compliance import router as compliance_router
from api.dashboard import router as dashboard_router
from api.deps import storable_parameters
from api.incident_reads import router as incident_router
from api.limits import BodyLimit
from api.queries import router as query_router
from api.records import records_router
from api.routes import command_router
from api.service import Service
from api.settings import Settings
from api.throttle import AuthThrottle
from api.user_reads import router as user_router

log = logging.getLogger("incident_ledger.api")


def start_service(settings: Settings, *, projector: bool | None = None) -> Service:
    """Start the service and make sure the first administrator exists. A generated key is
    printed once; a key chosen through INCIDENT_LEDGER_ADMIN_KEY is never printed. `projector`:
    whether to run the projector thread (default: unless the settings say off)."""
    service = Service.start(settings, projector=projector)
    try:
        admin_id, key = service.bootstrap_admin()
    except BaseException:
        service.close()
        raise
    if key is not None and settings.admin_key is None:
        print(  # noqa: T201 - shown once, on purpose, to whoever started the service
            f"\nFirst administrator created (user {admin_id}).\n"
            f"API key (shown once, stored hashed): {key}\n",
            flush=True,
        )
    elif key is not None:
        print(  # noqa: T201
            f"First administrator {admin_id} can use the key set in INCIDENT_LEDGER_ADMIN_KEY.",
            flush=True,
        )
    return service


def start_worker_service(settings: Settings) -> Service:
    """The service of one worker of `serve --workers N`: the parent process has migrated the
    schema, created the first administrator, owns the embedded server and runs the projector."""
    return Service.start(settings, projector=False, migrated=True)


def worker_app() -> FastAPI:
    """uvicorn's app factory in each worker of `incident-ledger serve --workers N`: the settings
    come from the environment the parent prepared (DATABASE_URL naming its database)."""
    return warm_routes(create_app(Settings(), start=start_worker_service))


def warm_routes(app: FastAPI) -> FastAPI:
    """Build every route's request handling now. FastAPI builds an included router's routes
    on the first request that reaches it, in the event loop (about half a second here): `serve`
    pays that before it listens, not the first requests."""
    routers: list[Any] = list(app.router.routes)
    while routers:
        build = getattr(routers.pop(), "effective_candidates", None)  # FastAPI's included router
        if callable(build):
            routers.extend(build())
    return app


def create_app(
    settings: Settings | None = None,
    service: Service | None = None,
    *,
    close_service: bool = False,
    start: Callable[[Settings], Service] = start_service,
) -> FastAPI:
    """Build the app; with no `service`, one is started by `start` (and closed) in the
    lifespan. A given service is closed at shutdown only with `close_service`."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        running = service or start(settings)
        app.state.service = running
        try:
            yield
        finally:
            if service is None or close_service:
                running.close()

    app = FastAPI(
        title="incident-ledger",
        version="0.1.0",
        description="Event-sourced incident ledger: every SOP action is a validated command; "
        "every accepted command becomes immutable events. Authenticate with "
        "`Authorization: Bearer <api key>`. Errors are JSON `{code, message}`.",
        lifespan=lifespan,
        dependencies=[Depends(storable_parameters)],
    )
    if service is not None:
        app.state.service = service
    app.state.throttle = AuthThrottle(settings.auth_failure_limit, settings.auth_failure_window)
    errors.install(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.include_router(query_router)
    app.include_router(analytics_router)
    app.include_router(user_router)
    app.include_router(incident_router)
    app.include_router(records_router())
    app.include_router(audit_router)
    app.include_router(compliance_router)
    app.include_router(dashboard_router)
    app.include_router(command_router())
    return app
