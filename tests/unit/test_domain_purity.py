"""domain/ stays pure: no web framework, no database driver, no environment reading, and no
dependency on the layers built on top of it (api/, projections/)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

DOMAIN = Path(__file__).resolve().parents[2] / "domain"
FORBIDDEN_MODULES = {
    "fastapi",
    "starlette",
    "psycopg",
    "psycopg_pool",
    "uvicorn",
    "api",
    "projections",
}
FORBIDDEN_OS_NAMES = {"environ", "getenv", "environb", "getenvb", "putenv"}


def impurities(source: str) -> list[str]:
    """Each forbidden import or environment access in the source, as `line: what`."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN_MODULES:
                    found.append(f"{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            top = node.module.split(".")[0]
            if top in FORBIDDEN_MODULES:
                found.append(f"{node.lineno}: from {node.module} import ...")
            if top == "os":
                for alias in node.names:
                    if alias.name in FORBIDDEN_OS_NAMES or alias.name == "*":
                        found.append(f"{node.lineno}: from os import {alias.name}")
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in FORBIDDEN_OS_NAMES
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ):
            found.append(f"{node.lineno}: os.{node.attr}")
    return found


DOMAIN_FILES = sorted(DOMAIN.rglob("*.py"))


def test_find_domain_modules_when_collecting() -> None:
    names = {path.relative_to(DOMAIN).as_posix() for path in DOMAIN_FILES}
    assert {"base.py", "incident.py", "ledger.py", "severity.py"} <= names
    assert any(name.startswith("handlers/") for name in names)


@pytest.mark.parametrize(
    "path", DOMAIN_FILES, ids=[p.relative_to(DOMAIN).as_posix() for p in DOMAIN_FILES]
)
def test_domain_module_imports_no_io_when_parsed(path: Path) -> None:
    assert impurities(path.read_text(encoding="utf-8")) == []


BAD_SOURCES = [
    "import fastapi",
    "from fastapi import APIRouter",
    "import psycopg.sql",
    "from psycopg import Cursor",
    "import uvicorn",
    "import api.settings",
    "from api.database import Database",
    "from projections.folds import Row",
    "import os\nurl = os.environ['DATABASE_URL']",
    "import os\nurl = os.getenv('DATABASE_URL')",
    "from os import environ",
    "from os import getenv as read",
    "def f():\n    import psycopg\n    return psycopg",
]


@pytest.mark.parametrize("source", BAD_SOURCES)
def test_impurities_reports_violation_when_source_is_impure(source: str) -> None:
    assert impurities(source) != []


def test_impurities_accepts_source_when_only_allowed_imports() -> None:
    source = "import os.path\nfrom os import path\nimport pydantic\nfrom domain.base import Meta\n"
    assert impurities(source) == []
