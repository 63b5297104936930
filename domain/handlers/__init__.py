"""All command handlers: one table per area, merged here into the one table the ledger uses."""

from __future__ import annotations

from domain.base import Command
from domain.context import Handler
from domain.handlers import (
    approval,
    bridge,
    change,
    improvement,
    incident,
    parties,
    problem,
    records,
    sla,
)

TABLES = (
    parties.HANDLERS,
    incident.HANDLERS,
    records.HANDLERS,
    problem.HANDLERS,
    change.HANDLERS,
    approval.HANDLERS,
    bridge.HANDLERS,
    improvement.HANDLERS,
    sla.HANDLERS,
)
HANDLERS: dict[type[Command], Handler] = {k: v for table in TABLES for k, v in table.items()}
assert len(HANDLERS) == sum(len(t) for t in TABLES), "a command has two handlers"
