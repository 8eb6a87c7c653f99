"""`model-registry serve`: one gRPC server process and, in front of it,
Envoy. (`--replicas N` is supervisor.py.)"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from .app import build_app
from .bootstrap import prepare_database
from .config import Settings
from .envoy import EnvoyOptions, EnvoyProcess
from .heap import freeze_startup_objects, time_pauses
from .lifecycle import run, say, stop_on_signals
from .metrics_endpoint import serve_metrics
from .readiness import http_listening_line, listening_line, metrics_listening_line
from .transport.server import create_server, mark_serving


def serve(
    settings: Settings,
    envoy: EnvoyOptions | None,
    admin_key: str | None,
    *,
    prepare: bool = True,
) -> int:
    """`prepare`: migrate the database and make the admin first (a replica
    leaves that to its supervisor, which did it before starting it)."""
    return run(_serve(settings, envoy, admin_key, prepare))


async def _serve(
    settings: Settings, envoy_options: EnvoyOptions | None, admin_key: str | None, prepare: bool
) -> int:
    stopping = stop_on_signals()
    time_pauses()
    if prepare:
        prepare_database(settings.database_url, admin_key)
    # Each step registers its undoing as soon as it is done; leaving the
    # block, for whatever reason, undoes them in reverse: Envoy stops taking
    # requests, then in-flight calls get the grace period, then the database
    # threads, the model writer and the pool stop.
    async with contextlib.AsyncExitStack() as stack:
        app = build_app(settings)
        stack.callback(app.close)
        if settings.metrics_port is not None:
            try:
                metrics = serve_metrics(settings.grpc_host, settings.metrics_port)
            except OSError as error:  # a taken port: say so and stop
                say(f"metrics did not start: {error}")
                return 1
            stack.callback(metrics.stop)
            say(metrics_listening_line(settings.grpc_host, metrics.port))
        server, port, health = create_server(
            settings, app.registry, app.transfer, app.groups, app.authenticator, app.executor
        )
        await server.start()
        stack.push_async_callback(server.stop, settings.shutdown_grace_seconds)
        if app.pruner is not None:
            pruning = asyncio.ensure_future(app.pruner.run(app.executor))
            stack.push_async_callback(_cancel, pruning)
        freeze_startup_objects()  # before anyone is told it serves: the collection takes a moment
        await mark_serving(health, True)
        say(listening_line(settings.grpc_host, port))

        envoy = None
        if envoy_options is not None:
            envoy = EnvoyProcess(envoy_options, endpoints=[(settings.grpc_host, port)])
            stack.push_async_callback(envoy.stop)
            try:
                await envoy.start()
            except Exception as error:  # a bad config or a taken port: say so and stop
                say(f"Envoy did not start: {error}")
                return 1
            say(http_listening_line(envoy_options.host, envoy_options.port))
        # The first undoing: balancers see NOT_SERVING before anything stops.
        stack.push_async_callback(mark_serving, health, False)

        envoy_died = await _until_stopped(stopping, envoy)
    if envoy_died:
        say("Envoy exited unexpectedly; stopped the server")
        return 1
    say("stopped")
    return 0


async def _until_stopped(stopping: asyncio.Event, envoy: EnvoyProcess | None) -> bool:
    """Wait for a signal or Envoy's death; True if Envoy died."""
    waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(stopping.wait())]
    if envoy is not None:
        waiters.append(asyncio.ensure_future(envoy.wait()))
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return not stopping.is_set()


async def _cancel(task: asyncio.Future[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
