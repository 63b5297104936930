"""The cache hands each command a copy of a record (Aggregate.__deepcopy__ shares only what
cannot change): a decision that mutates its copy, and is then refused or loses a race, must leave
the cached record as it was."""

from __future__ import annotations

from copy import deepcopy
from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

from domain.base import Aggregate


class Sample(Aggregate):
    pass


def sample() -> Sample:
    record = object.__new__(Sample)
    record.__dict__.update(
        {
            "_id": uuid4(),
            "_version": 3,
            "_pending_events": [],
            "when": datetime(2026, 1, 2, tzinfo=UTC),
            "amount": Decimal("1.5"),
            "ids": [uuid4(), uuid4()],
            "notes": {"a": [1, 2], "b": {"c": {3}}},
            "pair": (1, [2]),
        }
    )
    return record


def test_a_copy_has_equal_state_and_no_shared_mutable_part() -> None:
    original = sample()
    copy = deepcopy(original)
    assert type(copy) is Sample
    assert copy.__dict__ == original.__dict__
    for name in ("_pending_events", "ids", "notes", "pair"):
        assert copy.__dict__[name] is not original.__dict__[name], name
    assert copy.__dict__["notes"]["b"]["c"] is not original.__dict__["notes"]["b"]["c"]
    assert copy.__dict__["pair"][1] is not original.__dict__["pair"][1]


def test_mutating_the_copy_leaves_the_original() -> None:
    original = sample()
    before = deepcopy(original.__dict__)
    copy = deepcopy(original)
    copy.__dict__["ids"].append(uuid4())
    copy.__dict__["notes"]["a"].append(9)
    copy.__dict__["notes"]["b"]["c"].add(4)
    copy.__dict__["pair"][1].append(5)
    copy.__dict__["_pending_events"].append("event")
    copy.__dict__["when"] = datetime(2027, 1, 1, tzinfo=UTC)
    assert original.__dict__ == before
