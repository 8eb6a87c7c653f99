"""`model-registry serve`: the gRPC server and, in front of it, Envoy."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from .app import build_app, database_executor
from .config import Settings
from .domain.accounts import IssuedKey
from .envoy import EnvoyOptions, EnvoyProcess
from .storage.database import create_schema
from .transport.server import create_server, mark_serving

log = logging.getLogger(__name__)


def serve(settings: Settings, envoy: EnvoyOptions | None, admin_key: str | None) -> int:
    return asyncio.run(_serve(settings, envoy, admin_key))


async def _serve(
    settings: Settings, envoy_options: EnvoyOptions | None, admin_key: str | None
) -> int:
    app = build_app(settings)
    executor = database_executor(settings)
    create_schema(app.engine)
    issued = app.accounts.bootstrap_admin(admin_key)

    server, port, health = create_server(settings, app.registry, app.authenticator, executor)
    await server.start()
    await mark_serving(health, True)
    _say(f"gRPC listening on {settings.grpc_host}:{port}")

    envoy = None
    if envoy_options is not None:
        envoy = EnvoyProcess(envoy_options, grpc_host=settings.grpc_host, grpc_port=port)
        try:
            await envoy.start()
        except Exception as error:  # a bad config or a taken port: say so and stop
            _say(f"Envoy did not start: {error}")
            await server.stop(None)
            return 1
        _say(f"HTTP/JSON (Envoy) listening on http://{envoy_options.host}:{envoy_options.port}")
    if issued is not None:
        _announce_admin_key(issued, chosen=admin_key is not None)

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    waiters = [asyncio.ensure_future(stopping.wait())]
    if envoy is not None:
        waiters.append(asyncio.ensure_future(envoy.wait()))
    done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
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


def _announce_admin_key(issued: IssuedKey, *, chosen: bool) -> None:
    if chosen:
        _say("Created user 'admin' with the key from MODEL_REGISTRY_ADMIN_KEY")
        return
    _say("Created user 'admin'. Its API key, shown this once (store it now):")
    _say(f"  {issued.key}")


def _say(line: str) -> None:
    print(line, file=sys.stdout, flush=True)
