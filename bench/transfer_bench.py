"""The `import` rows of the benchmark: `model-registry import` of a file of
COUNT models into an empty SQLite database (one transaction per 1,000), the
same file again (every record unchanged), and `model-registry export` of
them, each run once, as an operator runs them.

    python3 tasks.py bench --rows import            # 100,000 models
    python3 tasks.py bench --rows import --quick    # 10,000"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL_REGISTRY = str(Path(sys.executable).parent / "model-registry")


@dataclass(frozen=True)
class Run:
    name: str
    seconds: float  # the command's own, from its start to its exit
    models: int

    @property
    def rate(self) -> float:
        return self.models / self.seconds


def models(count: int) -> list[dict[str, Any]]:
    """`count` models as an export holds them, of a few shapes."""
    return [
        {
            "id": f"bulk-{i:07d}",
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


def _run(url: str, *args: str, output: Path | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    with open(output or "/dev/null", "w") as out:
        done = subprocess.run(
            [MODEL_REGISTRY, "--database-url", url, *args],
            stdout=out if output else subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"model-registry {' '.join(args)} failed: {done.stderr}")
    return seconds, done.stdout or ""


def measure_transfer(count: int, scratch: Path) -> list[Run]:
    file = scratch / "models.json"
    file.write_text(
        json.dumps(
            {"format": "model-registry.models", "format_version": 1, "models": models(count)}
        )
    )
    database = scratch / "import.db"
    url = f"sqlite:///{database}"
    _run(url, "users", "create", "admin", "--role", "admin")

    runs = []
    for name, expected in (
        ("import into an empty database", "created"),
        ("import of the same file again", "unchanged"),
    ):
        seconds, printed = _run(url, "import", str(file))
        summary = printed.strip().splitlines()[-1]
        if not re.search(rf"\b{count} {expected}\b", summary):
            raise RuntimeError(f"unexpected import summary: {summary}")
        runs.append(Run(f"{name} (model-registry import)", seconds, count))
    seconds, _ = _run(url, "export", output=scratch / "exported.json")
    runs.append(Run("export (model-registry export)", seconds, count))

    db = sqlite3.connect(database)
    try:
        stored = db.execute("SELECT count(*) FROM models").fetchone()[0]
        versions = db.execute("SELECT count(*) FROM model_versions").fetchone()[0]
        counted = db.execute("SELECT sum(models) FROM model_counts").fetchone()[0]
    finally:
        db.close()
    exported = len(json.loads((scratch / "exported.json").read_text())["models"])
    if not stored == versions == counted == exported == count:
        raise RuntimeError(f"{count} imported, but {stored=} {versions=} {counted=} {exported=}")
    return runs
