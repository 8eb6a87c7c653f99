"""The Node.js client (clients/node), which loads the contract from protos/ with
@grpc/proto-loader, against the real server: it creates a model, then the same
id again, and prints both answers as JSON (clients/node/example.mjs)."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest
from node_tools import node_client_folder

from support import ADMIN_KEY, Registry, query


@pytest.fixture(scope="module")
def node_client() -> Any:
    folder = node_client_folder()

    def run(target: str, key: str, model_id: str) -> dict[str, Any]:
        result = subprocess.run(
            ["node", "example.mjs", model_id],
            cwd=folder,
            env={**os.environ, "MODEL_REGISTRY_TARGET": target, "MODEL_REGISTRY_KEY": key},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (result.returncode, result.stderr) == (0, ""), result.stderr
        return json.loads(result.stdout)

    return run


def _error_info(reason: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "modelregistry.v1",
        "metadata": {},
    }


def test_node_client_creates_a_model_then_sees_already_exists(
    node_client, registry: Registry, unique_id: str
):
    answers = node_client(registry.grpc_target, ADMIN_KEY, unique_id)

    created = answers["first"]["created"]
    [row] = query(
        registry.database_url,
        "SELECT name, created_at, updated_at, version_id FROM models WHERE id = :id",
        id=unique_id,
    )
    # int64 fields arrive as decimal strings (proto-loader's longs: String).
    assert created.pop("created_at") == str(row.created_at)
    assert created.pop("updated_at") == str(row.updated_at)
    assert created.pop("version_id") == row.version_id
    assert created == {
        "id": unique_id,
        "user_id": "admin",
        "name": "My Node model",
        "base_model_id": "gpt-4",
        "params": {"temperature": 0.7, "max_tokens": 2000, "top_p": 1},
        "meta": {
            "description": "Created from Node.js",
            "capabilities": {"vision": True, "function_calling": True},
            "profile_image_url": "/static/favicon.png",
        },
        "access_grants": [
            {"access_type": "group", "access_id": "developers", "permission": "read"}
        ],
        "is_active": True,
    }
    # Struct numbers are JavaScript numbers: integers print as integers.
    assert type(created["params"]["max_tokens"]) is int

    assert answers["again"] == {
        "error": {
            "code": 6,  # ALREADY_EXISTS
            "message": "Model ID is already taken",
            "details": [_error_info("MODEL_ID_TAKEN")],
        }
    }
    assert row.name == "My Node model"  # the second create changed nothing


def test_node_client_with_an_unknown_key_is_unauthenticated(
    node_client, registry: Registry, unique_id: str
):
    answers = node_client(registry.grpc_target, ADMIN_KEY + "x", unique_id)
    unauthenticated = {
        "error": {
            "code": 16,  # UNAUTHENTICATED
            "message": "Unauthorized",
            "details": [_error_info("UNAUTHENTICATED")],
        }
    }
    assert answers == {"first": unauthenticated, "again": unauthenticated}
    assert query(registry.database_url, "SELECT id FROM models WHERE id = :id", id=unique_id) == []
