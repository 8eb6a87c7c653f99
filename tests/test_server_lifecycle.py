"""The server as an operator runs it: restarts, outages, failures, keys."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import grpc
import pytest
from spec_examples import minimal
from support import ADMIN_KEY, Client, start_registry


def test_models_survive_a_restart_and_the_admin_key_is_made_once(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    first = start_registry(url, admin_key=None)
    announced = "".join(first.output)
    assert "Created user 'admin'" in announced
    key = announced.split("store it now):")[1].split()[0]
    assert key.startswith("mr-") and len(key) > 40
    with grpc.insecure_channel(first.grpc_target) as channel:
        Client(channel, key).create(minimal("survivor", name="before restart"))
    assert first.stop() == 0

    second = start_registry(url, admin_key=None)
    try:
        assert "Created user 'admin'" not in "".join(second.output)
        with grpc.insecure_channel(second.grpc_target) as channel:
            error = Client(channel, key).create_error(minimal("survivor"))
            assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    finally:
        assert second.stop() == 0
    rows = sqlite3.connect(tmp_path / "r.db").execute("SELECT name FROM models").fetchall()
    assert rows == [("before restart",)]


def test_keys_are_stored_only_as_hashes(tmp_path: Path):
    registry = start_registry(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        user_key = registry.add_user("alice", can_create=True)
    finally:
        registry.stop()
    files = [tmp_path / "r.db", tmp_path / "r.db-wal"]
    database = b"".join(f.read_bytes() for f in files if f.exists())
    assert ADMIN_KEY.encode() not in database
    assert user_key.encode() not in database
    hashes = sqlite3.connect(tmp_path / "r.db").execute("SELECT key_hash FROM api_keys").fetchall()
    assert len(hashes) == 2 and all(len(h) == 64 for (h,) in hashes)


def test_revocation_takes_effect_within_the_cache_lifetime(tmp_path: Path):
    registry = start_registry(
        f"sqlite:///{tmp_path / 'r.db'}", extra_args=("--auth-cache-seconds", "0.5")
    )
    try:
        key = registry.add_user("bob", can_create=True)
        with grpc.insecure_channel(registry.grpc_target) as channel:
            client = Client(channel, key)
            client.create(minimal("bob-1"))  # the key is now cached
            key_id = registry.cli("keys", "list", "--user", "bob").split()[0]
            registry.cli("keys", "revoke", key_id)
            time.sleep(0.6)
            error = client.create_error(minimal("bob-2"))
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
            assert error.details() == "Unauthorized"
    finally:
        assert registry.stop() == 0


def test_unexpected_failure_is_internal_with_a_generic_message_and_a_logged_trace(tmp_path: Path):
    path = tmp_path / "r.db"
    registry = start_registry(f"sqlite:///{path}")
    try:
        # Damage the schema under the running server.
        with sqlite3.connect(path) as db:
            db.execute("ALTER TABLE models RENAME TO models_elsewhere")
        with grpc.insecure_channel(registry.grpc_target) as channel:
            error = Client(channel, ADMIN_KEY).create_error(minimal("m"))
        assert error.code() == grpc.StatusCode.INTERNAL
        assert error.details() == "Internal Server Error"
        time.sleep(0.2)
        log = "".join(registry.output)
        assert "Traceback" in log and "no such table: models" in log
    finally:
        registry.stop()


def test_locked_database_is_unavailable_not_a_hang(tmp_path: Path):
    path = tmp_path / "r.db"
    registry = start_registry(f"sqlite:///{path}")
    try:
        with grpc.insecure_channel(registry.grpc_target) as channel:
            client = Client(channel, ADMIN_KEY)
            client.create(minimal("warm"))  # caches the key
            blocker = sqlite3.connect(path, isolation_level=None)
            blocker.execute("BEGIN EXCLUSIVE")
            try:
                started = time.monotonic()
                error = client.create_error(minimal("blocked"), timeout=30)
                waited = time.monotonic() - started
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert error.details() == "Service Unavailable"
            assert waited < 20
            assert client.create(minimal("after")).id == "after"  # recovers by itself
    finally:
        registry.stop()


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_signals_stop_the_server_cleanly(tmp_path: Path, sig: str):
    import signal

    registry = start_registry(f"sqlite:///{tmp_path / 'r.db'}")
    assert registry.stop(getattr(signal, sig)) == 0
    assert "stopped" in "".join(registry.output)
