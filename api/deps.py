"""Request dependencies: the service, the authenticated user behind the bearer key, and a check
of every request's path and query string (storable text only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qsl, unquote_to_bytes
from uuid import UUID

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.service import Service
from api.throttle import AuthThrottle
from domain.api_key import ApiKey, hash_key
from domain.base import Role
from domain.configuration_item import ConfigurationItem
from domain.errors import Forbidden, NotFound, Unauthenticated
from domain.incident import Incident
from domain.user import User

bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer <key>`")


def storable_parameters(request: Request) -> None:
    """Refuse (422) a path or query parameter that is not UTF-8 once percent-decoded (an encoded
    surrogate, a stray byte) or that holds NUL, which PostgreSQL text cannot hold: decoders would
    otherwise pass a replacement character on, or the database fail the read."""
    errors: list[dict[str, object]] = []

    def check(where: tuple[str, ...], value: str) -> None:
        if "\x00" in value:
            errors.append({"loc": where, "msg": "must not contain NUL (%00)", "type": "nul"})

    try:
        path = unquote_to_bytes(request.scope.get("raw_path") or b"").decode()
        pairs = parse_qsl(
            request.scope.get("query_string", b"").decode("latin-1"),
            keep_blank_values=True,
            errors="strict",
        )
    except UnicodeDecodeError:
        errors.append(
            {"loc": ("request",), "msg": "is not UTF-8 once percent-decoded", "type": "utf8"}
        )
    else:
        check(("path",), path)
        for name, value in pairs:
            check(("query", name), name + value)
    if errors:
        raise RequestValidationError(errors)


def get_service(request: Request) -> Service:
    return request.app.state.service  # type: ignore[no-any-return]


ServiceDep = Annotated[Service, Depends(get_service)]


def _authenticated(
    request: Request,
    service: Service,
    credentials: HTTPAuthorizationCredentials | None,
    *,
    cached: bool = False,
) -> tuple[User, str]:
    """The user behind the bearer key, and the key (throttled per client on failures)."""
    if credentials is None or not credentials.credentials:
        raise Unauthenticated(
            "auth.missing_key", "Send your API key as `Authorization: Bearer <key>`."
        )
    throttle: AuthThrottle = request.app.state.throttle
    client = request.client.host if request.client else "unknown"
    throttle.check(client)
    try:
        return service.ledger.authenticate(credentials.credentials, cached=cached), (
            credentials.credentials
        )
    except Unauthenticated:
        throttle.failed(client)
        raise


def current_user(
    request: Request,
    service: ServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    """The reader, from the current key and user records (a read fetches what is newer)."""
    return _authenticated(request, service, credentials)[0]


CurrentUser = Annotated[User, Depends(current_user)]


@dataclass(frozen=True)
class CommandActor:
    """Who sends a command, and the id of the API key they sent it with."""

    user: User
    api_key: UUID


def command_actor(
    request: Request,
    service: ServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> CommandActor:
    """As `current_user`, but from this process's copies of the key and its user (no read):
    the command checks the key again in its decision and guards both, so a key revoked or a
    user deactivated elsewhere fails the append, and the command is refused on fresh state."""
    user, secret = _authenticated(request, service, credentials, cached=True)
    return CommandActor(user, ApiKey.create_id(key_hash=hash_key(secret)))


CommandActorDep = Annotated[CommandActor, Depends(command_actor)]


def reader(*roles: Role) -> object:
    """Dependency factory: only these roles may read."""

    def check(user: CurrentUser) -> User:
        if user.role not in roles:
            raise Forbidden("role.forbidden", f"Your role ({user.role.value}) may not read this.")
        return user

    return Depends(check)


class ReadScope:
    """Who may read what, in one place: a client contact reads only incidents that affect their
    own client (through the incident's CIs), in every version; anyone else reads everything. An
    incident out of scope answers the same 404 as one that does not exist."""

    def __init__(self, service: Service, user: User) -> None:
        self.service = service
        self.user = user

    @property
    def client_id(self) -> UUID | None:
        """The client every listing is limited to (None: no limit)."""
        return self.user.client_id if self.user.role == Role.CLIENT_CONTACT else None

    def incident(self, ref: str) -> Incident:
        """The current incident named, if the reader may see it."""
        found: Incident = self.service.ledger.find(Incident, ref, "incident")
        client = self.client_id
        if client is not None and not any(
            isinstance(ci := self.service.ledger.get_or_none(ci_id), ConfigurationItem)
            and client in ci.client_ids
            for ci_id in found.ci_ids
        ):
            raise NotFound("incident.not_found", f"No incident {ref}.")
        return found


def read_scope(service: ServiceDep, user: CurrentUser) -> ReadScope:
    return ReadScope(service, user)


Scope = Annotated[ReadScope, Depends(read_scope)]
