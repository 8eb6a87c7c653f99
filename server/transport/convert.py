"""Protobuf messages <-> domain values."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf import struct_pb2

from modelregistry.v1 import group_service_pb2 as group_pb
from modelregistry.v1 import model_service_pb2 as pb

from ..domain.listing import ListQuery, list_query
from ..domain.models import (
    AccessGrant,
    GrantDraft,
    Group,
    JsonObject,
    Model,
    ModelDraft,
    ModelVersion,
)
from ..domain.records import FORMAT_VERSION
from ..domain.transfer import (
    CREATED,
    FAILED,
    MAX_REPLY_BYTES,
    SKIPPED,
    UNCHANGED,
    UPDATED,
    ExportPage,
    ExportQuery,
    ImportReport,
)
from ..domain.transfer import next_page_token as next_export_page_token
from ..domain.versions import VersionPage, VersionQuery, version_query
from ..domain.versions import next_page_token as next_version_page_token

_MAX_EXACT_INTEGER = 2**53  # beyond this a double no longer holds every integer
# What an export reply's models may take: the reply's limit, less room for
# the rest of it (format_version, next_page_token).
EXPORT_BUDGET = MAX_REPLY_BYTES - 1024


def draft_from_proto(message: pb.Model) -> ModelDraft:
    """The request's model as sent; fields the client left out become None.
    Output-only fields (user_id, created_at, updated_at) are not read."""
    return ModelDraft(
        id=message.id,
        name=message.name,
        base_model_id=message.base_model_id if message.HasField("base_model_id") else None,
        params=struct_to_dict(message.params) if message.HasField("params") else None,
        meta=struct_to_dict(message.meta) if message.HasField("meta") else None,
        access_grants=grants_from_proto(message.access_grants),
        is_active=message.is_active if message.HasField("is_active") else None,
        commit_message=message.commit_message if message.HasField("commit_message") else None,
    )


def grants_from_proto(grants: Iterable[pb.AccessGrant]) -> list[GrantDraft]:
    return [
        GrantDraft(g.access_type, g.access_id, g.permission, g.principal_type, g.principal_id)
        for g in grants
    ]


def list_query_from_proto(request: pb.ListModelsRequest) -> ListQuery:
    return list_query(
        page_size=request.page_size,
        page_token=request.page_token,
        query=request.query,
        view_option=request.view_option,
        order_by=request.order_by,
        direction=request.direction,
        is_active=request.is_active if request.HasField("is_active") else None,
        owner_id=request.owner_id,
        page=request.page,
        tag=request.tag,
    )


def update_fields(request: pb.UpdateModelRequest) -> list[str] | None:
    """The fields an UpdateModel changes: those its update_mask names, or all
    (None) without one."""
    if request.HasField("update_mask") and request.update_mask.paths:
        return list(request.update_mask.paths)
    return None


def version_query_from_proto(request: pb.ListModelVersionsRequest) -> VersionQuery:
    return version_query(
        model_id=request.id,
        page_size=request.page_size,
        page_token=request.page_token,
        page=request.page,
    )


def version_page_to_proto(query: VersionQuery, page: VersionPage) -> pb.ListModelVersionsResponse:
    return pb.ListModelVersionsResponse(
        versions=[version_to_proto(version) for version in page.versions],
        next_page_token="" if page.last is None else next_version_page_token(query, page.last),
    )


def version_to_proto(version: ModelVersion) -> pb.ModelVersion:
    message = pb.ModelVersion(
        id=version.id,
        model_id=version.model_id,
        user_id=version.user_id,
        created_at=version.created_at,
        user=pb.VersionAuthor(name=version.user_id),
        number=version.number,
    )
    if version.parent_id is not None:
        message.parent_id = version.parent_id
    if version.commit_message is not None:
        message.commit_message = version.commit_message
    snapshot = version.snapshot
    if snapshot is not None:
        message.snapshot.name = snapshot.name
        if snapshot.base_model_id is not None:
            message.snapshot.base_model_id = snapshot.base_model_id
        message.snapshot.params.SetInParent()
        message.snapshot.params.update(snapshot.params)
        message.snapshot.meta.SetInParent()
        message.snapshot.meta.update(snapshot.meta)
        message.snapshot.is_active = snapshot.is_active
        message.snapshot.access_grants.extend(_grants_to_proto(snapshot.access_grants))
    return message


def _grants_to_proto(grants: Iterable[AccessGrant]) -> list[pb.AccessGrant]:
    return [
        pb.AccessGrant(access_type=g.access_type, access_id=g.access_id, permission=g.permission)
        for g in grants
    ]


def model_to_proto(model: Model) -> pb.Model:
    message = pb.Model(
        id=model.id,
        user_id=model.user_id,
        name=model.name,
        access_grants=_grants_to_proto(model.access_grants),
        is_active=model.is_active,
        created_at=model.created_at,
        updated_at=model.updated_at,
        version_id=model.version_id,
    )
    if model.base_model_id is not None:
        message.base_model_id = model.base_model_id
    if model.write_access is not None:
        message.write_access = model.write_access
    # SetInParent: an empty object is still sent (and printed as {}).
    message.params.SetInParent()
    message.params.update(model.params)
    message.meta.SetInParent()
    message.meta.update(model.meta)
    return message


def exported_size(model: Model) -> int:
    """The bytes a model adds to an ExportModelsResponse: the message, its
    field tag and length."""
    return model_to_proto(model).ByteSize() + 6


def export_to_proto(query: ExportQuery, page: ExportPage) -> pb.ExportModelsResponse:
    return pb.ExportModelsResponse(
        format_version=FORMAT_VERSION,
        models=[model_to_proto(model) for model in page.models],
        next_page_token="" if page.last is None else next_export_page_token(query, page.last),
    )


def import_report_to_proto(report: ImportReport) -> pb.ImportModelsResponse:
    return pb.ImportModelsResponse(
        created=report.count(CREATED),
        updated=report.count(UPDATED),
        unchanged=report.count(UNCHANGED),
        skipped=report.count(SKIPPED),
        failed=report.count(FAILED),
        results=[
            pb.ImportResult(index=r.index, id=r.id, outcome=r.outcome, reason=r.reason)
            for r in report.results
        ],
    )


def json_value(value: struct_pb2.Value) -> Any:
    """A Value as the JSON value it holds (integral numbers as ints)."""
    return _value(value)


def struct_to_dict(struct: struct_pb2.Struct) -> JsonObject:
    return {key: _value(value) for key, value in struct.fields.items()}


def _value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        # JSON has one number type and Struct carries it as a double: keep
        # integral values integers (max_tokens 2000, not 2000.0).
        if number.is_integer() and abs(number) <= _MAX_EXACT_INTEGER:
            return int(number)
        return number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return struct_to_dict(value.struct_value)
    if kind == "list_value":
        return [_value(item) for item in value.list_value.values]
    return None  # null_value, or a Value with nothing set


def group_to_proto(group: Group) -> group_pb.Group:
    return group_pb.Group(
        id=group.id, name=group.name, created_at=group.created_at, member_ids=group.member_ids
    )
