"""`model-registry serve --replicas N`: N gRPC-only `serve` processes (each
its own interpreter, so they scale across cores) behind one Envoy. The
supervisor migrates the database and makes the admin once, starts the
replicas, then Envoy in front of all of them; it serves no requests itself."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

from .bootstrap import prepare_database
from .config import Settings
from .envoy import EnvoyOptions, EnvoyProcess, die_with_parent
from .lifecycle import run, say, stop_on_signals
from .readiness import http_listening_line, parse_listening

REPLICA_READY_TIMEOUT_SECONDS = 60.0


def serve_replicas(
    settings: Settings,
    envoy: EnvoyOptions | None,
    admin_key: str | None,
    *,
    replicas: int,
    child_args: list[str],
) -> int:
    return run(_supervise(settings, envoy, admin_key, replicas, child_args))


@dataclass
class _Replica:
    number: int
    process: asyncio.subprocess.Process
    port: int | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    forwarder: asyncio.Task[None] | None = None


class _Replicas:
    """The replica processes: started one by one, stopped all together."""

    def __init__(self, settings: Settings, child_args: list[str]) -> None:
        self._settings = settings
        self._child_args = child_args
        self.members: list[_Replica] = []
        self.exit_codes: list[int | None] = []

    async def start(self, count: int) -> None:
        environment = {**os.environ, "MODEL_REGISTRY_DATABASE_URL": self._settings.database_url}
        environment.pop("MODEL_REGISTRY_ADMIN_KEY", None)  # the admin exists by now
        for number in range(1, count + 1):
            port = 0 if self._settings.grpc_port == 0 else self._settings.grpc_port + number - 1
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "modelregistry_server.cli",
                "serve",
                "--no-http",
                "--replicas",
                "1",
                "--host",
                self._settings.grpc_host,
                "--port",
                str(port),
                *_metrics_args(self._settings.metrics_port, number),
                *self._child_args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=environment,
                preexec_fn=die_with_parent,  # no orphan replica if this process is killed
                # Out of the terminal's process group: Ctrl-C reaches this process
                # only, which stops Envoy first and then the replicas, in order.
                start_new_session=True,
            )
            replica = _Replica(number, process)
            replica.forwarder = asyncio.create_task(_forward_output(replica))
            self.members.append(replica)

    async def all_ready(self, stopping: asyncio.Event) -> bool:
        """True when every replica listens; False (reported) if one exits
        first, or on a signal or time-out."""
        for replica in self.members:
            ready = asyncio.ensure_future(replica.ready.wait())
            exited = asyncio.ensure_future(replica.process.wait())
            stop = asyncio.ensure_future(stopping.wait())
            done, _ = await asyncio.wait(
                {ready, exited, stop},
                timeout=REPLICA_READY_TIMEOUT_SECONDS,
                return_when=asyncio.FIRST_COMPLETED,
            )
            for waiter in (ready, exited, stop):
                waiter.cancel()
            if ready in done:
                continue
            if stop in done:
                return False
            if exited in done:
                if replica.forwarder is not None:
                    await replica.forwarder  # its last words first
                say(
                    f"replica {replica.number} exited with code {replica.process.returncode}"
                    " before listening; stopping"
                )
            else:
                say(
                    f"replica {replica.number} did not listen within"
                    f" {REPLICA_READY_TIMEOUT_SECONDS:.0f}s; stopping"
                )
            return False
        return True

    async def stop(self) -> None:
        """SIGTERM to all, then wait for each (killed after the grace period
        and some); records their exit codes."""
        for replica in self.members:
            if replica.process.returncode is None:
                replica.process.send_signal(signal.SIGTERM)
        patience = self._settings.shutdown_grace_seconds + 10
        for replica in self.members:
            try:
                code = await asyncio.wait_for(replica.process.wait(), patience)
            except TimeoutError:
                replica.process.kill()
                code = await replica.process.wait()
            if replica.forwarder is not None:
                await replica.forwarder
            self.exit_codes.append(code)


def _metrics_args(metrics_port: int | None, number: int) -> list[str]:
    """Replica i serves its metrics on metrics_port+i-1 (0: a free port each)."""
    if metrics_port is None:
        return []
    port = 0 if metrics_port == 0 else metrics_port + number - 1
    return ["--metrics-port", str(port)]


async def _supervise(
    settings: Settings,
    envoy_options: EnvoyOptions | None,
    admin_key: str | None,
    count: int,
    child_args: list[str],
) -> int:
    stopping = stop_on_signals()
    prepare_database(settings.database_url, admin_key)
    replicas = _Replicas(settings, child_args)
    # Leaving the block, for whatever reason, stops Envoy first (no new
    # requests), then the replicas, which finish what they have.
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(replicas.stop)
        await replicas.start(count)
        code = await _run_replicas(stack, replicas, envoy_options, stopping, settings.grpc_host)
    if code is None:  # stopped as asked: the replicas' own exits decide
        if any(exit_code != 0 for exit_code in replicas.exit_codes):
            say(f"replicas exited with codes {replicas.exit_codes}")
            return 1
        code = 0
    if code == 0:
        say("stopped")
    return code


async def _run_replicas(
    stack: contextlib.AsyncExitStack,
    replicas: _Replicas,
    envoy_options: EnvoyOptions | None,
    stopping: asyncio.Event,
    host: str,
) -> int | None:
    """Serve until a signal, Envoy's death or the last replica's death; the
    exit code, or None for a requested stop after serving."""
    if not await replicas.all_ready(stopping):
        return 0 if stopping.is_set() else 1
    endpoints = [(host, r.port) for r in replicas.members if r.port is not None]
    for replica, (_, port) in zip(replicas.members, endpoints, strict=True):
        say(f"replica {replica.number} (pid {replica.process.pid}) gRPC on {host}:{port}")

    envoy = None
    if envoy_options is not None:
        envoy = EnvoyProcess(envoy_options, endpoints=endpoints)
        stack.push_async_callback(envoy.stop)
        try:
            await envoy.start()
        except Exception as error:
            say(f"Envoy did not start: {error}")
            return 1
        if envoy_options.admin_port is not None:
            say(f"Envoy admin on http://127.0.0.1:{envoy_options.admin_port}")
        say(
            f"{http_listening_line(envoy_options.host, envoy_options.port)}"
            f" -> {len(replicas.members)} replicas"
        )
    return None if await _watch(replicas, envoy, stopping) else 1


async def _watch(replicas: _Replicas, envoy: EnvoyProcess | None, stopping: asyncio.Event) -> bool:
    """Until a signal (True), Envoy's death or the last replica's death
    (False). A replica that dies is reported; the others keep serving
    (Envoy's health checks stop routing to it)."""
    count = len(replicas.members)
    alive = {asyncio.ensure_future(r.process.wait()): r for r in replicas.members}
    stop_waiter = asyncio.ensure_future(stopping.wait())
    envoy_waiter = asyncio.ensure_future(envoy.wait()) if envoy is not None else None
    try:
        while True:
            waiting: set[asyncio.Future[Any]] = {stop_waiter, *alive}
            if envoy_waiter is not None:
                waiting.add(envoy_waiter)
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if stop_waiter in done:
                return True
            if envoy_waiter is not None and envoy_waiter in done:
                say("Envoy exited unexpectedly; stopping the replicas")
                return False
            for waiter in done:
                replica = alive.pop(waiter)  # type: ignore[call-overload]
                say(
                    f"replica {replica.number} (pid {replica.process.pid}, port {replica.port})"
                    f" exited unexpectedly with code {replica.process.returncode};"
                    f" {len(alive)} of {count} replicas left"
                )
            if not alive:
                say("no replica left; stopping")
                return False
    finally:
        for waiter in [stop_waiter, *alive]:
            waiter.cancel()
        if envoy_waiter is not None:
            envoy_waiter.cancel()


async def _forward_output(replica: _Replica) -> None:
    """Every line of the replica, prefixed; notes the port it listens on."""
    assert replica.process.stdout is not None
    async for raw in replica.process.stdout:
        line = raw.decode(errors="replace").rstrip("\n")
        address = parse_listening(line)
        if address is not None and replica.port is None:
            replica.port = address.port
            replica.ready.set()
        say(f"[replica {replica.number}] {line}")
