"""Generate generated/ from protos/: Python messages, gRPC stubs, typed stubs
(.pyi) and the descriptor set Envoy's transcoder loads.

    python tools/generate_protos.py [--out DIR]

The output depends only on protos/ and the pinned grpcio-tools, so a test can
regenerate into a temporary folder and require it to equal generated/.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import google.api
import grpc_tools

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
# Inside the package, so that it ships with it (Envoy loads it from there).
DESCRIPTOR_SET = "modelregistry/modelregistry.binpb"
# Imported only by the descriptor set, so that Envoy can render error details.
DESCRIPTOR_EXTRAS = ["google/rpc/error_details.proto"]


def _include_paths(protos: Path) -> list[str]:
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    googleapis = Path(google.api.__path__[0]).parent.parent  # site-packages
    return [f"-I{protos}", f"-I{well_known}", f"-I{googleapis}"]


def _sources(protos: Path) -> list[str]:
    return sorted(str(p.relative_to(protos)) for p in protos.rglob("*.proto"))


def _protoc(*args: str, protos: Path = PROTOS) -> None:
    command = [sys.executable, "-m", "grpc_tools.protoc", *_include_paths(protos), *args]
    # mypy-protobuf's plugins live beside this interpreter.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)


def write_descriptor_set(path: Path, protos: Path = PROTOS) -> None:
    """The descriptor set of every .proto under `protos`, with its imports and
    comments: what Envoy's transcoder loads, and an image buf can check."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _protoc(
        "--include_imports",
        "--include_source_info",
        f"--descriptor_set_out={path}",
        *_sources(protos),
        *DESCRIPTOR_EXTRAS,
        protos=protos,
    )


def generate(out: Path) -> None:
    sources = _sources(PROTOS)
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        _protoc(
            f"--python_out={tmp}",
            f"--grpc_python_out={tmp}",
            f"--mypy_out=quiet:{tmp}",
            f"--mypy_grpc_out=quiet:{tmp}",
            *sources,
        )
        write_descriptor_set(tmp / DESCRIPTOR_SET)
        for package in {p.parent for p in tmp.rglob("*.py")}:
            while package != tmp:
                (package / "__init__.py").touch()
                package = package.parent
        # PEP 561: the installed package (with the client inside it) is typed.
        (tmp / "modelregistry" / "py.typed").touch()
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(tmp, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "generated")
    generate(parser.parse_args().out)


if __name__ == "__main__":
    main()
