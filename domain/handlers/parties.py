"""Handlers for users, API keys, clients and configuration items (SOP 1)."""

from __future__ import annotations

from typing import Any

from domain.base import Aggregate, Role, RuleViolation, changes_between, require
from domain.ledger import Context, IncidentLedger, Outcome, handles, hash_key, new_api_key, outcome
from domain.parties import (
    ApiKey,
    AssignCIToClient,
    Client,
    ConfigurationItem,
    DeactivateUser,
    EmailIndex,
    IssueApiKey,
    ReactivateUser,
    RegisterClient,
    RegisterConfigurationItem,
    RegisterUser,
    UnassignCIFromClient,
    UpdateClient,
    UpdateConfigurationItem,
    UpdateUser,
    User,
)

Decision = tuple[Outcome, list[Aggregate]]


def _claim_email(ledger: IncidentLedger, ctx: Context, email: str, user: User) -> EmailIndex:
    index = ledger.get_or_none(EmailIndex.create_id(email=email))
    if isinstance(index, EmailIndex):
        require(
            index.user_id is None,
            "user.email_taken",
            f"The email address {email} already belongs to another user.",
        )
        index.reclaim(ctx.meta, user.id)
        return index
    return EmailIndex(meta=ctx.meta, email=email.strip().lower(), user_id=user.id)


def _check_client_contact(ledger: IncidentLedger, role: Role, client_id: Any) -> None:
    if role == Role.CLIENT_CONTACT:
        if client_id is None:
            raise RuleViolation(
                "user.client_required", "A client_contact user must name their client_id."
            )
        ledger.find(Client, client_id, "client")


@handles(RegisterUser)
def register_user(ledger: IncidentLedger, cmd: RegisterUser, ctx: Context) -> Decision:
    _check_client_contact(ledger, cmd.role, cmd.client_id)
    if cmd.client_id is not None:
        ledger.find(Client, cmd.client_id, "client")
    user = User(
        meta=ctx.meta,
        first_name=cmd.first_name,
        last_name=cmd.last_name,
        email=cmd.email,
        role=cmd.role,
        timezone=cmd.timezone,
        status=cmd.status,
        client_id=cmd.client_id,
    )
    index = _claim_email(ledger, ctx, cmd.email, user)
    return outcome(user), [user, index]


@handles(UpdateUser)
def update_user(ledger: IncidentLedger, cmd: UpdateUser, ctx: Context) -> Decision:
    user = ctx.address(ledger.find(User, cmd.user, "user"))
    updates = cmd.model_dump(exclude={"user", "occurred_at"}, exclude_none=True)
    role = updates.get("role", user.role)
    client_id = updates.get("client_id", user.client_id)
    _check_client_contact(ledger, role, client_id)
    changes = changes_between(user, updates)
    require(bool(changes), "user.no_change", "The update changes nothing.")
    saved: list[Aggregate] = [user]
    if "email" in changes and changes["email"][0].lower() != changes["email"][1].lower():
        old = ledger.get_or_none(EmailIndex.create_id(email=user.email))
        saved.append(_claim_email(ledger, ctx, cmd.email or "", user))
        if isinstance(old, EmailIndex):
            old.release(ctx.meta)
            saved.append(old)
    user.record_update(ctx.meta, changes)
    return outcome(user), saved


@handles(DeactivateUser)
def deactivate_user(ledger: IncidentLedger, cmd: DeactivateUser, ctx: Context) -> Decision:
    user = ctx.address(ledger.find(User, cmd.user, "user"))
    require(
        user.id != ctx.actor_id, "user.cannot_deactivate_self", "You cannot deactivate yourself."
    )
    user.deactivate(ctx.meta)
    return outcome(user), [user]


@handles(ReactivateUser)
def reactivate_user(ledger: IncidentLedger, cmd: ReactivateUser, ctx: Context) -> Decision:
    user = ctx.address(ledger.find(User, cmd.user, "user"))
    user.reactivate(ctx.meta)
    return outcome(user), [user]


@handles(IssueApiKey)
def issue_api_key(ledger: IncidentLedger, cmd: IssueApiKey, ctx: Context) -> Decision:
    user = ledger.active_user(cmd.user, "key holder")
    key = cmd.key.get_secret_value() if cmd.key is not None else new_api_key()
    require(
        ledger.get_or_none(ApiKey.create_id(key_hash=hash_key(key))) is None,
        "api_key.exists",
        "That API key is already issued.",
    )
    api_key = ApiKey(meta=ctx.meta, user_id=user.id, key_hash=hash_key(key), label=cmd.label)
    # The plain key is answered once and never stored; a replayed request cannot show it again.
    return outcome(api_key, secret=key, user_id=str(user.id)), [api_key]


@handles(RegisterClient)
def register_client(ledger: IncidentLedger, cmd: RegisterClient, ctx: Context) -> Decision:
    client = Client(meta=ctx.meta, **cmd.model_dump(exclude={"occurred_at"}))
    return outcome(client), [client]


@handles(UpdateClient)
def update_client(ledger: IncidentLedger, cmd: UpdateClient, ctx: Context) -> Decision:
    client = ctx.address(ledger.find(Client, cmd.client, "client"))
    changes = changes_between(
        client, cmd.model_dump(exclude={"client", "occurred_at"}, exclude_none=True)
    )
    require(bool(changes), "client.no_change", "The update changes nothing.")
    client.record_update(ctx.meta, changes)
    return outcome(client), [client]


@handles(RegisterConfigurationItem)
def register_ci(ledger: IncidentLedger, cmd: RegisterConfigurationItem, ctx: Context) -> Decision:
    ledger.active_user(cmd.responsible_owner, "responsible owner")
    ci = ConfigurationItem(meta=ctx.meta, **cmd.model_dump(exclude={"occurred_at"}))
    return outcome(ci), [ci]


@handles(UpdateConfigurationItem)
def update_ci(ledger: IncidentLedger, cmd: UpdateConfigurationItem, ctx: Context) -> Decision:
    ci = ctx.address(ledger.find(ConfigurationItem, cmd.configuration_item, "configuration_item"))
    if cmd.responsible_owner is not None:
        ledger.active_user(cmd.responsible_owner, "responsible owner")
    changes = changes_between(
        ci, cmd.model_dump(exclude={"configuration_item", "occurred_at"}, exclude_none=True)
    )
    require(bool(changes), "configuration_item.no_change", "The update changes nothing.")
    ci.record_update(ctx.meta, changes)
    return outcome(ci), [ci]


@handles(AssignCIToClient)
def assign_ci(ledger: IncidentLedger, cmd: AssignCIToClient, ctx: Context) -> Decision:
    ci = ctx.address(ledger.find(ConfigurationItem, cmd.configuration_item, "configuration_item"))
    client = ledger.find(Client, cmd.client, "client")
    ci.assign_to_client(ctx.meta, client.id)
    return outcome(ci), [ci]


@handles(UnassignCIFromClient)
def unassign_ci(ledger: IncidentLedger, cmd: UnassignCIFromClient, ctx: Context) -> Decision:
    ci = ctx.address(ledger.find(ConfigurationItem, cmd.configuration_item, "configuration_item"))
    client = ledger.find(Client, cmd.client, "client")
    ci.unassign_from_client(ctx.meta, client.id)
    return outcome(ci), [ci]
