"""Callers of the registry's read and change RPCs (GetModel, ListModels,
UpdateModel, ToggleModel, UpdateModelAccess, DeleteModel, GroupService),
each with one API key, on gRPC and through Envoy on either path prefix.

A call made on a "face" returns a Reply in one shape for both transports:
the status ("OK" or the gRPC code's name; the HTTP status) and the body as
the HTTP API writes it (a model with `base_model_id` null when unset and
int64s as numbers; `{"detail": message}` for an error), so that one
expectation can be checked on gRPC and on HTTP alike."""

from __future__ import annotations

import contextlib
import io
import re
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import field_mask_pb2, json_format

from modelregistry.v1 import group_service_pb2 as gpb
from modelregistry.v1 import group_service_pb2_grpc as gpb_grpc
from modelregistry.v1 import model_service_pb2 as pb
from modelregistry.v1 import model_service_pb2_grpc as pb_grpc
from modelregistry_server.cli import main as cli_main

from support import (
    ADMIN_KEY,
    HttpResponse,
    Registry,
    http_request,
    model_request,
    start_registry,
    status_details,
)

GRPC = "grpc"
PREFIXES = ("/api", "/api/v1")
FACES = (GRPC, *PREFIXES)  # gRPC, and HTTP on each prefix
TIMEOUT = 30
FAVICON = "/static/favicon.png"

# What a refused call gets: gRPC code, HTTP status, message, ErrorInfo reason.
REFUSALS = {
    "unauthenticated": ("UNAUTHENTICATED", 401, "Unauthorized", "UNAUTHENTICATED"),
    "denied": ("PERMISSION_DENIED", 401, "Unauthorized", "PERMISSION_DENIED"),
    "not_found": ("NOT_FOUND", 404, "Model not found", "MODEL_NOT_FOUND"),
}


def add_users(registry: Registry, users: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Make users, each with a key: user id -> API key. These are the CLI's
    commands that Registry.add_user runs (`users create`, `keys create`),
    called in this process: a new interpreter for each would cost about a
    second of CPU per command, most of these tests' set-up."""
    keys = {}
    for user, flags in users.items():
        role = ["--role", flags.get("role", "user")]
        create = ["--can-create-models"] if flags.get("can_create") else []
        cli(registry, "users", "create", user, *role, *create)
        printed = cli(registry, "keys", "create", user)
        keys[user] = re.search(r"API key .*: (\S+)", printed).group(1)
    return keys


@contextlib.contextmanager
def replicas(url: str, *first_args: str) -> Iterator[tuple[Registry, Registry]]:
    """Two servers on one database, as replicas run; the first started with
    `first_args` too. Both must stop cleanly."""
    first = start_registry(url, extra_args=first_args)
    second = start_registry(url)
    try:
        yield first, second
    finally:
        assert first.stop() == 0
        assert second.stop() == 0


def cli(registry: Registry, *args: str) -> str:
    """What `model-registry --database-url URL ARGS` prints, run in this process."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = cli_main(["--database-url", registry.database_url, *args])
    assert status == 0, (args, printed.getvalue())
    return printed.getvalue()


# -- replies --------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: str | int  # "OK" / a gRPC code's name, or an HTTP status
    body: Any
    reason: str | None = None  # a gRPC error's ErrorInfo reason

    @property
    def updated_at(self) -> Any:
        """The reply's updated_at, if it is a model."""
        return self.body.get("updated_at") if isinstance(self.body, dict) else None

    @property
    def version_id(self) -> Any:
        """The reply's version_id (each write makes a new one), if it is a model."""
        return self.body.get("version_id") if isinstance(self.body, dict) else None


def ok(face: str, body: Any) -> Reply:
    return Reply("OK" if face == GRPC else 200, body)


def refused(face: str, why: str) -> Reply:
    code, status, message, reason = REFUSALS[why]
    if face == GRPC:
        return Reply(code, {"detail": message}, reason)
    return Reply(status, {"detail": message})


def invalid(face: str, detail: str) -> Reply:
    if face == GRPC:
        return Reply("INVALID_ARGUMENT", {"detail": detail}, "INVALID_ARGUMENT")
    return Reply(400, {"detail": detail})


def plain(value: Any) -> Any:
    """A Struct's Python value with integral numbers as ints, as JSON has them."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def api_json(model: pb.Model) -> dict[str, Any]:
    """A model as the HTTP API writes it."""
    body: dict[str, Any] = {
        "id": model.id,
        "user_id": model.user_id,
        "base_model_id": model.base_model_id if model.HasField("base_model_id") else None,
        "name": model.name,
        "params": plain(json_format.MessageToDict(model.params)),
        "meta": plain(json_format.MessageToDict(model.meta)),
        "access_grants": [
            {"access_type": g.access_type, "access_id": g.access_id, "permission": g.permission}
            for g in model.access_grants
        ],
        "is_active": model.is_active,
        "created_at": model.created_at,
        "updated_at": model.updated_at,
    }
    if model.HasField("write_access"):
        body["write_access"] = model.write_access
    body["version_id"] = model.version_id
    return body


def version_json(version: pb.ModelVersion) -> dict[str, Any]:
    """A version as the HTTP API writes it (Open WebUI's history entry, and
    `snapshot` when the version was read with it)."""
    body: dict[str, Any] = {
        "id": version.id,
        "model_id": version.model_id,
        "parent_id": version.parent_id if version.HasField("parent_id") else None,
        "user_id": version.user_id,
        "commit_message": (version.commit_message if version.HasField("commit_message") else None),
        "created_at": version.created_at,
        "user": {"name": version.user.name},
        "number": version.number,
    }
    if version.HasField("snapshot"):
        snapshot = version.snapshot
        body["snapshot"] = {
            "name": snapshot.name,
            "base_model_id": (
                snapshot.base_model_id if snapshot.HasField("base_model_id") else None
            ),
            "params": plain(json_format.MessageToDict(snapshot.params)),
            "meta": plain(json_format.MessageToDict(snapshot.meta)),
            "is_active": snapshot.is_active,
            "access_grants": [
                {"access_type": g.access_type, "access_id": g.access_id, "permission": g.permission}
                for g in snapshot.access_grants
            ],
        }
    return body


def import_json(reply: pb.ImportModelsResponse) -> dict[str, Any]:
    """An import's report as the HTTP API writes it."""
    return json_format.MessageToDict(
        reply, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def list_json(page: pb.ListModelsResponse) -> dict[str, Any]:
    return {
        "items": [api_json(item) for item in page.items],
        "total": page.total,
        "next_page_token": page.next_page_token,
    }


def seen_by_reader(model: dict[str, Any]) -> dict[str, Any]:
    """A model as a caller who may read but not change it gets it."""
    return {**model, "params": {}, "write_access": False}


def seen_by_writer(model: dict[str, Any]) -> dict[str, Any]:
    return {**model, "write_access": True}


# -- callers --------------------------------------------------------------------------


def rpc_error(call: Callable[..., Any], *args: Any, **kwargs: Any) -> grpc.RpcError:
    try:
        call(*args, **kwargs)
    except grpc.RpcError as error:
        return error
    raise AssertionError(f"{call} succeeded; expected an error")


def assert_rpc_error(
    error: grpc.RpcError, code: grpc.StatusCode, message: str, *, field: str | None = None
) -> None:
    """`error` is `code` with `message`; with `field`, its BadRequest names it."""
    assert (error.code(), error.details()) == (code, message)
    if field is not None:
        violations = status_details(error)["BadRequest"].field_violations
        assert [(v.field, v.description) for v in violations] == [(field, message)]


class Caller:
    """One API key (or none) on one registry: gRPC stubs, and HTTP requests
    through its Envoy."""

    def __init__(self, registry: Registry, channel: grpc.Channel, key: str | None) -> None:
        self.registry = registry
        self.key = key
        self.models = pb_grpc.ModelServiceStub(channel)
        self.groups = gpb_grpc.GroupServiceStub(channel)

    def _call(self, method: Callable[..., Any], request: Any) -> Any:
        metadata = [("authorization", f"Bearer {self.key}")] if self.key is not None else []
        return method(request, metadata=metadata, timeout=TIMEOUT)

    # ModelService over gRPC

    def create(self, model: dict[str, Any]) -> pb.Model:
        return self._call(self.models.CreateModel, model_request(model))

    def get(self, model_id: str) -> pb.Model:
        return self._call(self.models.GetModel, pb.GetModelRequest(id=model_id))

    def list(self, **fields: Any) -> pb.ListModelsResponse:
        return self._call(self.models.ListModels, pb.ListModelsRequest(**fields))

    def tags(self) -> list[str]:
        return list(self._call(self.models.ListModelTags, pb.ListModelTagsRequest()).tags)

    def list_pages(self, **fields: Any) -> list[pb.ListModelsResponse]:
        """Every page of one query, following next_page_token."""
        pages = [self.list(**fields)]
        while pages[-1].next_page_token:
            assert len(pages) <= 10_000, "next_page_token never ends"
            pages.append(self.list(**fields, page_token=pages[-1].next_page_token))
        return pages

    def list_all(self, **fields: Any) -> list[pb.Model]:
        return [item for page in self.list_pages(**fields) for item in page.items]

    def update(self, model: dict[str, Any], mask: Iterable[str] | None = None) -> pb.Model:
        request = json_format.ParseDict({"model": model}, pb.UpdateModelRequest())
        if mask is not None:
            request.update_mask.CopyFrom(field_mask_pb2.FieldMask(paths=list(mask)))
        return self._call(self.models.UpdateModel, request)

    def toggle(self, model_id: str) -> pb.Model:
        return self._call(self.models.ToggleModel, pb.ToggleModelRequest(id=model_id))

    def update_access(
        self, model_id: str, grants: list[dict[str, str]], name: str = ""
    ) -> pb.Model:
        request = json_format.ParseDict(
            {"id": model_id, "name": name, "access_grants": grants}, pb.UpdateModelAccessRequest()
        )
        return self._call(self.models.UpdateModelAccess, request)

    def delete(self, model_id: str) -> Any:
        return self._call(self.models.DeleteModel, pb.DeleteModelRequest(id=model_id))

    def history(self, model_id: str, **fields: Any) -> pb.ListModelVersionsResponse:
        request = pb.ListModelVersionsRequest(id=model_id, **fields)
        return self._call(self.models.ListModelVersions, request)

    def version(self, model_id: str, version_id: str) -> pb.ModelVersion:
        request = pb.GetModelVersionRequest(id=model_id, version_id=version_id)
        return self._call(self.models.GetModelVersion, request)

    def restore(self, model_id: str, version_id: str, **fields: Any) -> pb.Model:
        request = pb.RestoreModelVersionRequest(id=model_id, version_id=version_id, **fields)
        return self._call(self.models.RestoreModelVersion, request)

    def delete_version(self, model_id: str, version_id: str) -> Any:
        request = pb.DeleteModelVersionRequest(id=model_id, version_id=version_id)
        return self._call(self.models.DeleteModelVersion, request)

    def export(self, **fields: Any) -> pb.ExportModelsResponse:
        return self._call(self.models.ExportModels, pb.ExportModelsRequest(**fields))

    def import_models(self, records: list[Any], **fields: Any) -> pb.ImportModelsResponse:
        request = json_format.ParseDict({"models": records, **fields}, pb.ImportModelsRequest())
        return self._call(self.models.ImportModels, request)

    # GroupService (gRPC only)

    def create_group(self, group_id: str, name: str = "") -> gpb.Group:
        request = gpb.CreateGroupRequest(group=gpb.Group(id=group_id, name=name))
        return self._call(self.groups.CreateGroup, request)

    def list_groups(self) -> gpb.ListGroupsResponse:
        return self._call(self.groups.ListGroups, gpb.ListGroupsRequest())

    def delete_group(self, group_id: str) -> Any:
        return self._call(self.groups.DeleteGroup, gpb.DeleteGroupRequest(id=group_id))

    def add_member(self, group_id: str, user_id: str) -> gpb.Group:
        request = gpb.AddGroupMemberRequest(group_id=group_id, user_id=user_id)
        return self._call(self.groups.AddGroupMember, request)

    def remove_member(self, group_id: str, user_id: str) -> gpb.Group:
        request = gpb.RemoveGroupMemberRequest(group_id=group_id, user_id=user_id)
        return self._call(self.groups.RemoveGroupMember, request)

    # HTTP

    def http(self, method: str, path: str, body: Any = None) -> HttpResponse:
        assert self.registry.http_port is not None, "this registry runs without Envoy"
        return http_request(self.registry.http_port, method, path, body, key=self.key)

    def on(self, face: str) -> Face:
        return Face(self, face)


class Face:
    """A caller's calls on one face, each answering a Reply."""

    def __init__(self, caller: Caller, face: str) -> None:
        assert face in FACES, face
        self.caller = caller
        self.face = face

    def get(self, model_id: str) -> Reply:
        return self._do(
            lambda: api_json(self.caller.get(model_id)),
            "GET",
            f"/models/model?{urllib.parse.urlencode({'id': model_id})}",
        )

    def list(self, **fields: Any) -> Reply:
        query = {key: _query_value(value) for key, value in fields.items()}
        return self._do(
            lambda: list_json(self.caller.list(**fields)),
            "GET",
            "/models/list" + (f"?{urllib.parse.urlencode(query)}" if query else ""),
        )

    def tags(self) -> Reply:
        """The tags as Open WebUI's front end reads them: a bare array."""
        return self._do(self.caller.tags, "GET", "/models/tags")

    def update(self, model: dict[str, Any]) -> Reply:
        return self._do(
            lambda: api_json(self.caller.update(model)), "POST", "/models/model/update", model
        )

    def toggle(self, model_id: str) -> Reply:
        return self._do(
            lambda: api_json(self.caller.toggle(model_id)),
            "POST",
            f"/models/model/toggle?{urllib.parse.urlencode({'id': model_id})}",
        )

    def update_access(self, model_id: str, grants: list[dict[str, str]], name: str = "") -> Reply:
        body = {"id": model_id, "name": name, "access_grants": grants}
        return self._do(
            lambda: api_json(self.caller.update_access(model_id, grants, name)),
            "POST",
            "/models/model/access/update",
            body,
        )

    def delete(self, model_id: str) -> Reply:
        return self._do(
            lambda: self.caller.delete(model_id).value,
            "POST",
            "/models/model/delete",
            {"id": model_id},
        )

    def history(self, model_id: str, page: int = 0) -> Reply:
        """The history as Open WebUI's front end reads it: a bare array."""
        query = {"id": model_id, **({"page": page} if page else {})}
        return self._do(
            lambda: [version_json(v) for v in self.caller.history(model_id, page=page).versions],
            "GET",
            f"/models/model/history?{urllib.parse.urlencode(query)}",
        )

    def version(self, model_id: str, version_id: str) -> Reply:
        return self._do(
            lambda: version_json(self.caller.version(model_id, version_id)),
            "GET",
            _version_path(model_id, version_id),
        )

    def restore(self, model_id: str, version_id: str) -> Reply:
        return self._do(
            lambda: api_json(self.caller.restore(model_id, version_id)),
            "POST",
            f"/models/model/update/version?{urllib.parse.urlencode({'id': model_id})}",
            {"version_id": version_id},
        )

    def delete_version(self, model_id: str, version_id: str) -> Reply:
        return self._do(
            lambda: self.caller.delete_version(model_id, version_id).value,
            "DELETE",
            _version_path(model_id, version_id),
        )

    def export(self, ids: Iterable[str] = ()) -> Reply:
        """The export as Open WebUI's front end reads it: a bare array."""
        ids = list(ids)
        query = f"?{urllib.parse.urlencode({'ids': ids}, doseq=True)}" if ids else ""
        return self._do(
            lambda: [api_json(m) for m in self.caller.export(ids=ids).models],
            "GET",
            f"/models/export{query}",
        )

    def import_models(self, records: list[Any], **fields: Any) -> Reply:
        return self._do(
            lambda: import_json(self.caller.import_models(records, **fields)),
            "POST",
            "/models/import",
            {"models": records, **fields},
        )

    def _do(self, rpc: Callable[[], Any], method: str, path: str, body: Any = None) -> Reply:
        if self.face == GRPC:
            try:
                return Reply("OK", rpc())
            except grpc.RpcError as error:
                reason = status_details(error)["ErrorInfo"].reason
                return Reply(error.code().name, {"detail": error.details()}, reason)
        response = self.caller.http(method, self.face + path, body)
        assert response.headers.get("content-type") == "application/json", response.headers
        assert not [h for h in response.headers if h.startswith(("grpc-", "x-envoy-"))]
        return Reply(response.status, response.json())


def _version_path(model_id: str, version_id: str) -> str:
    quoted = urllib.parse.quote(version_id, safe="")
    return f"/models/model/history/{quoted}?{urllib.parse.urlencode({'id': model_id})}"


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class Registered:
    """A registry and its callers by name ("admin", "no_key" and the users
    made for the test)."""

    registry: Registry
    callers: dict[str, Caller]

    @property
    def admin(self) -> Caller:
        return self.callers["admin"]


def callers_for(
    registry: Registry, channel: grpc.Channel, users: dict[str, dict[str, Any]]
) -> dict[str, Caller]:
    """`users` made with a key each, and the admin and a caller without a key."""
    keys = add_users(registry, users)
    callers = {user: Caller(registry, channel, key) for user, key in keys.items()}
    callers["admin"] = Caller(registry, channel, ADMIN_KEY)
    callers["no_key"] = Caller(registry, channel, None)
    return callers
