"""Open WebUI's own front-end code, unmodified, against our Envoy.

The test takes `createNewModel` from the source maps of the open-webui 0.12.4
wheel on PyPI (downloaded here, not kept in this project), removes only its
TypeScript annotations, and runs it with Node's fetch, its API base pointed at
our Envoy. It needs `node` (18+, for fetch) and the package index."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support import ADMIN_KEY, Registry, query, start_registry

OPEN_WEBUI = "open-webui==0.12.4"
API_SOURCE = "src/lib/apis/models/index.ts"


def _create_new_model_source(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if not name.endswith(".js.map"):
                continue
            source_map = json.loads(archive.read(name))
            for source, content in zip(
                source_map.get("sources", []), source_map.get("sourcesContent") or [], strict=False
            ):
                if source.endswith(API_SOURCE) and content:
                    return content
    raise AssertionError(f"{API_SOURCE} is in no source map of {wheel.name}")


def _as_javascript(typescript: str) -> str:
    """createNewModel as plain JavaScript: the same statements, without the
    two type annotations it carries."""
    start = typescript.index("export const createNewModel")
    end = typescript.index("export const", start + 1)
    function = typescript[start:end]
    function = function.replace("(token: string, model: object)", "(token, model)")
    function = function.replace(" as any", "")
    assert not re.search(r":\s*(string|object|any)\b", function), function
    return function.replace("export const", "const", 1)


@pytest.fixture(scope="module")
def create_new_model_js(tmp_path_factory: pytest.TempPathFactory) -> Path:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: Open WebUI's front-end code cannot run")
    folder = tmp_path_factory.mktemp("open-webui")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--dest",
            str(folder),
            OPEN_WEBUI,
        ],
        check=True,
        timeout=600,
    )
    wheel = next(folder.glob("open_webui-*.whl"))
    script = folder / "create.mjs"
    script.write_text(
        "const WEBUI_API_BASE_URL = process.env.API_BASE;\n"
        + _as_javascript(_create_new_model_source(wheel))
        + """
try {
  const saved = await createNewModel(process.env.TOKEN, JSON.parse(process.env.MODEL));
  console.log(JSON.stringify({ saved }));
} catch (error) {
  console.log(JSON.stringify({ error }));
}
"""
    )
    return script


@pytest.fixture(scope="module")
def web(database_url_factory: Callable[[], str]) -> Iterator[Registry]:
    running = start_registry(database_url_factory(), http=True)
    yield running
    assert running.stop() == 0


def run_create_new_model(script: Path, web: Registry, model: dict) -> dict:
    result = subprocess.run(
        ["node", str(script)],
        env={
            **os.environ,
            "API_BASE": f"{web.http_url}/api/v1",
            "TOKEN": ADMIN_KEY,
            "MODEL": json.dumps(model),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_open_webui_create_new_model_saves_an_editor_model(
    create_new_model_js: Path, web: Registry, unique_id: str
):
    # What the model editor hands createNewModel for a new model: nulls for
    # everything left at its default, grants in Open WebUI's spelling.
    model = {
        "id": unique_id,
        "base_model_id": None,
        "name": "Code helper",
        "meta": {
            "profile_image_url": "/static/favicon.png",
            "background_image_url": None,
            "voice_avatar": None,
            "description": None,
            "suggestion_prompts": None,
            "tags": [],
            "capabilities": {"vision": True, "usage": None},
        },
        "params": {"temperature": None, "max_tokens": None, "system": "Be brief."},
        "access_grants": [{"principal_type": "user", "principal_id": "*", "permission": "read"}],
        "commit_message": "First version",
    }
    saved = run_create_new_model(create_new_model_js, web, model)["saved"]
    assert saved["id"] == unique_id and saved["user_id"] == "admin"
    assert saved["base_model_id"] is None and saved["is_active"] is True
    assert saved["meta"] == model["meta"] and saved["params"] == model["params"]
    assert saved["access_grants"] == [
        {"access_type": "user", "access_id": "*", "permission": "read"}
    ]
    rows = query(
        web.database_url, "SELECT name, commit_message FROM models WHERE id = :id", id=unique_id
    )
    assert [tuple(row) for row in rows] == [("Code helper", "First version")]


def test_open_webui_create_new_model_shows_our_errors(
    create_new_model_js: Path, web: Registry, unique_id: str
):
    model = {"id": unique_id, "name": "n", "meta": {}, "params": {}}
    assert "saved" in run_create_new_model(create_new_model_js, web, model)
    # createNewModel throws the body's `detail`, which the editor shows in a toast.
    assert run_create_new_model(create_new_model_js, web, model) == {
        "error": "Model ID is already taken"
    }
    broken = {**model, "id": unique_id + "-2", "meta": []}
    assert run_create_new_model(create_new_model_js, web, broken) == {
        "error": "meta must be an object"
    }
