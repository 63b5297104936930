"""Read routes about users: who am I, and a user's API keys (prefix and label only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import CurrentUser, ServiceDep
from api.errors import ERROR_RESPONSES
from domain.api_key import ApiKey
from domain.base import Role
from domain.errors import Forbidden
from domain.user import User

router = APIRouter(tags=["users"])
RESPONSES: dict[int | str, dict[str, Any]] = {
    s: ERROR_RESPONSES[s] for s in (401, 403, 404, 422, 429, 503)
}


class UserState(BaseModel):
    id: str
    first_name: str
    last_name: str
    email: str
    role: str
    timezone: str
    status: str
    client_id: str | None
    version: int


class ApiKeyInfo(BaseModel):
    """A key as its holder and administrators see it: never the key, never its hash."""

    key_id: str
    prefix: str
    label: str
    issued_at: datetime
    revoked: bool
    works: bool = False
    """Authenticates now: not revoked, and issued in the holder's current key generation."""


def user_state(user: User) -> UserState:
    return UserState(
        id=str(user.id),
        first_name=user.first_name,
        last_name=user.last_name,
        email=user.email,
        role=user.role.value,
        timezone=user.timezone,
        status=user.status.value,
        client_id=str(user.client_id) if user.client_id else None,
        version=user.version,
    )


@router.get("/me", summary="The user your API key belongs to", responses=RESPONSES)
def me(user: CurrentUser) -> UserState:
    return user_state(user)


@router.get(
    "/users/{user}/api-keys",
    summary="A user's API keys: prefix, label, when issued, revoked (administrators, or yourself)",
    responses=RESPONSES,
)
def api_keys(user: str, service: ServiceDep, reader: CurrentUser) -> list[ApiKeyInfo]:
    holder: User = service.ledger.find(User, user, "user")
    if reader.role != Role.SYSTEM_ADMINISTRATOR and reader.id != holder.id:
        raise Forbidden("role.forbidden", "Only administrators may list another user's keys.")
    keys = []
    for key_id in holder.api_key_ids:
        key = service.ledger.get_or_none(key_id)
        if isinstance(key, ApiKey):
            keys.append(
                ApiKeyInfo(
                    key_id=str(key.id),
                    prefix=key.prefix,
                    label=key.label,
                    issued_at=key.issued_at,
                    revoked=key.revoked,
                    works=not key.revoked and key.generation == holder.key_generation,
                )
            )
    return keys
