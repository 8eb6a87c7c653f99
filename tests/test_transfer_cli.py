"""`model-registry export` and `model-registry import`, run as the commands
they are, on SQLite and PostgreSQL: a round trip into an empty database,
what they print for each record, the files they refuse, and a large file in
batches with its progress bar. 100,000 models, timed, are a row of the
benchmark (`python3 tasks.py bench --rows import`): about 20 s of one
machine, too long for every test run."""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import pty
import re
import struct
import subprocess
import termios
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from registry_support import Caller, api_json
from support import ADMIN_KEY, MODEL_REGISTRY, Registry, query

FIXTURES = Path(__file__).resolve().parent / "fixtures"
OPEN_WEBUI_EXPORT = FIXTURES / "openwebui-0.12.4-models-export.json"
SUMMARY = re.compile(
    r"(dry run, nothing written: )?(\d+) records: (\d+) created, (\d+) updated,"
    r" (\d+) unchanged, (\d+) skipped, (\d+) failed \((\d+\.\d) s\)"
)
_ids = itertools.count()


def run(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MODEL_REGISTRY, "--database-url", url, *args], capture_output=True, text=True, timeout=300
    )


def empty_database(database_url_factory: Callable[[], str]) -> str:
    """A new database with its schema and the user `admin`, nothing else."""
    url = database_url_factory()
    made = run(url, "users", "create", "admin", "--role", "admin")
    assert made.returncode == 0, made.stderr
    return url


def export(url: str, *args: str) -> dict[str, Any]:
    done = run(url, "export", *args)
    assert (done.returncode, done.stderr) == (0, "")
    return json.loads(done.stdout)


def counts(line: str) -> tuple[Any, ...]:
    """An import's summary line: dry run?, records, created, updated,
    unchanged, skipped, failed (the seconds are left out)."""
    found = SUMMARY.fullmatch(line)
    assert found, line
    return (bool(found[1]), *map(int, found.groups()[1:7]))


def seconds(line: str) -> float:
    found = SUMMARY.fullmatch(line)
    assert found, line
    return float(found[8])


def model(model_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": model_id, "name": model_id.title(), "params": {}, "meta": {}, **fields}


def without_versions(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in m.items() if k != "version_id"} for m in models]


@pytest.fixture
def admin(registry: Registry, channel: grpc.Channel) -> Caller:
    return Caller(registry, channel, ADMIN_KEY)


def test_an_export_imported_into_an_empty_database_exports_the_same(
    registry: Registry, admin: Caller, database_url_factory: Callable[[], str], tmp_path: Path
):
    ids = sorted(f"cli-trip-{next(_ids)}" for _ in range(3))
    admin.create(
        model(
            ids[0],
            base_model_id="gpt-4o",
            params={"temperature": 0.5, "max_tokens": 9, "nested": [{"a": None}, "ü"]},
            meta={"description": "x"},
            access_grants=[{"access_type": "group", "access_id": "g", "permission": "write"}],
        )
    )
    admin.create(model(ids[1], is_active=False))
    admin.create(model(ids[2]))

    source = export(registry.database_url, "--ids", *ids)
    assert list(source) == ["format", "format_version", "models"]
    assert (source["format"], source["format_version"]) == ("model-registry.models", 1)
    # Each record is the model as the API writes it (the HTTP export's shape).
    assert source["models"] == [api_json(m) for m in admin.export(ids=ids).models]

    url = empty_database(database_url_factory)
    path = tmp_path / "models.json"
    path.write_text(json.dumps(source))
    done = run(url, "import", str(path))
    assert (done.returncode, done.stderr) == (0, "")
    assert counts(done.stdout.strip()) == (False, 3, 3, 0, 0, 0, 0)

    # Owner (the admin, in both), timestamps and content are kept; the
    # version ids are the new database's own.
    again = export(url)
    assert without_versions(again["models"]) == without_versions(source["models"])

    rerun = run(url, "import", str(path))
    assert (rerun.returncode, counts(rerun.stdout.strip())) == (0, (False, 3, 0, 0, 3, 0, 0))
    assert len(query(url, "SELECT id FROM model_versions")) == 3
    assert export(url) == again


def test_open_webuis_export_file_imports_in_one_command(
    database_url_factory: Callable[[], str],
):
    url = empty_database(database_url_factory)
    done = run(url, "import", str(OPEN_WEBUI_EXPORT))
    assert (done.returncode, done.stderr) == (0, "")
    assert counts(done.stdout.strip()) == (False, 4, 4, 0, 0, 0, 0)
    models = export(url)["models"]
    assert [m["id"] for m in models] == [
        "code-reviewer",
        "llama3.1-tutor",
        "plain-preset",
        "public-helper",
    ]
    assert {m["user_id"] for m in models} == {"admin"}
    again = run(url, "import", str(OPEN_WEBUI_EXPORT))
    assert counts(again.stdout.strip()) == (False, 4, 0, 0, 4, 0, 0)


def test_each_record_that_did_not_go_in_is_printed_and_the_exit_code_says_so(
    database_url_factory: Callable[[], str], tmp_path: Path
):
    url = empty_database(database_url_factory)
    run(url, "users", "create", "carol", "--can-create-models")
    first = tmp_path / "first.json"
    first.write_text(json.dumps([model("kept"), model("theirs")]))
    assert run(url, "import", str(first), "--as", "carol").returncode == 0

    path = tmp_path / "second.json"
    path.write_text(
        json.dumps(
            {
                "models": [
                    model("kept", name="Changed"),
                    model("fresh"),
                    ["not", "a", "model"],
                    model("bad name", name=""),
                    model("kept", name="Changed"),
                ]
            }
        )
    )
    done = run(url, "import", str(path), "--on-conflict", "skip", "--as", "carol")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[:-1] == [
        'record 0 "kept": skipped: the model exists with other content',
        "record 2: failed: the record is not a JSON object",
        'record 3 "bad name": failed: id must not contain whitespace or control characters;'
        " name is required and must not be empty",
        'record 4 "kept": skipped: the model exists with other content',
    ]
    assert counts(lines[-1]) == (False, 5, 1, 0, 0, 2, 2)
    assert done.stderr == ""

    # A user who may not change carol's models, and one who does not exist.
    run(url, "users", "create", "dave", "--can-create-models")
    theirs = run(url, "import", str(first), "--as", "dave")
    assert theirs.returncode == 1
    assert theirs.stdout.splitlines()[:2] == [
        'record 0 "kept": failed: Model ID is already taken',
        'record 1 "theirs": failed: Model ID is already taken',
    ]
    nobody = run(url, "import", str(path), "--as", "nobody")
    assert (nobody.returncode, nobody.stderr) == (1, "model-registry: User not found: nobody\n")


def test_a_dry_run_says_what_each_record_would_do_and_writes_nothing(
    database_url_factory: Callable[[], str], tmp_path: Path
):
    url = empty_database(database_url_factory)
    path = tmp_path / "models.json"
    path.write_text(json.dumps([model("same"), model("changed")]))
    run(url, "import", str(path))
    before = (query(url, "SELECT * FROM models"), query(url, "SELECT * FROM model_versions"))

    path.write_text(
        json.dumps(
            [model("same"), model("changed", name="Other"), model("new"), model("x", meta=[])]
        )
    )
    done = run(url, "import", str(path), "--dry-run")
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        'record 0 "same": unchanged',
        'record 1 "changed": would be updated',
        'record 2 "new": would be created',
        'record 3 "x": would fail: meta must be an object',
        done.stdout.splitlines()[-1],
    ]
    assert counts(done.stdout.splitlines()[-1]) == (True, 4, 1, 1, 1, 0, 1)
    assert (
        query(url, "SELECT * FROM models"),
        query(url, "SELECT * FROM model_versions"),
    ) == before


@pytest.mark.parametrize(
    ("content", "code", "message"),
    [
        (
            "{",
            2,
            "cannot read {path}: Expecting property name enclosed in double quotes:"
            " line 1 column 2 (char 1)",
        ),
        (
            '{"items": []}',
            2,
            '{path}: the file must hold a JSON array of models, or an object with a "models" array',
        ),
        (
            '{"format": "prompts", "models": []}',
            2,
            "{path}: the file is not a model-registry.models export (its format is 'prompts')",
        ),
        (
            '{"format": "model-registry.models", "format_version": 7, "models": []}',
            2,
            "{path}: the file is format version 7, newer than this registry reads (1 to 1):"
            " import it with a newer model-registry",
        ),
    ],
)
def test_a_file_that_holds_no_export_is_refused_before_anything_is_written(
    database_url_factory: Callable[[], str], tmp_path: Path, content: str, code: int, message: str
):
    url = empty_database(database_url_factory)
    path = tmp_path / "models.json"
    path.write_text(content)
    done = run(url, "import", str(path))
    expected = "model-registry: " + message.format(path=path) + "\n"
    assert (done.returncode, done.stdout, done.stderr) == (code, "", expected)
    assert query(url, "SELECT id FROM models") == []


def bulk(count: int, prefix: str = "bulk") -> list[dict[str, Any]]:
    """`count` models as an export holds them, of a few shapes."""
    return [
        {
            "id": f"{prefix}-{i:06d}",
            "user_id": "someone",
            "base_model_id": "gpt-4o",
            "name": f"Bulk model {i}",
            "params": {"temperature": 0.5, "max_tokens": 1000 + i % 7, "system": "Be helpful."},
            "meta": {"description": f"model {i}", "capabilities": {"vision": i % 2 == 0}},
            "access_grants": (
                [{"access_type": "group", "access_id": f"team-{i % 50}", "permission": "read"}]
                if i % 3
                else []
            ),
            "is_active": i % 10 != 0,
            "created_at": 1_700_000_000 + i,
            "updated_at": 1_700_000_000 + i,
        }
        for i in range(count)
    ]


def run_on_a_terminal(url: str, *args: str) -> tuple[int, str, str]:
    """The command with its stderr on a terminal: exit code, stdout, what
    the terminal showed."""
    terminal, command_side = pty.openpty()
    # 24 rows of 100 columns: a new pseudo-terminal has no size, as no real one is.
    fcntl.ioctl(command_side, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = subprocess.Popen(
        [MODEL_REGISTRY, "--database-url", url, *args],
        stdout=subprocess.PIPE,
        stderr=command_side,
        text=True,
    )
    os.close(command_side)
    shown: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(terminal, 4096)
            except OSError:  # the command closed its side
                return
            if not chunk:
                return
            shown.append(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    stdout, _ = process.communicate(timeout=300)
    reader.join(10)
    os.close(terminal)
    return process.returncode, stdout, b"".join(shown).decode(errors="replace")


def test_a_large_file_goes_in_by_batches_with_a_progress_bar_on_a_terminal(
    database_url_factory: Callable[[], str], tmp_path: Path
):
    url = empty_database(database_url_factory)
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"models": bulk(5000)}))

    code, stdout, terminal = run_on_a_terminal(url, "import", str(path))
    assert code == 0
    assert counts(stdout.strip()) == (False, 5000, 5000, 0, 0, 0, 0)
    assert "5000/5000" in terminal and "models/s" in terminal
    assert query(url, "SELECT is_active, models FROM model_counts ORDER BY is_active") == [
        (False, 500),
        (True, 4500),
    ]
    assert query(url, "SELECT count(*), min(number), max(number) FROM model_versions") == [
        (5000, 1, 1)
    ]
    assert query(url, "SELECT count(*) FROM model_grants") == [(3333,)]

    # Not on a terminal (a log, a pipe), no bar: only the summary.
    again = run(url, "import", str(path))
    assert (again.returncode, again.stderr) == (0, "")
    assert counts(again.stdout.strip()) == (False, 5000, 0, 0, 5000, 0, 0)


def test_an_export_read_only_in_part_ends_quietly(
    database_url_factory: Callable[[], str], tmp_path: Path
):
    """`model-registry export | head -1`: the reader stops early; the export
    stops with it, without a traceback."""
    url = empty_database(database_url_factory)
    records = tmp_path / "many.json"
    records.write_text(json.dumps([model(f"piped-{n}") for n in range(3000)]))
    assert run(url, "import", str(records)).returncode == 0
    piped = subprocess.run(
        [
            "bash",
            "-o",
            "pipefail",
            "-c",
            f"'{MODEL_REGISTRY}' --database-url '{url}' export | head -1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (piped.returncode, piped.stderr) == (0, "")
    assert piped.stdout.startswith('{"format": "model-registry.models", "format_version": 1')
