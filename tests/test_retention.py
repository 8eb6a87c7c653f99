"""serve --keep-versions N: each model keeps its newest N versions; older
ones are pruned in the background (the models written, and at start every
model), on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from registry_support import Caller
from support import ADMIN_KEY, MODEL_REGISTRY, query, start_registry


def versions(database_url: str, model_id: str) -> list[tuple[Any, ...]]:
    return [
        tuple(row)
        for row in query(
            database_url,
            "SELECT number, id, parent_id FROM model_versions WHERE model_id = :id ORDER BY number",
            id=model_id,
        )
    ]


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


def test_written_models_keep_their_newest_versions(database_url_factory: Callable[[], str]):
    url = database_url_factory()
    registry = start_registry(url, extra_args=("--keep-versions", "3"))
    try:
        with grpc.insecure_channel(registry.grpc_target) as channel:
            admin = Caller(registry, channel, ADMIN_KEY)
            admin.create({"id": "kept", "name": "Kept", "params": {}, "meta": {}})
            first = admin.history("kept").versions[0].id
            for _ in range(9):
                admin.toggle("kept")
            wait_for(lambda: len(versions(url, "kept")) == 3, "pruned to 3 versions")
            rows = versions(url, "kept")
            assert [row[0] for row in rows] == [8, 9, 10]
            assert [row[2] for row in rows] == [None, rows[0][1], rows[1][1]]
            assert admin.get("kept").version_id == rows[-1][1]
            assert [v.number for v in admin.history("kept").versions] == [10, 9, 8]
            with pytest.raises(grpc.RpcError) as error:
                admin.restore("kept", first)
            assert error.value.details() == "Model version not found"
            # A model with fewer versions than kept loses none.
            admin.create({"id": "young", "name": "Young", "params": {}, "meta": {}})
            admin.toggle("young")
            admin.toggle("kept")
            wait_for(lambda: [r[0] for r in versions(url, "kept")] == [9, 10, 11], "pruned again")
            assert [row[0] for row in versions(url, "young")] == [1, 2]
    finally:
        assert registry.stop() == 0


def test_a_start_with_keep_versions_prunes_every_model(database_url_factory: Callable[[], str]):
    url = database_url_factory()
    registry = start_registry(url)
    try:
        with grpc.insecure_channel(registry.grpc_target) as channel:
            admin = Caller(registry, channel, ADMIN_KEY)
            for model_id in ("old-a", "old-b"):
                admin.create({"id": model_id, "name": model_id, "params": {}, "meta": {}})
                for _ in range(5):
                    admin.toggle(model_id)
    finally:
        assert registry.stop() == 0
    assert len(versions(url, "old-a")) == 6  # kept without the setting

    registry = start_registry(url, extra_args=("--keep-versions", "2"))
    try:
        for model_id in ("old-a", "old-b"):
            wait_for(lambda m=model_id: len(versions(url, m)) == 2, f"{model_id} pruned")
            assert [row[0] for row in versions(url, model_id)] == [5, 6]
    finally:
        assert registry.stop() == 0


def test_keep_versions_below_one_is_refused():
    result = subprocess.run(
        [MODEL_REGISTRY, "serve", "--keep-versions", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "model-registry: --keep-versions must be at least 1 (the current version)\n"
    )


def test_imports_that_change_a_model_are_pruned_too(database_url_factory: Callable[[], str]):
    from modelregistry.client import Client

    url = database_url_factory()
    registry = start_registry(url, extra_args=("--keep-versions", "2"))
    try:
        with Client(registry.grpc_target, api_key=ADMIN_KEY) as client:
            for n in range(4):
                record = {"id": "imported", "name": f"Import {n}", "params": {}, "meta": {}}
                result = client.import_models([record])
                assert [r.outcome for r in result.results] == ["created" if n == 0 else "updated"]
        wait_for(lambda: len(versions(url, "imported")) == 2, "pruned to 2 versions")
        assert [row[0] for row in versions(url, "imported")] == [3, 4]
    finally:
        assert registry.stop() == 0
