"""The Python client (modelregistry.client) against the real server: every
RPC, the typed errors with their google.rpc details, retries on UNAVAILABLE,
the deadline, and the README's example."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import sysconfig
import threading
import uuid
import venv
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2

from modelregistry.client import (
    AlreadyExists,
    Backoff,
    Client,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)

from ports import free_port
from registry_support import add_users
from spec_examples import minimal
from support import ADMIN_KEY, Registry, database_locked, query, start_registry

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
QUICK = Backoff(initial=0.01, maximum=0.05)  # retries in a test need not wait long


@pytest.fixture
def admin(registry: Registry) -> Iterator[Client]:
    with Client(registry.grpc_target, api_key=ADMIN_KEY, timeout=30) as client:
        yield client


def error_info(reason: str) -> error_details_pb2.ErrorInfo:
    return error_details_pb2.ErrorInfo(reason=reason, domain="modelregistry.v1")


def plain(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


class RetryLog(logging.Handler):
    """The client's retry log lines, with an event set on the first."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.first = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.first.set()


@pytest.fixture
def retry_log() -> Iterator[RetryLog]:
    logger = logging.getLogger("modelregistry.client")
    handler, level = RetryLog(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


# -- every RPC ----------------------------------------------------------------------


def test_model_rpcs_round_trip(admin: Client, unique_id: str):
    created = admin.create_model(
        minimal(unique_id, base_model_id="gpt-4", params={"temperature": 0.7, "max_tokens": 2000})
    )
    assert (created.id, created.user_id, created.base_model_id) == (unique_id, "admin", "gpt-4")
    assert plain(created.params) == {"temperature": 0.7, "max_tokens": 2000.0}
    assert created.meta["profile_image_url"] == "/static/favicon.png"

    got = admin.get_model(unique_id)
    assert got.write_access and got.created_at == created.created_at

    [listed] = admin.list_models(query=unique_id, page_size=5).items
    assert listed.id == unique_id

    updated = admin.update_model({"id": unique_id, "name": "Renamed"}, update_mask=["name"])
    assert updated.name == "Renamed" and plain(updated.params) == plain(created.params)

    assert admin.toggle_model(unique_id).is_active is False
    assert admin.toggle_model(unique_id).is_active is True

    grant = {"access_type": "user", "access_id": "*", "permission": "read"}
    shared = admin.update_model_access(unique_id, [grant])
    assert [plain(g) for g in shared.access_grants] == [grant]

    assert admin.delete_model(unique_id) is True
    with pytest.raises(NotFound) as caught:
        admin.get_model(unique_id)
    assert (caught.value.message, caught.value.reason) == ("Model not found", "MODEL_NOT_FOUND")


def test_version_rpcs_round_trip(admin: Client, unique_id: str):
    first = admin.create_model(minimal(unique_id, name="One"))
    second = admin.update_model(
        {"id": unique_id, "name": "Two", "commit_message": "renamed"}, update_mask=["name"]
    )
    versions = list(admin.iter_model_versions(unique_id, page_size=1))
    assert [(v.id, v.number, v.commit_message) for v in versions] == [
        (second.version_id, 2, "renamed"),
        (first.version_id, 1, ""),
    ]
    assert admin.list_model_versions(unique_id, page=1).versions[0].id == second.version_id
    assert admin.get_model_version(unique_id, first.version_id).snapshot.name == "One"

    restored = admin.restore_model_version(unique_id, first.version_id, "back")
    assert restored.name == "One" and restored.version_id not in (
        first.version_id,
        second.version_id,
    )
    assert admin.delete_model_version(unique_id, second.version_id) is True
    with pytest.raises(NotFound) as caught:
        admin.get_model_version(unique_id, second.version_id)
    assert (caught.value.message, caught.value.reason) == (
        "Model version not found",
        "MODEL_VERSION_NOT_FOUND",
    )
    with pytest.raises(FailedPrecondition) as current:
        admin.delete_model_version(unique_id, restored.version_id)
    assert current.value.message == "Cannot delete the current version"


def test_group_rpcs_round_trip(admin: Client, unique_id: str):
    made = admin.create_group(unique_id, "Readers")
    assert (made.id, made.name, list(made.member_ids)) == (unique_id, "Readers", [])
    assert list(admin.add_group_member(unique_id, "admin").member_ids) == ["admin"]
    [listed] = [group for group in admin.list_groups().groups if group.id == unique_id]
    assert list(listed.member_ids) == ["admin"]
    assert list(admin.remove_group_member(unique_id, "admin").member_ids) == []
    assert admin.delete_group(unique_id) is None
    with pytest.raises(NotFound) as caught:
        admin.delete_group(unique_id)
    assert caught.value.details == [error_info("GROUP_NOT_FOUND")]
    assert caught.value.message == "Group not found"


def test_iter_models_follows_the_page_tokens(admin: Client, unique_id: str):
    word = "pages" + uuid.uuid4().hex[:12]
    ids = [f"{unique_id}-{n}" for n in range(5)]
    for model_id in ids:
        admin.create_model(minimal(model_id, name=f"{word} model"))
    first = admin.list_models(query=word, page_size=2, order_by="name")
    assert len(first.items) == 2 and first.next_page_token and first.total == 5
    found = [model.id for model in admin.iter_models(query=word, page_size=2, order_by="name")]
    assert sorted(found) == sorted(ids) and len(found) == 5


def test_tags_and_the_tag_filter(admin: Client, unique_id: str):
    tag = "Tag" + uuid.uuid4().hex[:12]
    tagged = {**minimal(unique_id), "meta": {"tags": [{"name": tag}]}}
    admin.create_model(tagged)
    admin.create_model(minimal(unique_id + "-untagged"))
    assert tag in admin.list_model_tags()
    assert [m.id for m in admin.iter_models(tag=tag.lower())] == [unique_id]
    assert [m.id for m in admin.list_models(tag=tag.upper()).items] == [unique_id]


# -- typed errors ---------------------------------------------------------------------


def test_errors_are_typed_with_code_message_and_details(
    admin: Client, registry: Registry, unique_id: str
):
    admin.create_model(minimal(unique_id))
    with pytest.raises(AlreadyExists) as taken:
        admin.create_model(minimal(unique_id))
    error = taken.value
    assert (error.code, error.message) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "Model ID is already taken",
    )
    assert error.details == [error_info("MODEL_ID_TAKEN")] and error.attempts == 1
    assert str(error) == "ALREADY_EXISTS: Model ID is already taken"

    with pytest.raises(InvalidArgument) as invalid:
        admin.create_model({"id": unique_id + "-bad", "name": "", "params": {}, "meta": {}})
    assert invalid.value.reason == "INVALID_ARGUMENT"
    assert invalid.value.field_violations == [("name", "name is required and must not be empty")]
    assert invalid.value.message == "name is required and must not be empty"

    with pytest.raises(NotFound) as missing:
        admin.update_model(minimal(unique_id + "-missing"))
    assert missing.value.reason == "MODEL_NOT_FOUND"

    user = f"reader-{unique_id}"
    keys = add_users(registry, {user: {}})
    for client in (admin.with_options(api_key=None), admin.with_options(api_key="mr-unknown")):
        with pytest.raises(Unauthenticated) as unknown:
            client.get_model(unique_id)
        assert (unknown.value.message, unknown.value.reason) == ("Unauthorized", "UNAUTHENTICATED")
    with pytest.raises(PermissionDenied) as denied:
        admin.with_options(api_key=keys[user]).create_model(minimal(unique_id + "-denied"))
    assert (denied.value.message, denied.value.reason) == ("Unauthorized", "PERMISSION_DENIED")


def test_every_bad_field_is_a_field_violation(admin: Client, unique_id: str):
    grants = [{"access_type": "user", "access_id": "u1", "permission": "read"}, {}]
    with pytest.raises(InvalidArgument) as caught:
        admin.create_model(minimal(unique_id, access_grants=grants))
    assert [violation.field for violation in caught.value.field_violations] == [
        "access_grants[1].access_type",
        "access_grants[1].access_id",
        "access_grants[1].permission",
    ]


def test_a_message_over_the_limit_is_resource_exhausted(admin: Client, unique_id: str):
    big = minimal(unique_id, meta={"description": "x" * (5 * 1024 * 1024)})
    with pytest.raises(ResourceExhausted) as caught:
        admin.create_model(big)
    assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and caught.value.attempts == 1


# -- retries and the deadline -----------------------------------------------------


def test_a_stopped_server_is_unavailable_after_every_retry(retry_log: RetryLog):
    with Client(f"127.0.0.1:{free_port()}", api_key=ADMIN_KEY, retries=3, backoff=QUICK) as client:
        with pytest.raises(Unavailable) as caught:
            client.get_model("anything")
        assert caught.value.attempts == 4
        assert len(retry_log.lines) == 3
        assert all(line.startswith("GetModelRequest: UNAVAILABLE: ") for line in retry_log.lines)
        assert ADMIN_KEY not in "".join(retry_log.lines)

        with pytest.raises(Unavailable) as once:
            client.toggle_model("anything")  # never retried: a retry could flip it back
        assert once.value.attempts == 1 and len(retry_log.lines) == 3


def test_a_call_made_before_the_server_starts_succeeds_once_it_is_up(
    tmp_path: Path, retry_log: RetryLog
):
    port = free_port()
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    client = Client(
        f"127.0.0.1:{port}", api_key=ADMIN_KEY, timeout=120, retries=1000, backoff=QUICK
    )
    with client, ThreadPoolExecutor(1) as pool:
        creating = pool.submit(client.create_model, minimal("early"))
        assert retry_log.first.wait(30), "no attempt failed"
        registry = start_registry(url, extra_args=("--port", str(port)))
        try:
            created = creating.result(timeout=60)
            assert created.id == "early" and created.user_id == "admin"
            assert [row.id for row in query(url, "SELECT id FROM models")] == ["early"]
            assert len(retry_log.lines) >= 1
        finally:
            assert registry.stop() == 0


def test_an_unavailable_database_is_retried_until_it_is_back(
    admin: Client, registry: Registry, unique_id: str, retry_log: RetryLog
):
    admin.create_model(minimal(unique_id))  # the key is cached: only the create waits
    retrying = admin.with_options(timeout=60, retries=10, backoff=QUICK)
    with ThreadPoolExecutor(1) as pool:
        with database_locked(registry.database_url):
            with pytest.raises(Unavailable) as caught:
                admin.with_options(retries=0).create_model(minimal(unique_id + "-never"))
            assert caught.value.message == "Service Unavailable"
            assert caught.value.details == [error_info("DATABASE_UNAVAILABLE")]
            assert not retry_log.lines
            creating = pool.submit(retrying.create_model, minimal(unique_id + "-later"))
            assert retry_log.first.wait(30), "the locked database did not fail a create"
        created = creating.result(timeout=60)
    assert created.id == unique_id + "-later"
    first_retry = "CreateModelRequest: UNAVAILABLE: Service Unavailable (attempt 1 of 11), retrying"
    assert retry_log.lines[0].startswith(first_retry)


def test_the_deadline_ends_a_call_the_server_has_not_answered(
    admin: Client, registry: Registry, unique_id: str
):
    admin.create_model(minimal(unique_id))  # the key is cached: only the create waits
    hurried = admin.with_options(timeout=0.5, retries=10)
    with database_locked(registry.database_url):
        with pytest.raises(DeadlineExceeded) as caught:
            hurried.create_model(minimal(unique_id + "-late"))
    assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert caught.value.attempts == 1  # DEADLINE_EXCEEDED is not retried


# -- the README -----------------------------------------------------------------------


def readme_example() -> str:
    """The python block after `<!-- example: python-client ... -->`."""
    match = re.search(
        r"<!-- example: python-client\b.*?-->\n```python\n(.*?)```", README.read_text(), re.S
    )
    assert match, "README has no python-client example"
    return match.group(1)


def test_the_readme_example_prints_what_its_comments_say(
    database_url_factory: Callable[[], str], tmp_path: Path
):
    example = readme_example()
    expected = [line.rsplit("  # ", 1)[1] for line in example.splitlines() if "print(" in line]
    registry = start_registry(database_url_factory())
    try:
        result = subprocess.run(
            [sys.executable, "-c", example.replace("localhost:50051", registry.grpc_target)],
            capture_output=True,
            text=True,
            env={**os.environ, "MODEL_REGISTRY_KEY": ADMIN_KEY},
            cwd=tmp_path,
            timeout=60,
        )
    finally:
        assert registry.stop() == 0
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == expected


# -- the installed package ----------------------------------------------------------

USER_CODE = """
from modelregistry.client import Client, NotFound


def is_active(client: Client, model_id: str) -> bool:
    try:
        return client.get_model(model_id).is_active
    except NotFound as error:
        return error.reason == "MODEL_NOT_FOUND"


count: int = Client("localhost:50051").get_model("x")
"""


def test_an_installed_wheel_is_typed_for_its_users(tmp_path: Path):
    """py.typed ships: mypy --strict reads the client's types from a plain
    install, so a user's mistake is found (and only that)."""
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=False)
    python = environment / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # Dependencies and their stubs from the test's own environment.
    (Path(site) / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    install = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    install += ["--no-build-isolation", "--target", site, str(ROOT)]
    subprocess.run(install, check=True, capture_output=True, timeout=300)
    (tmp_path / "use.py").write_text(USER_CODE)
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--python-executable", str(python), "use.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert checked.stdout.splitlines() == [
        'use.py:12: error: Incompatible types in assignment (expression has type "Model",'
        ' variable has type "int")  [assignment]',
        "Found 1 error in 1 file (checked 1 source file)",
    ]
