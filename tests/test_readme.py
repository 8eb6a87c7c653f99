"""The README's walkthroughs are the commands these tests run."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from support import ADMIN_KEY, BIN, Registry, start_registry

README = Path(__file__).resolve().parent.parent / "README.md"


def walkthrough(name: str) -> list[str]:
    """The commands of the sh block after `<!-- walkthrough: NAME ...-->`."""
    text = README.read_text()
    match = re.search(rf"<!-- walkthrough: {name}\b.*?-->\n```sh\n(.*?)```", text, re.S)
    assert match, f"README has no {name} walkthrough"
    commands, pending = [], ""
    for line in match.group(1).splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line + "\n"
        if pending.count("'") % 2 == 0 and not line.endswith("\\"):
            commands.append(pending)
            pending = ""
    assert not pending
    return commands


def run(command: str, registry: Registry) -> subprocess.CompletedProcess[str]:
    command = command.replace("localhost:50051", registry.grpc_target)
    if registry.http_port is not None:
        command = command.replace("localhost:8080", f"127.0.0.1:{registry.http_port}")
    env = {**os.environ, "MODEL_REGISTRY_KEY": ADMIN_KEY, "PATH": f"{BIN}:{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.fixture
def fresh_registry(database_url_factory):
    registry = start_registry(database_url_factory())
    yield registry
    registry.stop()


def test_grpcurl_walkthrough(fresh_registry: Registry):
    listing, describe, create, duplicate, health = walkthrough("grpcurl")
    assert all(c.lstrip().startswith("grpcurl ") for c in (listing, describe, create, duplicate))

    result = run(listing, fresh_registry)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "modelregistry.v1.GroupService",
        "modelregistry.v1.ModelService",
    ]

    result = run(describe, fresh_registry)
    assert result.returncode == 0, result.stderr
    signature = "( .modelregistry.v1.CreateModelRequest ) returns ( .modelregistry.v1.Model )"
    assert f"rpc CreateModel {signature}" in result.stdout

    result = run(create, fresh_registry)
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["id"] == "my-custom-gpt4"
    assert created["user_id"] == "admin"
    assert created["params"]["max_tokens"] == 2000
    assert created["meta"]["profile_image_url"] == "/static/favicon.png"
    assert created["access_grants"] == [
        {"access_type": "group", "access_id": "developers", "permission": "read"}
    ]

    result = run(duplicate, fresh_registry)
    assert result.returncode != 0
    assert "Code: AlreadyExists" in result.stderr
    assert "Message: Model ID is already taken" in result.stderr

    result = run(health, fresh_registry)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"status": "SERVING"}


def test_curl_walkthrough(database_url_factory):
    registry = start_registry(database_url_factory(), http=True)
    try:
        create, duplicate = walkthrough("curl")
        assert create.lstrip().startswith("curl ") and duplicate.lstrip().startswith("curl ")

        result = run(create.rstrip() + " -w '\\n%{http_code}'", registry)
        body, status = result.stdout.rsplit("\n", 1)
        assert status == "200", result
        created = json.loads(body)
        assert created["id"] == "my-http-model" and created["user_id"] == "admin"
        assert created["params"] == {"max_tokens": 2000} and type(created["created_at"]) is int

        result = run(duplicate.rstrip() + " -w '\\n%{http_code}'", registry)
        assert result.stdout == '{"detail":"Model ID is already taken"}\n400'
    finally:
        assert registry.stop() == 0


def test_registry_grpcurl_walkthrough(fresh_registry: Registry):
    create, get, search, update, toggle, share, group, member, delete = walkthrough(
        "registry-grpcurl"
    )
    results = [run(command, fresh_registry) for command in (create, get, search, update)]
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    created, got, found, updated = (json.loads(r.stdout) for r in results)
    assert created["id"] == got["id"] == "reviewer"
    assert got["write_access"] is True and got["params"] == {"temperature": 0.2}
    assert [item["id"] for item in found["items"]] == ["reviewer"] and found["total"] == "1"
    assert updated["params"] == {"temperature": 0.1} and updated["name"] == "Code reviewer"

    toggled = json.loads(run(toggle, fresh_registry).stdout)
    assert toggled["is_active"] is False
    shared = json.loads(run(share, fresh_registry).stdout)
    assert shared["access_grants"] == [
        {"access_type": "user", "access_id": "*", "permission": "read"}
    ]
    made = json.loads(run(group, fresh_registry).stdout)
    assert made["id"] == made["name"] == "developers"
    joined = json.loads(run(member, fresh_registry).stdout)
    assert joined["member_ids"] == ["admin"]
    result = run(delete, fresh_registry)
    assert result.returncode == 0 and json.loads(result.stdout) is True
    gone = run(get, fresh_registry)
    assert "Code: NotFound" in gone.stderr and "Message: Model not found" in gone.stderr


def test_registry_curl_walkthrough(database_url_factory):
    registry = start_registry(database_url_factory(), http=True)
    try:
        create, get, search, update, toggle, share, delete, gone = walkthrough("registry-curl")
        outputs = [json.loads(run(c, registry).stdout) for c in (create, get, search, update)]
        created, got, found, updated = outputs
        assert created["id"] == got["id"] == "summarizer" and got["write_access"] is True
        assert [item["id"] for item in found["items"]] == ["summarizer"] and found["total"] == 1
        assert updated["name"] == "Summarizer v2" and updated["params"] == {"max_tokens": 800}
        assert json.loads(run(toggle, registry).stdout)["is_active"] is False
        assert json.loads(run(share, registry).stdout)["access_grants"] == [
            {"access_type": "group", "access_id": "writers", "permission": "write"}
        ]
        assert run(delete, registry).stdout == "true"
        result = run(gone.rstrip() + " -w '\\n%{http_code}'", registry)
        assert result.stdout == '{"detail":"Model not found"}\n404'
    finally:
        assert registry.stop() == 0


def test_metrics_walkthrough_and_example(tmp_path: Path):
    registry = start_registry(f"sqlite:///{tmp_path / 'r.db'}", extra_args=("--metrics-port", "0"))
    try:
        port = re.search(r"Prometheus metrics on http://\S+:(\d+)/", "".join(registry.output))[1]
        # As in the example: two creates, the same id again and a GetModel.
        _, _, create, duplicate, _ = walkthrough("grpcurl")
        another, get = walkthrough("registry-grpcurl")[:2]
        for command in (create, duplicate, another, get):
            run(command, registry)
        [scrape] = walkthrough("metrics")
        result = run(scrape.replace("localhost:9464", f"127.0.0.1:{port}"), registry)
    finally:
        assert registry.stop() == 0
    assert result.returncode == 0, result.stderr
    example = re.search(r"<!-- metrics example .*?-->\n```text\n(.*?)```", README.read_text(), re.S)
    assert example
    assert result.stdout.splitlines() == example[1].splitlines()
