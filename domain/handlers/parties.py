"""Handlers for users, API keys, clients and configuration items (SOP 1, SPEC 3 and 4.1)."""

from __future__ import annotations

from uuid import UUID

from domain.api_key import (
    ApiKey,
    BootstrapAdministrator,
    IssueApiKey,
    RevokeApiKey,
    hash_key,
    new_api_key,
)
from domain.base import Aggregate, Role, changes_between
from domain.client import Client, RegisterClient, UpdateClient
from domain.configuration_item import (
    AssignCIToClient,
    ConfigurationItem,
    RegisterConfigurationItem,
    UnassignCIFromClient,
    UpdateConfigurationItem,
)
from domain.context import Context, Decision, entry, outcome
from domain.errors import NotFound, RuleViolation, require
from domain.user import (
    AdministratorRoster,
    DeactivateUser,
    EmailIndex,
    ReactivateUser,
    RegisterUser,
    Status,
    UpdateUser,
    User,
)


def _claim_email(ctx: Context, email: str, user: User) -> EmailIndex:
    """The email index record, claimed for `user` in the same append (unique under races)."""
    index = ctx.load(EmailIndex.create_id(email=email))
    if isinstance(index, EmailIndex):
        index.claim(ctx.meta, user.id)
        return index
    return EmailIndex(meta=ctx.meta, email=email.strip().lower(), user_id=user.id)


def _check_client(ctx: Context, role: Role, client_id: UUID | None) -> None:
    """A client contact names their client; any client named must exist."""
    if role == Role.CLIENT_CONTACT and client_id is None:
        raise RuleViolation(
            "user.client_required", "A client_contact user must name their client_id."
        )
    if client_id is not None:
        ctx.find(Client, client_id, "client")


def _roster_change(ctx: Context, user: User, administers: bool) -> list[Aggregate]:
    """The administrator roster, if `user` joins or leaves it (saved in the same append)."""
    roster = ctx.load(AdministratorRoster.create_id())
    if not isinstance(roster, AdministratorRoster):
        if not administers:
            return []
        roster = AdministratorRoster(meta=ctx.meta)
    if administers == (user.id in roster.members):
        return []
    if administers:
        roster.join(ctx.meta, user.id)
    else:
        roster.leave(ctx.meta, user.id)
    return [roster]


def _administers(user: User) -> bool:
    return user.is_active and user.role == Role.SYSTEM_ADMINISTRATOR


def _new_user(ctx: Context, cmd: RegisterUser | BootstrapAdministrator, role: Role) -> User:
    return User(
        meta=ctx.meta,
        first_name=cmd.first_name,
        last_name=cmd.last_name,
        email=cmd.email,
        role=role,
        timezone=cmd.timezone,
        status=getattr(cmd, "status", Status.ACTIVE),
        client_id=getattr(cmd, "client_id", None),
    )


def _new_key(ctx: Context, user: User, key: str | None, label: str) -> tuple[ApiKey, str]:
    """A key for `user` (generated unless the first administrator's was chosen); the user
    records its id, so their keys can be listed."""
    key = key or new_api_key()
    require(
        ctx.load(ApiKey.create_id(key_hash=hash_key(key))) is None,
        "api_key.exists",
        "That API key is already issued.",
    )
    api_key = ApiKey(
        meta=ctx.meta,
        user_id=user.id,
        key_hash=hash_key(key),
        label=label,
        prefix=key[:8],
        generation=user.key_generation,
    )
    user.record_key(ctx.meta, api_key.id)
    return api_key, key


def register_user(cmd: RegisterUser, ctx: Context) -> Decision:
    _check_client(ctx, cmd.role, cmd.client_id)
    user = _new_user(ctx, cmd, cmd.role)
    roster = _roster_change(ctx, user, True) if _administers(user) else []
    return outcome(user), [user, _claim_email(ctx, cmd.email, user), *roster]


def bootstrap_administrator(cmd: BootstrapAdministrator, ctx: Context) -> Decision:
    """The first administrator and its key: one append, so there is never one without the other."""
    user = _new_user(ctx, cmd, Role.SYSTEM_ADMINISTRATOR)
    chosen = cmd.key.get_secret_value() if cmd.key is not None else None
    api_key, key = _new_key(ctx, user, chosen, "first administrator")
    saved = [user, _claim_email(ctx, cmd.email, user), api_key, *_roster_change(ctx, user, True)]
    return outcome(user, secret=key), saved


def update_user(cmd: UpdateUser, ctx: Context) -> Decision:
    user = ctx.address(ctx.find(User, cmd.user, "user"), cmd.expected_version)
    updates = cmd.model_dump(exclude={"user", "occurred_at", "expected_version"}, exclude_none=True)
    _check_client(ctx, updates.get("role", user.role), updates.get("client_id", user.client_id))
    changes = changes_between(user, updates)
    saved: list[Aggregate] = [user]
    if "email" in changes and str(changes["email"][0]).lower() != str(changes["email"][1]).lower():
        old = ctx.load(EmailIndex.create_id(email=user.email))
        saved.append(_claim_email(ctx, cmd.email or "", user))
        if isinstance(old, EmailIndex):
            old.release(ctx.meta)
            saved.append(old)
    was_admin = _administers(user)
    user.update(ctx.meta, changes)
    if _administers(user) != was_admin:
        saved += _roster_change(ctx, user, _administers(user))
    return outcome(user), saved


def deactivate_user(cmd: DeactivateUser, ctx: Context) -> Decision:
    user = ctx.address(ctx.find(User, cmd.user, "user"), cmd.expected_version)
    require(
        user.id != ctx.actor_id, "user.cannot_deactivate_self", "You cannot deactivate yourself."
    )
    was_admin = _administers(user)
    user.deactivate(ctx.meta)
    return outcome(user), [user, *(_roster_change(ctx, user, False) if was_admin else [])]


def reactivate_user(cmd: ReactivateUser, ctx: Context) -> Decision:
    user = ctx.address(ctx.find(User, cmd.user, "user"), cmd.expected_version)
    user.reactivate(ctx.meta, cmd.restore_keys)
    return outcome(user), [user, *(_roster_change(ctx, user, True) if _administers(user) else [])]


def issue_api_key(cmd: IssueApiKey, ctx: Context) -> Decision:
    user = ctx.active_user(cmd.user, "key holder")
    api_key, key = _new_key(ctx, user, None, cmd.label)
    # The plain key is answered once and never stored; a replayed request cannot show it again.
    return outcome(api_key, secret=key, user_id=str(user.id), key_id=str(api_key.id)), [
        api_key,
        user,
    ]


def revoke_api_key(cmd: RevokeApiKey, ctx: Context) -> Decision:
    user = ctx.find(User, cmd.user, "user")
    api_key = ctx.find(ApiKey, cmd.api_key, "api_key")
    if api_key.user_id != user.id:
        raise NotFound("api_key.not_found", f"{user.full_name} has no API key {cmd.api_key}.")
    ctx.address(api_key, cmd.expected_version)
    api_key.revoke(ctx.meta)
    return outcome(api_key, user_id=str(user.id)), [api_key]


def register_client(cmd: RegisterClient, ctx: Context) -> Decision:
    client = Client(meta=ctx.meta, **cmd.model_dump(exclude={"occurred_at"}))
    return outcome(client), [client]


def update_client(cmd: UpdateClient, ctx: Context) -> Decision:
    client = ctx.address(ctx.find(Client, cmd.client, "client"), cmd.expected_version)
    fields = cmd.model_dump(
        exclude={"client", "occurred_at", "expected_version"}, exclude_none=True
    )
    client.update(ctx.meta, changes_between(client, fields))
    return outcome(client), [client]


def register_ci(cmd: RegisterConfigurationItem, ctx: Context) -> Decision:
    ctx.active_user(cmd.responsible_owner, "responsible owner")
    ci = ConfigurationItem(meta=ctx.meta, **cmd.model_dump(exclude={"occurred_at"}))
    return outcome(ci), [ci]


def _ci(ctx: Context, ref: UUID, expected_version: int | None) -> ConfigurationItem:
    found = ctx.find(ConfigurationItem, ref, "configuration_item")
    return ctx.address(found, expected_version)


def update_ci(cmd: UpdateConfigurationItem, ctx: Context) -> Decision:
    ci = _ci(ctx, cmd.configuration_item, cmd.expected_version)
    if cmd.responsible_owner is not None:
        ctx.active_user(cmd.responsible_owner, "responsible owner")
    fields = cmd.model_dump(
        exclude={"configuration_item", "occurred_at", "expected_version"}, exclude_none=True
    )
    ci.update(ctx.meta, changes_between(ci, fields))
    return outcome(ci), [ci]


def assign_ci(cmd: AssignCIToClient, ctx: Context) -> Decision:
    ci = _ci(ctx, cmd.configuration_item, cmd.expected_version)
    client = ctx.find(Client, cmd.client, "client")
    ci.assign_to_client(ctx.meta, client.id)
    return outcome(ci), [ci]


def unassign_ci(cmd: UnassignCIFromClient, ctx: Context) -> Decision:
    ci = _ci(ctx, cmd.configuration_item, cmd.expected_version)
    client = ctx.find(Client, cmd.client, "client")
    ci.unassign_from_client(ctx.meta, client.id)
    return outcome(ci), [ci]


HANDLERS = dict(
    [
        entry(RegisterUser, register_user),
        entry(BootstrapAdministrator, bootstrap_administrator),
        entry(UpdateUser, update_user),
        entry(DeactivateUser, deactivate_user),
        entry(ReactivateUser, reactivate_user),
        entry(IssueApiKey, issue_api_key),
        entry(RevokeApiKey, revoke_api_key),
        entry(RegisterClient, register_client),
        entry(UpdateClient, update_client),
        entry(RegisterConfigurationItem, register_ci),
        entry(UpdateConfigurationItem, update_ci),
        entry(AssignCIToClient, assign_ci),
        entry(UnassignCIFromClient, unassign_ci),
    ]
)
