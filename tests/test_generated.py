"""generated/ is exactly what tools/generate_protos.py makes from protos/."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _files(folder: Path) -> set[str]:
    return {
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_generated_code_matches_a_fresh_generation(tmp_path: Path):
    fresh = tmp_path / "generated"
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "generate_protos.py"), "--out", str(fresh)],
        check=True,
    )
    committed = ROOT / "generated"
    assert _files(fresh) == _files(committed)
    _, mismatch, errors = filecmp.cmpfiles(committed, fresh, sorted(_files(fresh)), shallow=False)
    assert mismatch == [] and errors == [], f"regenerate: python3 tasks.py generate ({mismatch})"


def test_descriptor_set_holds_the_service_and_error_details():
    from google.protobuf import descriptor_pb2

    descriptors = descriptor_pb2.FileDescriptorSet.FromString(
        (ROOT / "generated" / "modelregistry" / "modelregistry.binpb").read_bytes()
    )
    names = {f.name for f in descriptors.file}
    assert {
        "modelregistry/v1/model_service.proto",
        "google/api/annotations.proto",
        "google/rpc/error_details.proto",
        "google/protobuf/struct.proto",
    } <= names
    service = next(f for f in descriptors.file if f.name.startswith("modelregistry/"))
    assert service.source_code_info.location  # comments travel with the descriptor
