"""The writer batches rows by shape without changing what a page of rows does: each key's rows
keep their order, and a Lookup sees exactly the writes that came before it."""

from __future__ import annotations

from projections.folds import Increment, Lookup, Row
from projections.writer import _groups, _segments, render, shape, statement


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
