"""The contract cannot break silently: buf lints it, and compares it with the
contract as last released (protos/released/), on wire and JSON compatibility.

buf runs on images (descriptor sets with their imports), as buf.yaml explains:
the current contract is generated/modelregistry/modelregistry.binpb, which
tests/test_generated.py keeps equal to a fresh compilation of protos/."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import descriptor_pb2
from node_tools import ROOT, buf_command, load_tool

IMAGE = ROOT / "generated" / "modelregistry" / "modelregistry.binpb"
RELEASED = ROOT / "protos" / "released" / "modelregistry.binpb"
SERVICE_PROTO = "modelregistry/v1/model_service.proto"


@pytest.fixture(scope="module")
def buf() -> Any:
    command = buf_command()

    def run(*args: str) -> tuple[int, list[dict[str, Any]], str]:
        """buf's exit code, its findings (JSON lines) and its stderr."""
        result = subprocess.run(
            [command, *args, "--error-format", "json"],
            cwd=ROOT,  # where buf.yaml is
            capture_output=True,
            text=True,
            timeout=60,
        )
        findings = [json.loads(line) for line in result.stdout.splitlines()]
        return result.returncode, findings, result.stderr

    return run


def _finding(finding: dict[str, Any]) -> tuple[str, str, str]:
    return finding["path"], finding["type"], finding["message"]


# -- lint --------------------------------------------------------------------


def test_lint_is_clean(buf):
    assert buf("lint", str(IMAGE)) == (0, [], "")


def test_lint_without_the_configured_exceptions_names_only_the_rules_they_waive(
    buf, tmp_path: Path
):
    config = yaml.safe_load((ROOT / "buf.yaml").read_text())
    waived = config["lint"].pop("except")
    assert waived == ["RPC_RESPONSE_STANDARD_NAME", "RPC_REQUEST_RESPONSE_UNIQUE"]
    strict = tmp_path / "buf.yaml"
    strict.write_text(yaml.safe_dump(config))

    code, findings, _ = buf("lint", str(IMAGE), "--config", str(strict))

    assert code == 100
    assert {_finding(f)[1] for f in findings} == set(waived)
    assert (
        SERVICE_PROTO,
        "RPC_RESPONSE_STANDARD_NAME",
        'RPC response type "Model" should be named "CreateModelResponse" or '
        '"ModelServiceCreateModelResponse".',
    ) in [_finding(f) for f in findings]


# -- breaking changes against the released contract ---------------------------


def test_released_contract_is_an_image_of_the_service():
    released = descriptor_pb2.FileDescriptorSet.FromString(RELEASED.read_bytes())
    service = next(f for f in released.file if f.name == SERVICE_PROTO)
    assert [s.name for s in service.service] == ["ModelService"]
    model = next(m for m in service.message_type if m.name == "Model")
    assert [(f.number, f.name) for f in model.field][:4] == [
        (1, "id"),
        (2, "user_id"),
        (3, "base_model_id"),
        (4, "name"),
    ]
    assert {"google/api/annotations.proto", "google/protobuf/struct.proto"} <= {
        f.name for f in released.file
    }


def test_current_contract_keeps_compatibility_with_the_released_one(buf):
    assert buf("breaking", str(IMAGE), "--against", str(RELEASED)) == (0, [], "")


def _changed_contract(tmp_path: Path, old: str, new: str) -> Path:
    """An image of protos/ with `old` replaced by `new` in the service's file,
    compiled the way generated/ is."""
    protos = tmp_path / "protos"
    shutil.copytree(ROOT / "protos", protos, ignore=shutil.ignore_patterns("released"))
    source = protos / SERVICE_PROTO
    text = source.read_text()
    assert text.count(old) == 1, old
    source.write_text(text.replace(old, new))
    image = tmp_path / "changed.binpb"
    load_tool("generate_protos").write_descriptor_set(image, protos)
    return image


def _deleted(number: int, name: str) -> set[tuple[str, str, str]]:
    field = f'Previously present field "{number}" with name "{name}" on message "Model"'
    return {
        (
            SERVICE_PROTO,
            "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED",
            f'{field} was deleted without reserving the number "{number}".',
        ),
        (
            SERVICE_PROTO,
            "FIELD_NO_DELETE_UNLESS_NAME_RESERVED",
            f'{field} was deleted without reserving the name "{name}".',
        ),
    }


BREAKING = {
    "field renumbered": (
        "string user_id = 2 [",
        "string user_id = 22 [",
        _deleted(2, "user_id"),
    ),
    "field renamed (its JSON name changes)": (
        "string name = 4 [",
        "string display_name = 4 [",
        {
            (
                SERVICE_PROTO,
                "FIELD_SAME_NAME",
                'Field "4" on message "Model" changed name from "name" to "display_name".',
            ),
            (
                SERVICE_PROTO,
                "FIELD_SAME_JSON_NAME",
                'Field "4" with name "display_name" on message "Model" changed option '
                '"json_name" from "name" to "displayName".',
            ),
        },
    ),
    "field removed without reserving it": (
        "int64 updated_at = 10 [(google.api.field_behavior) = OUTPUT_ONLY];",
        "",
        _deleted(10, "updated_at"),
    ),
    "field removed, only its number reserved": (
        "int64 updated_at = 10 [(google.api.field_behavior) = OUTPUT_ONLY];",
        "reserved 10;",
        {f for f in _deleted(10, "updated_at") if "NAME" in f[1]},
    ),
    "field type changed": (
        "int64 created_at = 9 [",
        "string created_at = 9 [",
        {
            (
                SERVICE_PROTO,
                "FIELD_WIRE_JSON_COMPATIBLE_TYPE",
                'Field "9" with name "created_at" on message "Model" changed type from "int64" '
                'to "string". See https://developers.google.com/protocol-buffers/docs/proto3'
                "#updating for wire compatibility rules and https://developers.google.com/"
                "protocol-buffers/docs/proto3#json for JSON compatibility rules.",
            )
        },
    ),
}


@pytest.mark.parametrize("old, new, expected", BREAKING.values(), ids=BREAKING.keys())
def test_breaking_change_is_refused_and_named(buf, tmp_path: Path, old: str, new: str, expected):
    image = _changed_contract(tmp_path, old, new)
    code, findings, _ = buf("breaking", str(image), "--against", str(RELEASED))
    assert code == 100
    assert {_finding(f) for f in findings} == expected
    assert len(findings) == len(expected)


COMPATIBLE = {
    "field removed with its number and name reserved": (
        "int64 updated_at = 10 [(google.api.field_behavior) = OUTPUT_ONLY];",
        'reserved 10;\n  reserved "updated_at";',
    ),
    "field added": (
        "message AccessGrant {",
        "message AccessGrant {\n  // When the grant ends, Unix seconds.\n  int64 expires_at = 6;\n",
    ),
}


@pytest.mark.parametrize("old, new", COMPATIBLE.values(), ids=COMPATIBLE.keys())
def test_compatible_change_passes(buf, tmp_path: Path, old: str, new: str):
    image = _changed_contract(tmp_path, old, new)
    assert buf("breaking", str(image), "--against", str(RELEASED)) == (0, [], "")
