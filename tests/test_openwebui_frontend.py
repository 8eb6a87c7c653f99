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


def _as_javascript(typescript: str, name: str = "createNewModel") -> str:
    """The function `name` as plain JavaScript: the same statements, without
    the type annotations it carries (on parameters, optional ones too, its
    Promise<...> return type, `as any`)."""
    start = typescript.index(f"export const {name} ")
    end = typescript.find("\nexport ", start + 1)
    end = len(typescript) if end < 0 else end
    function = typescript[start:end]
    function = re.sub(r"\):\s*Promise<.*?>\s*=>", ") =>", function, count=1, flags=re.S)
    function = re.sub(r"(\w+)\??: (string|object|number|AbortSignal)\b", r"\1", function)
    function = function.replace(" as any", "")
    assert not re.search(r":\s*(string|object|any|number)\b", function), function
    return function.replace("export const", "const", 1)


@pytest.fixture(scope="module")
def open_webui_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
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
    return next(folder.glob("open_webui-*.whl"))


@pytest.fixture(scope="module")
def create_new_model_js(open_webui_wheel: Path) -> Path:
    wheel = open_webui_wheel
    script = wheel.parent / "create.mjs"
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


HISTORY_FUNCTIONS = (
    "getModelHistory",
    "getModelHistoryEntry",
    "setProductionModelVersion",
    "deleteModelHistoryVersion",
    "updateModelById",
    "getModelItems",
    "getModelTags",
)


@pytest.fixture(scope="module")
def api_js(open_webui_wheel: Path) -> Path:
    """A script that calls one of Open WebUI's API functions: CALL names it,
    ARGS holds its arguments after the token (JSON)."""
    source = _create_new_model_source(open_webui_wheel)
    script = open_webui_wheel.parent / "api.mjs"
    script.write_text(
        "const WEBUI_API_BASE_URL = process.env.API_BASE;\n"
        + "\n".join(_as_javascript(source, name) for name in HISTORY_FUNCTIONS)
        + f"""
const functions = {{ {", ".join(HISTORY_FUNCTIONS)} }};
try {{
  const args = JSON.parse(process.env.ARGS);
  const result = await functions[process.env.CALL](process.env.TOKEN, ...args);
  console.log(JSON.stringify({{ result }}));
}} catch (error) {{
  console.log(JSON.stringify({{ error }}));
}}
"""
    )
    return script


def call(script: Path, web: Registry, name: str, *args: object) -> dict:
    result = subprocess.run(
        ["node", str(script)],
        env={
            **os.environ,
            "API_BASE": f"{web.http_url}/api/v1",
            "TOKEN": ADMIN_KEY,
            "CALL": name,
            "ARGS": json.dumps(args),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_open_webui_model_history_works_against_us(
    create_new_model_js: Path, api_js: Path, web: Registry, unique_id: str
):
    """What the editor's history menu does (ModelHistory.svelte): list the
    history, preview a version, make it production, delete another."""
    model = {"id": unique_id, "name": "v1", "meta": {}, "params": {}, "commit_message": "one"}
    first = run_create_new_model(create_new_model_js, web, model)["saved"]
    second = call(
        api_js, web, "updateModelById", unique_id, {**model, "name": "v2", "commit_message": "two"}
    )["result"]

    history = call(api_js, web, "getModelHistory", unique_id, 1)["result"]
    assert [(e["id"], e["parent_id"], e["commit_message"]) for e in history] == [
        (second["version_id"], first["version_id"], "two"),
        (first["version_id"], None, "one"),
    ]
    assert all(e["model_id"] == unique_id and e["user"] == {"name": "admin"} for e in history)

    entry = call(api_js, web, "getModelHistoryEntry", unique_id, first["version_id"])["result"]
    assert entry["snapshot"]["name"] == "v1" and entry["id"] == first["version_id"]

    production = call(api_js, web, "setProductionModelVersion", unique_id, first["version_id"])[
        "result"
    ]
    assert production["name"] == "v1" and production["id"] == unique_id

    assert call(api_js, web, "deleteModelHistoryVersion", unique_id, second["version_id"]) == {
        "result": True
    }
    # The front end shows `detail` of a refusal in a toast.
    current = production["version_id"]
    assert call(api_js, web, "deleteModelHistoryVersion", unique_id, current) == {
        "error": {"detail": "Cannot delete the current version"}
    }
    assert call(api_js, web, "getModelHistoryEntry", unique_id, "gone") == {
        "error": {"detail": "Model version not found"}
    }


def test_open_webui_workspace_list_and_tags_work_against_us(
    create_new_model_js: Path, api_js: Path, web: Registry, unique_id: str
):
    """What the model workspace page does (workspace/Models.svelte): a page
    of models for the selected tag, then the tags for its tag selector."""
    for suffix, tag in (("a", "Vision"), ("b", "vision"), ("c", "Audio")):
        model = {
            "id": f"{unique_id}-{suffix}",
            "name": f"Tagged {suffix}",
            "meta": {"tags": [{"name": tag}]},
            "params": {},
        }
        assert "saved" in run_create_new_model(create_new_model_js, web, model)

    page = call(api_js, web, "getModelItems", unique_id, "", "VISION", "name", "asc", 1)
    items = page["result"]["items"]
    assert [m["id"] for m in items] == [f"{unique_id}-a", f"{unique_id}-b"]
    assert page["result"]["total"] == 2 and all(m["write_access"] for m in items)

    tags = call(api_js, web, "getModelTags")["result"]
    assert {"Audio", "Vision"} <= set(tags) and "vision" not in tags
    assert tags == sorted(tags, key=str.casefold)
