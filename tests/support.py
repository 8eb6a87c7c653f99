"""Runs the real `model-registry` command for tests and talks to it."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy as sa
from google.protobuf import json_format
from grpc_status import rpc_status

from modelregistry.v1 import model_service_pb2 as pb
from modelregistry.v1 import model_service_pb2_grpc as pb_grpc
from modelregistry_server.readiness import GRPC_LISTENING, HTTP_LISTENING, parse_listening

from ports import free_port

BIN = Path(sys.executable).parent
MODEL_REGISTRY = str(BIN / "model-registry")
ADMIN_KEY = "mr-test-admin-key-0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass
class Registry:
    """A running `model-registry serve` process."""

    database_url: str
    process: subprocess.Popen[str]
    grpc_port: int
    http_port: int | None
    output: list[str] = field(default_factory=list)

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def cli(self, *args: str) -> str:
        """Run a management command against this registry's database."""
        result = subprocess.run(
            [MODEL_REGISTRY, "--database-url", self.database_url, *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            raise AssertionError(f"{args} failed: {result.stderr}")
        return result.stdout

    def add_user(self, user_id: str, *, role: str = "user", can_create: bool = False) -> str:
        """Create a user and return a new API key for it."""
        flags = ["--can-create-models"] if can_create else []
        self.cli("users", "create", user_id, "--role", role, *flags)
        out = self.cli("keys", "create", user_id)
        return re.search(r"API key .*: (\S+)", out).group(1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


def start_registry(
    database_url: str,
    *,
    http: bool = False,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    admin_key: str | None = ADMIN_KEY,
) -> Registry:
    http_port = free_port() if http else None
    args = [MODEL_REGISTRY, "--database-url", database_url, "serve", "--port", "0", *extra_args]
    args += ["--http-port", str(http_port)] if http else ["--no-http"]
    environment = {**os.environ, **(env or {})}
    environment.pop("MODEL_REGISTRY_ADMIN_KEY", None)
    if admin_key is not None:
        environment["MODEL_REGISTRY_ADMIN_KEY"] = admin_key
    process = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
    )
    output: list[str] = []
    grpc_port = None
    deadline = time.monotonic() + 60
    ready = HTTP_LISTENING if http else GRPC_LISTENING
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError("registry exited early:\n" + "".join(output))
        output.append(line)
        address = parse_listening(line)
        if address is not None:
            grpc_port = address.port
        if line.startswith(ready):
            break
    else:
        process.kill()
        raise AssertionError("registry did not start:\n" + "".join(output))
    registry = Registry(database_url, process, grpc_port, http_port, output)
    threading.Thread(target=_drain, args=(process, output), daemon=True).start()
    return registry


def _drain(process: subprocess.Popen[str], output: list[str]) -> None:
    for line in process.stdout:
        output.append(line)


def model_request(model: dict[str, Any]) -> pb.CreateModelRequest:
    return json_format.ParseDict({"model": model}, pb.CreateModelRequest())


def as_json(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


class Client:
    """A gRPC ModelService client with one API key."""

    def __init__(self, channel: grpc.Channel, key: str | None) -> None:
        self.stub = pb_grpc.ModelServiceStub(channel)
        self.key = key

    def create(self, model: dict[str, Any], *, key: str | None = "default", **kw: Any) -> pb.Model:
        key = self.key if key == "default" else key
        metadata = [("authorization", f"Bearer {key}")] if key is not None else []
        kw.setdefault("timeout", 10)
        return self.stub.CreateModel(model_request(model), metadata=metadata, **kw)

    def create_error(self, model: dict[str, Any], **kw: Any) -> grpc.RpcError:
        try:
            self.create(model, **kw)
        except grpc.RpcError as error:
            return error
        raise AssertionError("CreateModel succeeded; expected an error")


def status_details(error: grpc.RpcError) -> dict[str, Any]:
    """The google.rpc.Status of a failed call, details unpacked by type name."""
    status = rpc_status.from_call(error)
    assert status is not None, "error carries no google.rpc.Status"
    from google.rpc import error_details_pb2

    unpacked: dict[str, Any] = {}
    for detail in status.details:
        for kind in (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest):
            if detail.Is(kind.DESCRIPTOR):
                message = kind()
                detail.Unpack(message)
                unpacked[kind.DESCRIPTOR.name] = message
    return unpacked


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        assert self.headers.get("content-type") == "application/json", self.headers
        return json.loads(self.body)


def http_request(
    port: int,
    method: str,
    path: str,
    body: bytes | str | dict | None = None,
    *,
    key: str | None = None,
    headers: dict[str, str] | None = None,
    chunked: bool = False,
) -> HttpResponse:
    """One request on a new connection; headers lower-cased."""
    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    sent = {"Content-Type": "application/json", **(headers or {})}
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        if chunked:
            chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
            connection.request(method, path, body=chunks, headers=sent, encode_chunked=True)
        else:
            connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        return HttpResponse(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        connection.close()


# -- the database under a registry, on either backend --------------------------


def is_sqlite(database_url: str) -> bool:
    return database_url.startswith("sqlite:")


def query(database_url: str, sql: str, **params: Any) -> list[sa.Row]:
    """Rows of one SQL statement, read with a separate engine."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.text(sql), params))
    finally:
        engine.dispose()


def stored_grants(database_url: str, model_id: str) -> list[dict[str, str]]:
    """A stored model's grants, in order, in the spec's spelling."""
    rows = query(
        database_url,
        "SELECT access_type, access_id, permission FROM model_grants"
        " WHERE model_id = :id ORDER BY position",
        id=model_id,
    )
    return [dict(row._mapping) for row in rows]


def execute(database_url: str, sql: str) -> None:
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(sql))
    finally:
        engine.dispose()


@contextlib.contextmanager
def database_locked(database_url: str, table: str = "models") -> Iterator[None]:
    """Writers to `table` wait while this is held: SQLite's exclusive lock
    on the file, PostgreSQL's ACCESS EXCLUSIVE lock on the table."""
    if is_sqlite(database_url):
        import sqlite3

        blocker = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        return
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
            try:
                yield
            finally:
                connection.rollback()
    finally:
        engine.dispose()


def missing_models_table_message(database_url: str) -> str:
    """What the driver says when the models table is gone."""
    if is_sqlite(database_url):
        return "no such table: models"
    return 'relation "models" does not exist'
