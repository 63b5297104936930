"""The FastAPI application: built from settings, with the service started in its lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import errors
from api.limits import BodyLimit
from api.queries import router as query_router
from api.routes import command_router
from api.service import Service
from api.settings import Settings
from api.throttle import AuthThrottle
from api.user_reads import router as user_router

log = logging.getLogger("incident_ledger.api")


def create_app(settings: Settings | None = None, service: Service | None = None) -> FastAPI:
    """Build the app; with no `service`, one is started (and closed) by the lifespan."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = service is None
        running = service or Service.start(settings)
        app.state.service = running
        if owned:
            admin_id, key = running.bootstrap_admin()
            if key is not None:
                print(  # noqa: T201 - shown once, on purpose, to whoever started the service
                    f"\nFirst administrator created (user {admin_id}).\n"
                    f"API key (shown once, stored hashed): {key}\n",
                    flush=True,
                )
        try:
            yield
        finally:
            if owned:
                running.close()

    app = FastAPI(
        title="incident-ledger",
        version="0.1.0",
        description="Event-sourced incident ledger: every SOP action is a validated command; "
        "every accepted command becomes immutable events. Authenticate with "
        "`Authorization: Bearer <api key>`. Errors are JSON `{code, message}`.",
        lifespan=lifespan,
    )
    if service is not None:
        app.state.service = service
    app.state.throttle = AuthThrottle(settings.auth_failure_limit, settings.auth_failure_window)
    errors.install(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.include_router(query_router)
    app.include_router(user_router)
    app.include_router(command_router())
    return app
