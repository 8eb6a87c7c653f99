"""The README's walkthroughs are the commands these tests run."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import grpc
import pytest

from postgres import POSTGRES_BIN_PATH, PostgresServer
from registry_support import Caller, add_users
from support import ADMIN_KEY, BIN, MODEL_REGISTRY, Registry, query, start_registry

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
    create, get, search, by_tag, tags, update, toggle, share, group, member, delete = walkthrough(
        "registry-grpcurl"
    )
    commands = (create, get, search, by_tag, tags, update)
    results = [run(command, fresh_registry) for command in commands]
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    created, got, found, tagged, in_use, updated = (json.loads(r.stdout) for r in results)
    assert created["id"] == got["id"] == "reviewer"
    assert got["write_access"] is True and got["params"] == {"temperature": 0.2}
    assert [item["id"] for item in found["items"]] == ["reviewer"] and found["total"] == "1"
    assert [item["id"] for item in tagged["items"]] == ["reviewer"]
    assert in_use == {"tags": ["Code"]}
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
        create, get, search, by_tag, tags, update, toggle, share, delete, gone = walkthrough(
            "registry-curl"
        )
        commands = (create, get, search, by_tag, tags, update)
        outputs = [json.loads(run(c, registry).stdout) for c in commands]
        created, got, found, tagged, in_use, updated = outputs
        assert created["id"] == got["id"] == "summarizer" and got["write_access"] is True
        assert [item["id"] for item in found["items"]] == ["summarizer"] and found["total"] == 1
        assert [item["id"] for item in tagged["items"]] == ["summarizer"]
        assert in_use == ["Writing"]
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


def test_postgresql_walkthrough(request: pytest.FixtureRequest):
    """The role, the database and the first commands, as one shell session,
    on a PostgreSQL server of its own (a role belongs to the whole server)."""
    if request.config.getoption("--db") == "sqlite":
        pytest.skip("a PostgreSQL walkthrough (--db sqlite)")
    commands = walkthrough("postgresql")
    assert commands[0].startswith("sudo -u postgres psql ")
    with PostgresServer.temporary() as server:
        script = "set -euo pipefail\n" + "".join(commands)
        # The tests' server: its superuser is reached over TCP, not by sudo.
        script = script.replace("sudo -u postgres ", "")
        script = script.replace("localhost:5432", f"127.0.0.1:{server.port}")
        script = script.replace("python3 tasks.py cli", MODEL_REGISTRY)
        env = {
            **os.environ,
            "PGHOST": "127.0.0.1",
            "PGPORT": str(server.port),
            "PGUSER": "postgres",
            "PATH": f"{POSTGRES_BIN_PATH}:{os.environ['PATH']}",
        }
        env.pop("MODEL_REGISTRY_DATABASE_URL", None)
        result = subprocess.run(
            ["bash", "-c", script], capture_output=True, text=True, env=env, timeout=120
        )
        assert result.returncode == 0, result.stderr
        role, database, migrated, created, listed = result.stdout.splitlines()
        assert (role, database) == ("CREATE ROLE", "CREATE DATABASE")
        assert re.fullmatch(r"migrated the database from empty to \d{4}", migrated)
        assert created == "created user alice (role user, may create models: False)"
        assert re.fullmatch(
            r"alice\tuser\tcan_create_models=false\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", listed
        )
        # The tables were made by, and belong to, the role the URL names.
        tables = query(
            server.url("registry"),
            "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'",
        )
        assert "models" in {name for name, _ in tables}
        assert {owner for _, owner in tables} == {"registry"}


def test_versions_walkthrough(database_url_factory):
    registry = start_registry(database_url_factory(), http=True)
    try:
        commands = walkthrough("versions")
        create, update, history, first, one, restore, delete, grpc_history = commands
        assert first.startswith("FIRST=$(")
        outputs = [json.loads(run(c, registry).stdout) for c in (create, update, history)]
        created, updated, entries = outputs
        assert [e["commit_message"] for e in entries] == ["Warmer", "First try"]
        assert [e["id"] for e in entries] == [updated["version_id"], created["version_id"]]
        assert entries[0]["parent_id"] == created["version_id"] and entries[1]["parent_id"] is None

        # Each later command runs after the FIRST=$(...) line, as in one shell.
        version = json.loads(run(first + one, registry).stdout)
        assert version["snapshot"]["params"] == {"temperature": 0.3}
        restored = json.loads(run(first + restore, registry).stdout)
        assert restored["params"] == {"temperature": 0.3}
        assert restored["version_id"] not in (created["version_id"], updated["version_id"])
        assert run(first + delete, registry).stdout == "true"
        page = json.loads(run(grpc_history, registry).stdout)
        assert [(v["number"], v.get("commit_message")) for v in page["versions"]] == [
            ("3", "Restored version 1"),
            ("2", "Warmer"),
        ]
        assert "next_page_token" not in page  # the first version is gone: no more
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
