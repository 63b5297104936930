"""The writer batches rows by shape without changing what a page of rows does: each key's rows
keep their order, and a Lookup sees exactly the writes that came before it."""

from __future__ import annotations

import pytest
from psycopg.types.json import Jsonb

from projections.folds import Append, Increment, Lookup, Merge, Row
from projections.writer import (
    _array,
    _coalesced,
    _columns,
    _groups,
    _segments,
    params,
    render,
    shape,
    statement,
)


def _entry(n: int, actor: str) -> Row:
    name = Lookup("timeline_actor", "first_name", actor)
    return Row("timeline_entry", {"notification_id": n}, {"actor_name": name}, op="insert")


def _actor(actor: str, first: str, op: str = "upsert") -> Row:
    return Row("timeline_actor", {"id": actor}, {"first_name": first}, op=op)


def test_groups_keep_each_keys_rows_in_order_when_keys_interleave() -> None:
    rows = [
        Row("incident_view", {"id": "a"}, {"status": "open"}, op="insert"),
        Row("incident_view", {"id": "a"}, {"status": "in_progress"}),
        Row("incident_view", {"id": "b"}, {"status": "open"}, op="insert"),
        Row("incident_view", {"id": "a"}, {"status": "resolved"}),
        Row("incident_view", {"id": "b"}, {"status": "in_progress"}),
    ]

    groups = _groups(rows, "")

    assert [[(r.key["id"], r.values["status"]) for r in g] for g in groups] == [
        [("a", "open"), ("b", "open")],
        [("a", "in_progress"), ("b", "in_progress")],
        [("a", "resolved")],
    ]


def test_segments_cut_where_a_lookup_and_a_write_of_its_table_meet() -> None:
    rows = [
        _entry(1, "u"),
        _actor("u", "Nora"),  # written after being looked up: a new segment
        _entry(2, "u"),  # looks up what the segment wrote: a new segment
        _entry(3, "u"),
        _actor("u", "Noor", op="update"),
        _entry(4, "u"),
    ]

    segments = _segments(rows)

    assert [[r.key.get("notification_id", r.table) for r in s] for s in segments] == [
        [1],
        ["timeline_actor"],
        [2, 3],
        ["timeline_actor"],
        [4],
    ]


def test_statement_rendered_once_per_shape_when_values_differ() -> None:
    one = Row("incident_view", {"id": "a"}, {"reopen_count": Increment(1), "status": "x"})
    two = Row("incident_view", {"id": "b"}, {"reopen_count": Increment(2), "status": "y"})

    assert shape(one) == shape(two)
    assert statement(one) is statement(two)
    assert statement(one, "__new") == render(one, "__new").as_string(None)
    assert '"incident_view__new"' in statement(one, "__new")


def test_updates_fold_into_the_earlier_write_of_their_key_where_the_result_is_the_same() -> None:
    rows = [
        Row("incident_view", {"id": "a"}, {"status": "open", "reopen_count": 0}, op="insert"),
        Row("incident_view", {"id": "b"}, {"status": "open"}, op="upsert"),
        Row("incident_view", {"id": "a"}, {"status": "resolved", "reopen_count": Increment(2)}),
        Row("incident_view", {"id": "b"}, {"assigned_to": "u"}),
        Row("incident_view", {"id": "a"}, {"closed_at": "t"}),
    ]

    assert _coalesced(rows) == [
        Row(
            "incident_view",
            {"id": "a"},
            {"status": "resolved", "reopen_count": 2, "closed_at": "t"},
            op="insert",
        ),
        Row("incident_view", {"id": "b"}, {"status": "open", "assigned_to": "u"}, op="upsert"),
    ]


def test_an_update_the_earlier_write_cannot_absorb_stays_and_keeps_its_place() -> None:
    rows = [
        Row("incident_view", {"id": "a"}, {"status": "open"}, op="insert"),
        Row("incident_view", {"id": "a"}, {"ci_ids": Append("ci")}),  # an array append
        Row("incident_view", {"id": "a"}, {"status": "resolved"}),  # folds into the append's row
        Row("incident_view", {"id": "a"}, {"reopen_count": Increment()}),  # nothing to add to
        Row("record_view", {"id": "r"}, {"fields": Merge({"x": 1})}, op="upsert"),
        Row("record_view", {"id": "r"}, {"fields": Merge({"y": 2})}),
        Row("timeline_actor", {"id": "u"}, {}, op="delete"),
        Row("timeline_actor", {"id": "u"}, {"first_name": "N"}),  # after a delete: stays
    ]

    assert _coalesced(rows) == [
        rows[0],
        Row("incident_view", {"id": "a"}, {"ci_ids": Append("ci"), "status": "resolved"}),
        rows[3],
        rows[4],
        rows[5],
        rows[6],
        rows[7],
    ]


def _json(value: object) -> object:
    return ("jsonb", value.obj) if isinstance(value, Jsonb) else value


GROUPS = {
    "insert with lookups and JSON": [
        Row(
            "timeline_entry",
            {"notification_id": n},
            {
                "actor_name": Lookup("timeline_actor", "first_name", f"actor-{n}"),
                "changes": {"status": [None, "open"]} if n % 2 else None,
                "source": "api",
            },
            op="insert",
        )
        for n in range(3)
    ],
    "upsert": [
        Row("user_view", {"id": n}, {"first_name": f"Ann {n}", "client_id": None}, op="upsert")
        for n in range(3)
    ],
    "update of every kind": [
        Row(
            "incident_view",
            {"id": n},
            {
                "reopen_count": Increment(n),
                "ci_ids": Append(f"ci-{n}"),
                "fields": Merge({"title": f"t{n}"}),
                "status": "resolved" if n else None,
            },
        )
        for n in range(3)
    ],
    "delete": [Row("ci_client", {"ci_id": n, "client_id": n + 1}, op="delete") for n in range(3)],
    "mixed plain types": [
        Row("record_view", {"id": n}, {"number": n if n % 2 else f"N{n}"}) for n in range(3)
    ],
}


@pytest.mark.parametrize("group", GROUPS.values(), ids=GROUPS.keys())
def test_columns_of_a_group_are_the_rows_parameters_column_by_column(group: list[Row]) -> None:
    assert len({shape(row) for row in group}) == 1
    by_row = [_array(list(column)) for column in zip(*(params(row) for row in group), strict=True)]

    by_column = _columns(group)

    assert [[_json(v) for v in column] for column in by_column] == [
        [_json(v) for v in column] for column in by_row
    ]
