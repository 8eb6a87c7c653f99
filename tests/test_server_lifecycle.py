"""The server as an operator runs it: restarts, outages, failures, keys; on
every database backend."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from modelregistry.client import Client as RegistryClient
from modelregistry.client import Unauthenticated, Unavailable

from spec_examples import minimal
from support import (
    ADMIN_KEY,
    MODEL_REGISTRY,
    Client,
    database_locked,
    execute,
    http_request,
    is_sqlite,
    missing_models_table_message,
    query,
    start_registry,
)

NewDatabase = Callable[[], str]


def test_models_survive_a_restart_and_the_admin_key_is_made_once(
    database_url_factory: NewDatabase,
):
    url = database_url_factory()
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
    assert [tuple(r) for r in query(url, "SELECT name FROM models")] == [("before restart",)]


def test_keys_are_stored_only_as_hashes(database_url_factory: NewDatabase):
    url = database_url_factory()
    registry = start_registry(url)
    try:
        user_key = registry.add_user("alice", can_create=True)
    finally:
        registry.stop()
    if is_sqlite(url):  # every byte of the database files
        path = Path(url.removeprefix("sqlite:///"))
        files = [path, path.with_name(path.name + "-wal")]
        stored = b"".join(f.read_bytes() for f in files if f.exists())
    else:  # every value of every table
        tables = ["users", "api_keys", "models", "alembic_version"]
        stored = repr([query(url, f"SELECT * FROM {t}") for t in tables]).encode()
    assert ADMIN_KEY.encode() not in stored
    assert user_key.encode() not in stored
    hashes = query(url, "SELECT key_hash FROM api_keys")
    assert len(hashes) == 2 and all(len(h) == 64 for (h,) in hashes)


def test_revocation_takes_effect_within_the_cache_lifetime(database_url_factory: NewDatabase):
    registry = start_registry(database_url_factory(), extra_args=("--auth-cache-seconds", "0.5"))
    try:
        key = registry.add_user("bob", can_create=True)
        with RegistryClient(registry.grpc_target, api_key=key) as client:
            client.create_model(minimal("bob-1"))  # the key is now cached
            key_id = registry.cli("keys", "list", "--user", "bob").split()[0]
            registry.cli("keys", "revoke", key_id)
            time.sleep(0.6)
            with pytest.raises(Unauthenticated) as caught:
                client.create_model(minimal("bob-2"))
            assert caught.value.message == "Unauthorized"
    finally:
        assert registry.stop() == 0


def test_unexpected_failure_is_internal_with_a_generic_message_and_a_logged_trace(
    database_url_factory: NewDatabase,
):
    url = database_url_factory()
    registry = start_registry(url)
    try:
        execute(url, "ALTER TABLE models RENAME TO models_elsewhere")  # damage the schema
        with grpc.insecure_channel(registry.grpc_target) as channel:
            error = Client(channel, ADMIN_KEY).create_error(minimal("m"))
        assert error.code() == grpc.StatusCode.INTERNAL
        assert error.details() == "Internal Server Error"
        deadline = time.monotonic() + 60  # the log arrives through a pipe
        while missing_models_table_message(url) not in "".join(registry.output):
            assert time.monotonic() < deadline, "".join(registry.output)
            time.sleep(0.05)
        assert "Traceback" in "".join(registry.output)
    finally:
        registry.stop()


def test_locked_database_is_unavailable_not_a_hang(database_url_factory: NewDatabase):
    url = database_url_factory()
    registry = start_registry(url)
    try:
        target = registry.grpc_target
        with RegistryClient(target, api_key=ADMIN_KEY, timeout=30, retries=0) as client:
            client.create_model(minimal("warm"))  # caches the key
            with database_locked(url), pytest.raises(Unavailable) as caught:
                # Not a hang: the server gives up (busy/lock timeout) before
                # the client's deadline would end the call.
                client.create_model(minimal("blocked"))
            assert caught.value.message == "Service Unavailable"
            assert client.create_model(minimal("after")).id == "after"  # recovers by itself
    finally:
        registry.stop()


def test_group_calls_on_a_locked_database_are_unavailable(database_url_factory: NewDatabase):
    registry = start_registry(database_url_factory())
    try:
        with RegistryClient(
            registry.grpc_target, api_key=ADMIN_KEY, timeout=30, retries=0
        ) as client:
            client.list_groups()  # caches the key
            locked = database_locked(registry.database_url, "groups")
            with locked, pytest.raises(Unavailable) as caught:
                client.create_group("locked-out")
            assert (caught.value.message, caught.value.reason) == (
                "Service Unavailable",
                "DATABASE_UNAVAILABLE",
            )
            assert client.create_group("after").id == "after"
    finally:
        registry.stop()


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_signals_stop_the_server_cleanly(database_url_factory: NewDatabase, sig: str):
    import signal

    registry = start_registry(database_url_factory())
    assert registry.stop(getattr(signal, sig)) == 0
    assert "stopped" in "".join(registry.output)


def test_no_key_or_authorization_value_is_logged_even_at_debug(
    database_url_factory: Callable[[], str],
):
    registry = start_registry(
        database_url_factory(), http=True, env={"MODEL_REGISTRY_LOG_LEVEL": "debug"}
    )
    try:
        user_key = registry.add_user("carol", can_create=True)
        wrong = "mr-wrong-key-that-must-never-appear-in-any-log-line"
        for key in (ADMIN_KEY, user_key, wrong):
            http_request(registry.http_port, "POST", "/api/models/create", minimal("m"), key=key)
            with grpc.insecure_channel(registry.grpc_target) as channel:
                try:
                    Client(channel, key).create(minimal("m"))
                except grpc.RpcError:
                    pass
    finally:
        assert registry.stop() == 0
    log = "".join(registry.output)
    assert " DEBUG " in log  # debug logging was on
    for secret in (ADMIN_KEY, user_key, wrong, "Bearer "):
        assert secret not in log


def test_an_unopenable_sqlite_file_is_a_clear_error_not_a_hang(tmp_path: Path):
    missing = tmp_path / "no-such-folder" / "r.db"
    result = subprocess.run(
        [MODEL_REGISTRY, "--database-url", f"sqlite:///{missing}", "serve", "--no-http"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "database unavailable" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        (("--envoy-workers", "0"), "--envoy-workers must be at least 1"),
        (("--replicas", "0"), "--replicas must be at least 1"),
    ],
)
def test_a_count_below_one_is_refused_with_a_clear_message(
    tmp_path: Path, flag: tuple[str, str], message: str
):
    result = subprocess.run(
        [MODEL_REGISTRY, "--database-url", f"sqlite:///{tmp_path / 'r.db'}", "serve", *flag],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"model-registry: {message}"
