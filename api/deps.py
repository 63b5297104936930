"""Request dependencies: the service, and the authenticated user behind the bearer key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.service import Service
from domain.base import Role
from domain.errors import Forbidden, Unauthenticated
from domain.user import User

bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer <key>`")


def get_service(request: Request) -> Service:
    return request.app.state.service  # type: ignore[no-any-return]


ServiceDep = Annotated[Service, Depends(get_service)]


def current_user(
    service: ServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    if credentials is None or not credentials.credentials:
        raise Unauthenticated(
            "auth.missing_key", "Send your API key as `Authorization: Bearer <key>`."
        )
    return service.ledger.authenticate(credentials.credentials)


CurrentUser = Annotated[User, Depends(current_user)]


def reader(*roles: Role) -> object:
    """Dependency factory: only these roles may read."""

    def check(user: CurrentUser) -> User:
        if user.role not in roles:
            raise Forbidden("role.forbidden", f"Your role ({user.role.value}) may not read this.")
        return user

    return Depends(check)
