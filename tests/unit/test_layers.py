"""Which way imports may point between the rooms of server/ (design.md):
the domain imports nothing but the standard library and itself; storage and
transport may import the domain, never each other; app.py wires them together
and, like the other top-level modules, may import everything."""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parents[2] / "server"
PACKAGE = "modelregistry_server"
GRPC_AND_PROTOBUF = frozenset(
    {"grpc", "grpc_status", "grpc_health", "grpc_reflection", "google", "modelregistry"}
)
SQL = frozenset({"sqlalchemy", "alembic", "psycopg"})


@dataclass(frozen=True)
class Rule:
    rooms: frozenset[str]  # the parts of this package it may import
    stdlib_only: bool = False
    forbidden: frozenset[str] = frozenset()  # top-level names of other packages


RULES = {
    "domain": Rule(frozenset({"domain"}), stdlib_only=True),
    "storage": Rule(frozenset({"storage", "domain"}), forbidden=GRPC_AND_PROTOBUF),
    "transport": Rule(frozenset({"transport", "domain", "config"}), forbidden=SQL),
}


def module_name(path: Path) -> tuple[str, bool]:
    """The dotted name of a file under server/, and whether it is a package."""
    parts = list(path.relative_to(SERVER).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join([PACKAGE, *parts]), is_package


def imported_names(source: str, module: str, is_package: bool) -> set[str]:
    """Every module (or module.name) the source imports, as an absolute name;
    imports inside functions count too."""
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def room_of(module: str) -> str:
    """'domain', 'storage', 'transport', or a top-level module such as 'app'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def violations(module: str, source: str, is_package: bool = False) -> list[str]:
    rule = RULES.get(room_of(module))
    if rule is None:
        return []
    found = []
    for name in sorted(imported_names(source, module, is_package)):
        top = name.split(".")[0]
        if top == PACKAGE:
            allowed = room_of(name) in rule.rooms
        elif rule.stdlib_only:
            allowed = top in sys.stdlib_module_names
        else:
            allowed = top not in rule.forbidden
        if not allowed:
            found.append(f"{module} imports {name}")
    return found


def server_modules() -> list[tuple[str, bool, str]]:
    modules = []
    for path in sorted(SERVER.rglob("*.py")):
        name, is_package = module_name(path)
        modules.append((name, is_package, path.read_text()))
    return modules


def test_every_import_in_server_points_the_allowed_way():
    modules = server_modules()
    rooms = [room_of(name) for name, _, _ in modules]
    # The walk saw the rooms, so an empty result means something.
    assert rooms.count("domain") >= 6 and rooms.count("storage") >= 6
    assert rooms.count("transport") >= 5
    found = [v for name, package, source in modules for v in violations(name, source, package)]
    assert found == []


@pytest.mark.parametrize(
    ("module", "source", "reported"),
    [
        ("domain.auth", "from ..storage.errors import StorageUnavailable", "storage.errors"),
        ("domain.auth", "from .. import app", "app"),
        ("domain.auth", "from ..config import Settings", "config"),
        ("domain.auth", "def f():\n    import grpc", "grpc"),
        ("domain.auth", "from google.protobuf import struct_pb2", "google.protobuf"),
        ("domain.auth", "from sqlalchemy import exc", "sqlalchemy"),
        ("domain.auth", "import yaml", "yaml"),
        ("storage.writer", "from ..transport.status import status_for", "transport.status"),
        ("storage.writer", "from modelregistry_server.app import App", "app"),
        ("storage.writer", "import grpc", "grpc"),
        ("storage.migrations.env", "from ...transport import server", "transport"),
        ("transport.servicer", "from ..storage.repositories import ModelRepository", "storage"),
        ("transport.servicer", "from modelregistry_server.storage import tables", "storage"),
        ("transport.servicer", "from .. import app", "app"),
        ("transport.servicer", "from sqlalchemy import exc", "sqlalchemy"),
    ],
)
def test_the_rules_report_an_import_against_them(module: str, source: str, reported: str):
    found = violations(f"{PACKAGE}.{module}", source)
    assert len(found) == 1, found
    assert found[0].startswith(f"{PACKAGE}.{module} imports ")
    imported = found[0].split(" imports ")[1]
    assert imported.removeprefix(f"{PACKAGE}.").startswith(reported), found


@pytest.mark.parametrize(
    ("module", "is_package", "source"),
    [
        ("domain.auth", False, "from __future__ import annotations\nimport hmac\nfrom . import x"),
        ("domain", True, "from . import errors\nfrom .models import Model"),
        ("storage.writer", False, "from ..domain.stores import DuplicateKey\nimport sqlalchemy"),
        ("transport.server", False, "import grpc\nfrom ..config import X\nfrom .. import domain"),
        ("app", False, "from .storage.database import X\nfrom .transport import server"),
    ],
)
def test_the_rules_allow_what_the_design_allows(module: str, is_package: bool, source: str):
    assert violations(f"{PACKAGE}.{module}", source, is_package) == []
