"""The command tables agree: every command class has exactly one handler and at least one HTTP
route (commands the ledger issues itself have none), and no method and path is routed twice."""

from __future__ import annotations

import importlib
import pkgutil
from collections import Counter

import domain
from api.routes import ROUTES
from domain.attachment import AddAttachment
from domain.base import Command
from domain.handlers import HANDLERS, TABLES


def _command_classes() -> set[type[Command]]:
    """Every concrete command the domain defines: a Command subclass with no subclass of its own
    (IncidentCommand, RecordCommand... are bases), after importing every domain module."""
    for module in pkgutil.walk_packages(domain.__path__, "domain."):
        importlib.import_module(module.name)
    found: set[type[Command]] = set()
    todo = [Command]
    while todo:
        cls = todo.pop()
        subclasses = cls.__subclasses__()
        if not subclasses and cls.__module__.startswith("domain."):
            found.add(cls)
        todo += subclasses
    return found


def test_every_command_has_exactly_one_handler() -> None:
    commands = _command_classes()
    assert len(commands) >= 20  # the walk found the domain's commands
    twice = {c.__name__ for c in commands if sum(c in table for table in TABLES) != 1}
    assert twice == set(), "commands without exactly one handler"
    assert set(HANDLERS) == commands


def test_every_routable_command_has_a_route() -> None:
    routed = {route.command for route in ROUTES}
    unrouted = {c.__name__ for c in _command_classes() if not c.system and c not in routed}
    assert unrouted == set()


def test_system_commands_have_no_route() -> None:
    system = {c for c in _command_classes() if c.system}
    assert {c.__name__ for c in system} >= {"BootstrapAdministrator"}
    assert {route.path for route in ROUTES if route.command in system} == set()


def test_every_route_command_has_a_handler() -> None:
    assert {r.command.__name__ for r in ROUTES if r.command not in HANDLERS} == set()


def test_no_method_and_path_routed_twice() -> None:
    counts = Counter((route.method, route.path) for route in ROUTES)
    assert {key: n for key, n in counts.items() if n > 1} == {}


def test_add_attachment_routed_on_incident_and_on_any_record() -> None:
    paths = {route.path for route in ROUTES if route.command is AddAttachment}
    assert paths >= {"/incidents/{incident}/attachments", "/attachments"}
