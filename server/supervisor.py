"""`model-registry serve --replicas N`: N gRPC-only `serve` processes (each
its own interpreter, so they scale across cores) behind one Envoy. The
supervisor migrates the database and makes the admin once, starts the
replicas, then Envoy in front of all of them; it serves no requests itself.
A replica that dies is restarted on its port (restarts.py decides when, and
when to give up), so Envoy's endpoints never change."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from .bootstrap import prepare_database
from .config import Settings
from .envoy import EnvoyOptions, EnvoyProcess, die_with_parent
from .lifecycle import run, say, stop_on_signals
from .readiness import http_listening_line, parse_listening
from .restarts import RestartBackoff, RestartPolicy, describe_exit

REPLICA_READY_TIMEOUT_SECONDS = 60.0
# The exit code of `serve --replicas N` when a replica crash-loops (README).
CRASH_LOOP_EXIT_CODE = 3


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
    """A replica's number and port; its process is replaced by each restart."""

    number: int
    port: int  # 0 until a replica started with --port 0 says which it got
    process: asyncio.subprocess.Process = field(init=False)
    ready: asyncio.Event = field(init=False)
    forwarder: asyncio.Task[None] = field(init=False)

    def follow(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.ready = asyncio.Event()
        self.forwarder = asyncio.create_task(_forward_output(self, process, self.ready))


class _Replicas:
    """The replica processes: started one by one, restarted when they die,
    stopped all together."""

    def __init__(self, settings: Settings, child_args: list[str]) -> None:
        self._settings = settings
        self._child_args = child_args
        self._policy = RestartPolicy()
        self.members: list[_Replica] = []
        self.exit_codes: list[int | None] = []
        self._closing = asyncio.Event()
        self._keepers: list[asyncio.Task[int]] = []

    async def start(self, count: int) -> None:
        for number in range(1, count + 1):
            port = 0 if self._settings.grpc_port == 0 else self._settings.grpc_port + number - 1
            replica = _Replica(number, port)
            replica.follow(await self._launch(port, number))
            self.members.append(replica)

    async def _launch(self, port: int, number: int) -> asyncio.subprocess.Process:
        environment = {**os.environ, "MODEL_REGISTRY_DATABASE_URL": self._settings.database_url}
        environment.pop("MODEL_REGISTRY_ADMIN_KEY", None)  # the admin exists by now
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "modelregistry_server.cli",
            "serve",
            "--no-http",
            "--replica",
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

    async def restart_dead_ones(self) -> int:
        """Restarts every replica that dies, until one crash-loops or cannot
        be started (reported): then the exit code to stop with. stop() ends
        the restarting."""
        self._keepers = [asyncio.create_task(self._keep(r)) for r in self.members]
        done, _ = await asyncio.wait(self._keepers, return_when=asyncio.FIRST_COMPLETED)
        return done.pop().result()

    async def _keep(self, replica: _Replica) -> int:
        """Until stop() (0) or a crash loop: each time the replica dies, say
        so, wait the policy's delay and start it again on the same port."""
        clock = asyncio.get_running_loop().time
        backoff = RestartBackoff(self._policy, started_at=clock())
        while await self._unless_closing(replica.process.wait()):
            await replica.forwarder  # its last words first
            assert replica.process.returncode is not None
            status = describe_exit(replica.process.returncode)
            which = f"replica {replica.number} (pid {replica.process.pid}, port {replica.port})"
            delay = backoff.exited(clock())
            if delay is None:
                say(
                    f"{which} exited {self._policy.crash_limit} times within"
                    f" {self._policy.crash_window:g}s, the last with {status}: a crash loop;"
                    f" not restarting it, stopping with exit code {CRASH_LOOP_EXIT_CODE}"
                )
                return CRASH_LOOP_EXIT_CODE
            say(f"{which} exited unexpectedly ({status}); restarting it in {delay:g}s")
            if not await self._unless_closing(asyncio.sleep(delay)):
                break
            try:
                replica.follow(await self._launch(replica.port, replica.number))
            except OSError as error:  # e.g. no memory or processes left to fork
                say(f"replica {replica.number} could not be restarted ({error}); stopping")
                return 1
            backoff.started(clock())
            await self._announce_restart(replica)
        return 0

    async def _announce_restart(self, replica: _Replica) -> None:
        """Says when the restarted replica listens; kills it if it does not
        within the time-out (its exit then counts like any other)."""
        ready = asyncio.ensure_future(replica.ready.wait())
        exited = asyncio.ensure_future(replica.process.wait())
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            done, _ = await asyncio.wait(
                {ready, exited, closing},
                timeout=REPLICA_READY_TIMEOUT_SECONDS,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for waiter in (ready, exited, closing):
                waiter.cancel()
        if ready in done:
            say(
                f"replica {replica.number} (pid {replica.process.pid}) restarted:"
                f" gRPC on {self._settings.grpc_host}:{replica.port}"
            )
        elif not done:
            say(
                f"replica {replica.number} (pid {replica.process.pid}) did not listen within"
                f" {REPLICA_READY_TIMEOUT_SECONDS:.0f}s; killing it"
            )
            with contextlib.suppress(ProcessLookupError):  # unless it has just exited
                replica.process.kill()

    async def _unless_closing(self, step: Awaitable[Any]) -> bool:
        """Awaits `step`; False (and `step` cancelled) if stop() begins first."""
        done_step = asyncio.ensure_future(step)
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({done_step, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            done_step.cancel()
            closing.cancel()
        return not self._closing.is_set()

    async def stop(self) -> None:
        """Ends the restarting, then SIGTERM to all, then waits for each
        (killed after the grace period and some); records the exit codes of
        those that were running."""
        self._closing.set()
        # At most a restart under way finishes first.
        await asyncio.gather(*self._keepers, return_exceptions=True)
        running = [r for r in self.members if r.process.returncode is None]
        for replica in running:
            replica.process.send_signal(signal.SIGTERM)
        patience = self._settings.shutdown_grace_seconds + 10
        for replica in running:
            try:
                code = await asyncio.wait_for(replica.process.wait(), patience)
            except TimeoutError:
                replica.process.kill()
                code = await replica.process.wait()
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
    """Serve until a signal, Envoy's death or a replica's crash loop; the
    exit code, or None for a requested stop after serving."""
    if not await replicas.all_ready(stopping):
        return 0 if stopping.is_set() else 1
    endpoints = [(host, r.port) for r in replicas.members]
    for replica in replicas.members:
        say(f"replica {replica.number} (pid {replica.process.pid}) gRPC on {host}:{replica.port}")

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
    return await _watch(replicas, envoy, stopping)


async def _watch(
    replicas: _Replicas, envoy: EnvoyProcess | None, stopping: asyncio.Event
) -> int | None:
    """Until a signal (None), Envoy's death (1) or a replica's crash loop
    (CRASH_LOOP_EXIT_CODE) or failed restart (1). A replica that dies meanwhile is restarted; until
    it is back, Envoy's health checks keep traffic on the others."""
    stop_waiter = asyncio.ensure_future(stopping.wait())
    given_up = asyncio.ensure_future(replicas.restart_dead_ones())
    waiting: set[asyncio.Future[Any]] = {stop_waiter, given_up}
    envoy_waiter = asyncio.ensure_future(envoy.wait()) if envoy is not None else None
    if envoy_waiter is not None:
        waiting.add(envoy_waiter)
    try:
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiting:
            waiter.cancel()
    if stop_waiter in done:
        return None
    if envoy_waiter in done:
        say("Envoy exited unexpectedly; stopping the replicas")
        return 1
    return given_up.result()


async def _forward_output(
    replica: _Replica, process: asyncio.subprocess.Process, ready: asyncio.Event
) -> None:
    """Every line of one replica process, prefixed; notes the port it
    listens on."""
    assert process.stdout is not None
    async for raw in process.stdout:
        line = raw.decode(errors="replace").rstrip("\n")
        address = parse_listening(line)
        if address is not None and not ready.is_set():
            replica.port = address.port
            ready.set()
        say(f"[replica {replica.number}] {line}")
