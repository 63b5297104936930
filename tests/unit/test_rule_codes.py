"""Every error code domain/ can raise is named in a test: the codes are read from the source (not
from a list kept by hand), so a new rule without a test fails the suite."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from domain import errors
from domain.attachment import ReferenceType

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = ROOT / "domain"
TESTS = ROOT / "tests"
CODE = re.compile(r"^[a-z_]+\.[a-z_]+$")

# Codes built from a local variable whose values the source alone cannot tell:
# (function, variable) → the values it takes.
LOCAL_VALUES: dict[tuple[str, str], set[str]] = {
    # add_attachment: `what = cmd.reference_type.value`
    ("add_attachment", "what"): {t.value for t in ReferenceType},
}


def _error_classes() -> set[str]:
    found: set[str] = set()
    pending: list[type] = [errors.LedgerError]
    while pending:
        cls = pending.pop()
        found.add(cls.__name__)
        pending.extend(cls.__subclasses__())
    return found


def _callee(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _params(function: ast.FunctionDef, is_method: bool) -> list[str]:
    names = [a.arg for a in (*function.args.posonlyargs, *function.args.args)]
    return names[1:] if is_method and names and names[0] in ("self", "cls") else names


def _argument(call: ast.Call, index: int, name: str) -> ast.expr | None:
    if index < len(call.args):
        return call.args[index]
    return next((k.value for k in call.keywords if k.arg == name), None)


@dataclass
class Function:
    node: ast.FunctionDef
    is_method: bool
    calls: list[ast.Call] = field(default_factory=list)

    @property
    def params(self) -> list[str]:
        return _params(self.node, self.is_method)


def _functions(tree: ast.Module) -> Iterator[Function]:
    """Every function (and method) with the calls made directly in its body."""

    def visit(node: ast.AST, is_method: bool) -> Iterator[Function]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef):
                function = Function(child, is_method)
                function.calls = [n for n in _own_nodes(child) if isinstance(n, ast.Call)]
                yield function
                yield from visit(child, False)
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, True)
            else:
                yield from visit(child, is_method)

    yield from visit(tree, False)


def _own_nodes(function: ast.FunctionDef) -> Iterator[ast.AST]:
    """The nodes of a function's body, not those of functions nested in it."""
    pending: list[ast.AST] = list(function.body)
    while pending:
        node = pending.pop()
        yield node
        pending.extend(
            child
            for child in ast.iter_child_nodes(node)
            if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        )


@dataclass
class Inventory:
    codes: set[str] = field(default_factory=set)
    unresolved: list[str] = field(default_factory=list)


def domain_codes() -> Inventory:
    """Each code a refusal in domain/ can carry: string constants passed as the code of an error
    or of a function taking a `code`, and f-string codes (`f"{what}.not_found"`) resolved to the
    constants their callers pass."""
    functions: list[tuple[Path, Function]] = [
        (path, function)
        for path in sorted(DOMAIN.rglob("*.py"))
        for function in _functions(ast.parse(path.read_text(), str(path)))
    ]
    by_name: dict[str, list[Function]] = {}
    for _path, function in functions:
        by_name.setdefault(function.node.name, []).append(function)
    # Where each callable takes its code: errors first, functions by their `code` parameter.
    code_position = dict.fromkeys(_error_classes(), 0)
    for _path, function in functions:
        if "code" in function.params and function.node.name != "__init__":
            code_position[function.node.name] = function.params.index("code")

    inventory = Inventory()

    def values(variable: str, where: Function, seen: frozenset[int]) -> set[str]:
        """The strings `variable` can hold in `where`: from the callers if it is a parameter."""
        if variable not in where.params:
            local = LOCAL_VALUES.get((where.node.name, variable))
            if local is None:
                inventory.unresolved.append(f"{where.node.name}: {variable}")
            return local or set()
        index = where.params.index(variable)
        found: set[str] = set()
        for caller_path, caller in functions:
            for call in caller.calls:
                if _callee(call) != where.node.name or id(call) in seen:
                    continue
                argument = _argument(call, index, variable)
                if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                    found.add(argument.value)
                elif isinstance(argument, ast.Name):
                    found |= values(argument.id, caller, seen | {id(call)})
                elif argument is not None:
                    where_called = f"{caller_path.name}:{call.lineno}"
                    inventory.unresolved.append(f"{where_called}: {ast.unparse(argument)}")
        return found

    for path, function in functions:
        for call in function.calls:
            position = code_position.get(_callee(call) or "")
            if position is None:
                continue
            argument = _argument(call, position, "code")
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                inventory.codes.add(argument.value)
            elif isinstance(argument, ast.Name) and argument.id == "code":
                continue  # a wrapper passing its own `code` on: its callers are read
            elif isinstance(argument, ast.JoinedStr) and _is_family(argument):
                variable, suffix = _family(argument)
                for value in values(variable, function, frozenset()):
                    inventory.codes.add(f"{value}{suffix}")
            else:
                shown = ast.unparse(argument) if argument is not None else "no code"
                inventory.unresolved.append(f"{path.name}:{call.lineno}: {shown}")
    inventory.unresolved = sorted(set(inventory.unresolved))
    return inventory


def _is_family(node: ast.JoinedStr) -> bool:
    """`f"{name}.suffix"`: one variable, then a constant suffix."""
    return (
        len(node.values) == 2
        and isinstance(node.values[0], ast.FormattedValue)
        and isinstance(node.values[0].value, ast.Name)
        and isinstance(node.values[1], ast.Constant)
    )


def _family(node: ast.JoinedStr) -> tuple[str, str]:
    head, tail = node.values
    assert isinstance(head, ast.FormattedValue)
    assert isinstance(head.value, ast.Name)
    assert isinstance(tail, ast.Constant)
    return head.value.id, str(tail.value)


def _tests_text() -> str:
    """The source of every test module except this one."""
    here = Path(__file__).resolve()
    return "\n".join(
        path.read_text() for path in sorted(TESTS.rglob("*.py")) if path.resolve() != here
    )


def test_domain_codes_are_all_read_from_the_source() -> None:
    inventory = domain_codes()

    assert inventory.unresolved == [], "codes this test cannot enumerate; extend LOCAL_VALUES"
    assert all(CODE.match(code) for code in inventory.codes), sorted(inventory.codes)
    # A few codes of each shape, so that a parser that finds nothing cannot pass.
    assert {
        "incident.invalid_transition",  # RuleViolation(...)
        "user.email_taken",  # require(...)
        "role.forbidden",  # Forbidden(...)
        "auth.invalid_key",  # Unauthenticated(...)
        "actor.not_found",  # f"{what}.not_found" through Context.find
        "pir.not_found",  # f"{what}.not_found" from an attachment's reference type
        "detection_time.in_future",  # f"{field_name}.in_future"
    } <= inventory.codes
    assert len(inventory.codes) >= 45


def test_every_domain_code_is_named_in_a_test() -> None:
    text = _tests_text()

    untested = sorted(
        code for code in domain_codes().codes if f'"{code}"' not in text and f"'{code}'" not in text
    )

    assert untested == [], f"codes raised in domain/ that no test names: {untested}"
