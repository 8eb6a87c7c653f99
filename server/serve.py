"""`model-registry serve`: the gRPC server and, in front of it, Envoy; with
--replicas N, N gRPC server processes behind one Envoy."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import sys
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from .app import build_app, database_executor
from .config import Settings
from .domain.accounts import IssuedKey
from .envoy import EnvoyOptions, EnvoyProcess, die_with_parent
from .storage.migrations import upgrade
from .transport.server import create_server, mark_serving

log = logging.getLogger(__name__)

REPLICA_READY_TIMEOUT_SECONDS = 60.0
LISTENING = re.compile(r"gRPC listening on (\S+):(\d+)$")


def serve(settings: Settings, envoy: EnvoyOptions | None, admin_key: str | None) -> int:
    return _run(_serve(settings, envoy, admin_key))


def _run(main: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop where it is installed: about 30% more creates per second
    than the standard event loop (BENCHMARKS.md)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def prepare_database(settings: Settings, admin_key: str | None) -> None:
    """Pending migrations, then (on an empty database) the admin user.
    Both are safe when several servers start at once."""
    migrated = upgrade(settings.database_url)
    if migrated.changed:
        _say(f"Database migrated from {migrated.before or 'empty'} to {migrated.after}")
    app = build_app(settings)
    try:
        issued = app.accounts.bootstrap_admin(admin_key)
    finally:
        app.close()
    if issued is not None:
        _announce_admin_key(issued, chosen=admin_key is not None)


async def _serve(
    settings: Settings, envoy_options: EnvoyOptions | None, admin_key: str | None
) -> int:
    # Handlers first: a signal that comes as soon as the port is announced
    # still stops the server cleanly.
    stopping = _stop_on_signals()
    prepare_database(settings, admin_key)
    app = build_app(settings)
    executor = database_executor(settings)

    server, port, health = create_server(settings, app.registry, app.authenticator, executor)
    await server.start()
    await mark_serving(health, True)
    _say(f"gRPC listening on {settings.grpc_host}:{port}")

    envoy = None
    if envoy_options is not None:
        envoy = EnvoyProcess(envoy_options, endpoints=[(settings.grpc_host, port)])
        try:
            await envoy.start()
        except Exception as error:  # a bad config or a taken port: say so and stop
            _say(f"Envoy did not start: {error}")
            await server.stop(None)
            executor.shutdown(wait=True)
            app.close()
            return 1
        _say(f"HTTP/JSON (Envoy) listening on http://{envoy_options.host}:{envoy_options.port}")

    waiters = [asyncio.ensure_future(stopping.wait())]
    if envoy is not None:
        waiters.append(asyncio.ensure_future(envoy.wait()))
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    envoy_died = not stopping.is_set()
    for waiter in waiters:
        waiter.cancel()

    # Health turns NOT_SERVING first, so balancers stop routing here; then
    # the HTTP face stops, and in-flight calls get the grace period.
    await mark_serving(health, False)
    if envoy is not None:
        await envoy.stop()
    await server.stop(settings.shutdown_grace_seconds)
    executor.shutdown(wait=True)
    app.close()
    if envoy_died:
        _say("Envoy exited unexpectedly; stopped the server")
        return 1
    _say("stopped")
    return 0


# -- replicas ----------------------------------------------------------------


@dataclass
class _Replica:
    number: int
    process: asyncio.subprocess.Process
    port: int | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    forwarder: asyncio.Task[None] | None = None


def serve_replicas(
    settings: Settings,
    envoy: EnvoyOptions | None,
    admin_key: str | None,
    *,
    replicas: int,
    child_args: list[str],
) -> int:
    return _run(_serve_replicas(settings, envoy, admin_key, replicas, child_args))


async def _serve_replicas(
    settings: Settings,
    envoy_options: EnvoyOptions | None,
    admin_key: str | None,
    count: int,
    child_args: list[str],
) -> int:
    """This process supervises: it migrates the database and makes the admin
    once, starts `count` gRPC-only `serve` processes (each its own port, its
    own interpreter, so they scale across cores), then Envoy in front of all
    of them. It serves no requests itself."""
    stopping = _stop_on_signals()
    prepare_database(settings, admin_key)

    environment = {**os.environ, "MODEL_REGISTRY_DATABASE_URL": settings.database_url}
    environment.pop("MODEL_REGISTRY_ADMIN_KEY", None)  # the admin exists by now
    replicas: list[_Replica] = []
    for number in range(1, count + 1):
        port = 0 if settings.grpc_port == 0 else settings.grpc_port + number - 1
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "modelregistry_server.cli",
            "serve",
            "--no-http",
            "--replicas",
            "1",
            "--host",
            settings.grpc_host,
            "--port",
            str(port),
            *child_args,
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
        replicas.append(replica)

    if not await _all_ready(replicas, stopping):
        await _stop_replicas(replicas, settings)
        if stopping.is_set():
            _say("stopped")
            return 0
        return 1
    endpoints = [(settings.grpc_host, r.port) for r in replicas if r.port is not None]
    for replica, (host, port) in zip(replicas, endpoints, strict=True):
        _say(f"replica {replica.number} (pid {replica.process.pid}) gRPC on {host}:{port}")

    envoy = None
    if envoy_options is not None:
        envoy = EnvoyProcess(envoy_options, endpoints=endpoints)
        try:
            await envoy.start()
        except Exception as error:
            _say(f"Envoy did not start: {error}")
            await _stop_replicas(replicas, settings)
            return 1
        if envoy_options.admin_port is not None:
            _say(f"Envoy admin on http://127.0.0.1:{envoy_options.admin_port}")
        _say(
            f"HTTP/JSON (Envoy) listening on http://{envoy_options.host}:{envoy_options.port}"
            f" -> {count} replicas"
        )

    # Run until a signal, Envoy's death or the last replica's death. A replica
    # that dies is reported; the others keep serving (Envoy's health checks
    # stop routing to it).
    alive = {asyncio.ensure_future(r.process.wait()): r for r in replicas}
    stop_waiter = asyncio.ensure_future(stopping.wait())
    envoy_waiter = asyncio.ensure_future(envoy.wait()) if envoy is not None else None
    failed = False
    while True:
        waiting = {stop_waiter, *alive}
        if envoy_waiter is not None:
            waiting.add(envoy_waiter)
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if stop_waiter in done:
            break
        if envoy_waiter is not None and envoy_waiter in done:
            _say("Envoy exited unexpectedly; stopping the replicas")
            failed = True
            break
        for waiter in done:
            replica = alive.pop(waiter)
            _say(
                f"replica {replica.number} (pid {replica.process.pid}, port {replica.port})"
                f" exited unexpectedly with code {replica.process.returncode};"
                f" {len(alive)} of {count} replicas left"
            )
        if not alive:
            _say("no replica left; stopping")
            failed = True
            break
    for waiter in [stop_waiter, envoy_waiter, *alive]:
        if waiter is not None:
            waiter.cancel()

    # Envoy first (no new requests), then the replicas finish what they have.
    if envoy is not None:
        await envoy.stop()
    codes = await _stop_replicas(replicas, settings)
    if failed:
        return 1
    if any(code != 0 for code in codes):
        _say(f"replicas exited with codes {codes}")
        return 1
    _say("stopped")
    return 0


async def _forward_output(replica: _Replica) -> None:
    """Every line of the replica, prefixed; notes the port it listens on."""
    assert replica.process.stdout is not None
    async for raw in replica.process.stdout:
        line = raw.decode(errors="replace").rstrip("\n")
        match = LISTENING.match(line)
        if match and replica.port is None:
            replica.port = int(match.group(2))
            replica.ready.set()
        _say(f"[replica {replica.number}] {line}")


async def _all_ready(replicas: list[_Replica], stopping: asyncio.Event) -> bool:
    """True when every replica listens; False (reported) if one exits first,
    or on a signal or time-out."""
    for replica in replicas:
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
            _say(
                f"replica {replica.number} exited with code {replica.process.returncode}"
                " before listening; stopping"
            )
        else:
            _say(
                f"replica {replica.number} did not listen within"
                f" {REPLICA_READY_TIMEOUT_SECONDS:.0f}s; stopping"
            )
        return False
    return True


async def _stop_replicas(replicas: list[_Replica], settings: Settings) -> list[int | None]:
    for replica in replicas:
        if replica.process.returncode is None:
            replica.process.send_signal(signal.SIGTERM)
    codes: list[int | None] = []
    for replica in replicas:
        try:
            code = await asyncio.wait_for(
                replica.process.wait(), settings.shutdown_grace_seconds + 10
            )
        except TimeoutError:
            replica.process.kill()
            code = await replica.process.wait()
        if replica.forwarder is not None:
            await replica.forwarder
        codes.append(code)
    return codes


# -- shared ------------------------------------------------------------------


def _stop_on_signals() -> asyncio.Event:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    return stopping


def _announce_admin_key(issued: IssuedKey, *, chosen: bool) -> None:
    if chosen:
        _say("Created user 'admin' with the key from MODEL_REGISTRY_ADMIN_KEY")
        return
    _say("Created user 'admin'. Its API key, shown this once (store it now):")
    _say(f"  {issued.key}")


def _say(line: str) -> None:
    print(line, file=sys.stdout, flush=True)
