"""clients/node with its packages installed (buf, @grpc/grpc-js, ...), for the
tests that run buf or the Node client; they skip, saying why, where Node.js
and npm are not installed."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def node_client_folder() -> Path:
    """clients/node, installed by `npm ci` unless it already is (as
    `python3 tasks.py test` does before pytest starts)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip(
            "Node.js and npm are not installed: clients/node (buf, the Node client) cannot run"
        )
    spec = importlib.util.spec_from_file_location("tasks", ROOT / "tasks.py")
    tasks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tasks)
    assert tasks.ensure_node_tools()
    return tasks.NODE_CLIENT


def buf_command() -> str:
    return str(node_client_folder() / "node_modules" / ".bin" / "buf")


def load_tool(name: str):
    """A module of tools/, e.g. load_tool("generate_protos")."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
