"""The README's walkthroughs are the commands these tests run."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import grpc
import pytest

from registry_support import Caller, add_users
from support import ADMIN_KEY, BIN, Registry, start_registry

README = Path(__file__).resolve().parent.parent / "README.md"
OPEN_WEBUI_EXPORT = (
    Path(__file__).resolve().parent / "fixtures" / "openwebui-0.12.4-models-export.json"
)


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


def run(
    command: str, registry: Registry, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`command` against `registry`; `python3 tasks.py cli` is the command
    it runs (tasks.py runs it from the project root, here `cwd`) on the
    registry's database."""
    command = command.replace("localhost:50051", registry.grpc_target)
    if registry.http_port is not None:
        command = command.replace("localhost:8080", f"127.0.0.1:{registry.http_port}")
    command = command.replace("python3 tasks.py cli", str(BIN / "model-registry"))
    env = {
        **os.environ,
        "MODEL_REGISTRY_KEY": ADMIN_KEY,
        "MODEL_REGISTRY_DATABASE_URL": registry.database_url,
        "PATH": f"{BIN}:{os.environ['PATH']}",
    }
    return subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, env=env, timeout=60, cwd=cwd
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


def test_transfer_curl_walkthrough(database_url_factory, tmp_path: Path):
    registry = start_registry(database_url_factory(), http=True)
    try:
        create, export, again, dry_run = walkthrough("transfer-curl")
        assert json.loads(run(create, registry, tmp_path).stdout)["id"] == "translator"
        assert run(export, registry, tmp_path).stdout == ""
        exported = json.loads((tmp_path / "exported.json").read_text())
        assert [m["id"] for m in exported] == ["translator"]
        assert exported[0]["params"] == {"temperature": 0.3} and "version_id" in exported[0]
        assert json.loads(run(again, registry, tmp_path).stdout) == {
            "created": 0,
            "updated": 0,
            "unchanged": 1,
            "skipped": 0,
            "failed": 0,
            "results": [{"index": 0, "id": "translator", "outcome": "unchanged", "reason": ""}],
        }
        assert json.loads(run(dry_run, registry, tmp_path).stdout) == {
            "created": 0,
            "updated": 0,
            "unchanged": 0,
            "skipped": 1,
            "failed": 1,
            "results": [
                {
                    "index": 0,
                    "id": "translator",
                    "outcome": "skipped",
                    "reason": "the model exists with other content",
                },
                {
                    "index": 1,
                    "id": "no name",
                    "outcome": "failed",
                    "reason": "id must not contain whitespace or control characters;"
                    " name is required and must not be empty;"
                    " params.max_tokens must be a positive integer",
                },
            ],
        }
    finally:
        assert registry.stop() == 0


def test_transfer_cli_walkthrough(fresh_registry: Registry, tmp_path: Path):
    export, export_some, make_admin, dry_run, load, open_webui = walkthrough("transfer-cli")
    add_users(fresh_registry, {"alice": {}})
    with grpc.insecure_channel(fresh_registry.grpc_target) as channel:
        admin = Caller(fresh_registry, channel, ADMIN_KEY)
        grant = {"access_type": "user", "access_id": "alice", "permission": "read"}
        admin.create(
            {
                "id": "translator",
                "name": "Translator",
                "params": {"top_p": 0.5},
                "meta": {},
                "access_grants": [grant],
            }
        )
        admin.create({"id": "summarizer", "name": "Summarizer", "params": {}, "meta": {}})
    (tmp_path / "openwebui-models.json").write_text(OPEN_WEBUI_EXPORT.read_text())

    results = [run(c, fresh_registry, tmp_path) for c in (export, export_some, make_admin)]
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
    everything = json.loads((tmp_path / "models.json").read_text())
    assert [m["id"] for m in everything["models"]] == ["summarizer", "translator"]
    some = json.loads((tmp_path / "some.json").read_text())["models"]
    assert [(m["id"], m["params"]) for m in some] == [("translator", {})]  # alice only reads it

    planned = run(dry_run, fresh_registry, tmp_path)
    assert planned.stdout.splitlines()[:2] == [
        'record 0 "summarizer": would be created',
        'record 1 "translator": would be created',
    ]
    assert planned.stdout.splitlines()[-1].startswith(
        "dry run, nothing written: 2 records: 2 created, 0 updated,"
    )
    loaded = run(load, fresh_registry, tmp_path)
    assert loaded.returncode == 0 and loaded.stdout.startswith("2 records: 2 created, 0 updated,")
    moved = run(open_webui, fresh_registry, tmp_path)
    assert moved.returncode == 0 and moved.stdout.startswith("4 records: 4 created, 0 updated,")
    copy = f"sqlite:///{tmp_path / 'copy.db'}"
    copied = subprocess.run(
        [str(BIN / "model-registry"), "--database-url", copy, "export"],
        capture_output=True,
        text=True,
    )
    assert len(json.loads(copied.stdout)["models"]) == 6
