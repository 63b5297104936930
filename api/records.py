"""Reads of every record type, generated from the table in api/collections.py:
`GET /<collection>/{id or number}` (the record from its own events, now or as of a version or a
moment) and `GET /<collection>` (exact-match filters on its fields, time ranges, keyset pagination;
the records view finds the ids, each record is then shown as of the version the view matched)."""

from __future__ import annotations

import inspect
from typing import Annotated, Any, Literal, get_args
from uuid import UUID

from fastapi import APIRouter, Path, Query, Response
from pydantic import AwareDatetime, BaseModel, Field, create_model

from api.collections import COLLECTIONS, Collection
from api.deps import CurrentUser, ServiceDep
from api.queries import VIEW_POSITION, VIEW_RESPONSES, MinPosition
from api.replay import AsOf, AsOfBasis, AsOfVersion, RecordStep, as_of_state, step_through
from domain.base import Aggregate, Role
from domain.errors import Forbidden, InvalidInput
from domain.user import User
from projections.queries import BadQuery, list_records


def _may_read(user: CurrentUser) -> None:
    """A client contact reads only their client's incidents (and themselves, at /me)."""
    if user.role == Role.CLIENT_CONTACT:
        raise Forbidden("role.forbidden", "A client contact may read only their incidents.")


def _is_user_field(model: type[BaseModel], name: str) -> bool:
    return UUID in (
        model.model_fields[name].annotation,
        *get_args(model.model_fields[name].annotation),
    )


def _filter_value(collection: Collection, name: str, value: str, user: CurrentUser) -> Any:
    if "\x00" in value:
        raise InvalidInput("query.invalid", f"{name} cannot contain a NUL character.")
    if _is_user_field(collection.model, name):
        if value == "me":
            return str(user.id)
        try:
            return str(UUID(value))
        except ValueError:
            raise InvalidInput("query.invalid", f"{name} must be a UUID (or `me`).") from None
    return value


def _state(collection: Collection, found: Aggregate) -> dict[str, Any]:
    return collection.model.model_validate(found.state()).model_dump(mode="json")


def get_steps(collection: Collection) -> Any:
    def endpoint(reading_service: ServiceDep, reader: CurrentUser, **path: str) -> Any:
        ref = path[collection.what]
        if not (collection.aggregate is User and ref == str(reader.id)):
            _may_read(reader)
        found: Aggregate = reading_service.ledger.find(collection.aggregate, ref, collection.what)
        return step_through(reading_service, found.id)

    base = inspect.signature(endpoint)
    endpoint.__signature__ = base.replace(  # type: ignore[attr-defined]
        parameters=[
            inspect.Parameter(
                collection.what,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=Annotated[str, Path(description="Its id, or its number.")],
            ),
            *(p for p in base.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD),
        ]
    )
    return endpoint


def get_one(collection: Collection) -> Any:
    def endpoint(
        reading_service: ServiceDep,
        reader: CurrentUser,
        http_response: Response,
        as_of_version: AsOfVersion = None,
        as_of: AsOf = None,
        as_of_basis: AsOfBasis = "recorded",
        **path: str,
    ) -> dict[str, Any]:
        ref = path[collection.what]
        if not (collection.aggregate is User and ref == str(reader.id)):
            _may_read(reader)
        found: Aggregate = reading_service.ledger.find(collection.aggregate, ref, collection.what)
        found = as_of_state(
            reading_service, found, collection.what, as_of_version, as_of, as_of_basis
        )
        http_response.headers["ETag"] = f'"{found.version}"'
        return _state(collection, found)

    base = inspect.signature(endpoint)
    params = [
        inspect.Parameter(
            collection.what,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=Annotated[str, Path(description="Its id, or its number if it has one.")],
        ),
        *(p for p in base.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD),
    ]
    endpoint.__signature__ = base.replace(parameters=params)  # type: ignore[attr-defined]
    return endpoint


def get_many(collection: Collection) -> Any:
    page_model = create_model(
        f"{collection.aggregate.__name__}Page",
        items=(list[collection.model], ...),  # type: ignore[name-defined]
        next_cursor=(
            str | None,
            Field(description="Pass as `cursor` for the next page; null: the last page."),
        ),
    )

    def endpoint(
        reading_service: ServiceDep,
        reader: CurrentUser,
        http_response: Response,
        wanted_position: MinPosition,
        created_from: AwareDatetime | None = None,
        created_to: AwareDatetime | None = None,
        updated_from: AwareDatetime | None = None,
        updated_to: AwareDatetime | None = None,
        order: Literal["asc", "desc"] = "desc",
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(max_length=500)] = None,
        **given: Any,
    ) -> dict[str, Any]:
        _may_read(reader)
        contains = {
            name: _filter_value(collection, name, given[name], reader)
            for name in collection.filters
            if given.get(name) is not None
        }
        ranges = {
            "created_at": (created_from, created_to),
            "updated_at": (updated_from, updated_to),
            **{t: (given.get(f"{t}_from"), given.get(f"{t}_to")) for t in collection.times},
        }
        try:
            with reading_service.read_view("records", wanted_position) as (curs, position):
                rows, next_cursor = list_records(
                    curs,
                    collection.aggregate.__name__,
                    contains=contains,
                    ranges=ranges,
                    descending=order == "desc",
                    limit=limit,
                    cursor=cursor,
                )
        except BadQuery as exc:
            raise InvalidInput("query.invalid", str(exc)) from None
        items = []
        for row in rows:
            found = reading_service.ledger.cached_or_none(row["id"])
            if found is None or found.version != row["version"]:
                found = reading_service.ledger.repository.get(row["id"], version=row["version"])
            items.append(_state(collection, found))
        http_response.headers[VIEW_POSITION] = str(position)
        return {"items": items, "next_cursor": next_cursor}

    base = inspect.signature(endpoint)
    params = [p for p in base.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
    for name in collection.filters:
        hint = " (a user's id, or `me`)" if _is_user_field(collection.model, name) else ""
        params.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[
                    str | None, Query(max_length=300, description=f"Exact match{hint}.")
                ],
                default=None,
            )
        )
    for name in collection.times:
        for end in ("from", "to"):
            params.append(
                inspect.Parameter(
                    f"{name}_{end}",
                    inspect.Parameter.KEYWORD_ONLY,
                    annotation=AwareDatetime | None,
                    default=None,
                )
            )
    endpoint.__signature__ = base.replace(  # type: ignore[attr-defined]
        parameters=sorted(params, key=lambda p: p.kind)
    )
    endpoint.__annotations__["return"] = page_model
    return endpoint, page_model


def records_router() -> APIRouter:
    router = APIRouter()
    for collection in COLLECTIONS:
        listing, page_model = get_many(collection)
        router.add_api_route(
            collection.path,
            listing,
            methods=["GET"],
            response_model=page_model,
            tags=[collection.tag],
            summary=f"List {collection.tag} with filters and pagination",
            name=f"list_{collection.what}s",
            responses=VIEW_RESPONSES,
        )
        router.add_api_route(
            f"{collection.path}/{{{collection.what}}}",
            get_one(collection),
            methods=["GET"],
            response_model=collection.model,
            tags=[collection.tag],
            summary=f"One {collection.what.replace('_', ' ')}: its current state (or as of a "
            "version)",
            name=f"get_{collection.what}",
            responses=VIEW_RESPONSES,
        )
        router.add_api_route(
            f"{collection.path}/{{{collection.what}}}/events",
            get_steps(collection),
            methods=["GET"],
            response_model=list[RecordStep],
            tags=[collection.tag],
            summary=f"Step through one {collection.what.replace('_', ' ')}'s events, each with "
            "the state it left",
            name=f"step_{collection.what}",
            responses=VIEW_RESPONSES,
        )
    return router
