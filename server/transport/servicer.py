"""ModelService: protobuf in -> domain call -> protobuf out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeAlias, TypeVar

import grpc
from google.protobuf import wrappers_pb2

from modelregistry.v1 import model_service_pb2 as pb
from modelregistry.v1 import model_service_pb2_grpc as pb_grpc

from ..domain.derived import Derived
from ..domain.listing import Listed, ListedPage, ListQuery
from ..domain.registry import ModelRegistry
from ..domain.transfer import ModelTransfer, export_query
from .convert import (
    EXPORT_BUDGET,
    draft_from_proto,
    export_to_proto,
    exported_size,
    grants_from_proto,
    import_report_to_proto,
    json_value,
    list_query_from_proto,
    model_to_proto,
    update_fields,
    version_page_to_proto,
    version_query_from_proto,
    version_to_proto,
)
from .interceptor import current_caller
from .list_replies import (
    ModelEntries,
    encoded_page,
    http_body,
    item_json,
    json_page,
    model_message,
)

# Encoded list replies kept while the registry answers with the same page.
REPLY_BUDGET_BYTES = 16 * 1024 * 1024
# The bytes object and its key beside the reply.
REPLY_OVERHEAD_BYTES = 200

# encoded_page or json_page: a ListModels page as one face's reply.
PageWriter: TypeAlias = Callable[[ListQuery, ListedPage, Callable[[Listed], bytes]], bytes]

# The context is not used: the interceptor reads the caller and sends errors.
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
T = TypeVar("T")


class ModelService(pb_grpc.ModelServiceServicer):
    def __init__(
        self, registry: ModelRegistry, transfer: ModelTransfer, executor: Executor
    ) -> None:
        self._registry = registry
        self._transfer = transfer  # synchronous: run on the database threads
        self._executor = executor
        # Models as listed or got, by version and view: encoded as ListModels'
        # items, and as the HTTP face's JSON (ListModelsJson, GetModelJson).
        self._entries = ModelEntries()
        self._json_entries = ModelEntries(item_json)
        # Whole pages, by caller, query and face, while the page is the same
        # object (domain/derived.py).
        self._replies: Derived[bytes] = Derived(REPLY_BUDGET_BYTES)

    async def CreateModel(self, request: pb.CreateModelRequest, context: Context) -> pb.Model:
        draft = draft_from_proto(request.model)
        return model_to_proto(await self._registry.create_model(current_caller(), draft))

    async def GetModel(  # type: ignore[override]
        self, request: pb.GetModelRequest, context: Context
    ) -> bytes:
        """The model encoded, from the entries the list keeps (list_replies.py);
        the interceptor's serializer sends bytes as they are."""
        model = await self._registry.get_model(current_caller(), request.id)
        return model_message(self._entries.of_seen(model))

    async def GetModelJson(self, request: pb.GetModelRequest, context: Context) -> bytes:
        """GetModel's reply as the HTTP face's JSON, in an encoded HttpBody."""
        model = await self._registry.get_model(current_caller(), request.id)
        return http_body(self._json_entries.of_seen(model))

    async def ListModels(  # type: ignore[override]
        self, request: pb.ListModelsRequest, context: Context
    ) -> bytes:
        """The reply comes encoded (list_replies.py); the interceptor's
        serializer sends bytes as they are."""
        return await self._page_reply(request, encoded_page, self._entries)

    async def ListModelsJson(self, request: pb.ListModelsRequest, context: Context) -> bytes:
        """ListModels' page as the HTTP face's JSON, in an encoded HttpBody."""
        return await self._page_reply(request, json_page, self._json_entries)

    async def ListModelTags(
        self, request: pb.ListModelTagsRequest, context: Context
    ) -> pb.ListModelTagsResponse:
        return pb.ListModelTagsResponse(tags=await self._registry.list_tags(current_caller()))

    async def UpdateModel(self, request: pb.UpdateModelRequest, context: Context) -> pb.Model:
        model = await self._registry.update_model(
            current_caller(), draft_from_proto(request.model), update_fields(request)
        )
        return model_to_proto(model)

    async def ToggleModel(self, request: pb.ToggleModelRequest, context: Context) -> pb.Model:
        return model_to_proto(await self._registry.toggle_model(current_caller(), request.id))

    async def UpdateModelAccess(
        self, request: pb.UpdateModelAccessRequest, context: Context
    ) -> pb.Model:
        model = await self._registry.update_model_access(
            current_caller(), request.id, grants_from_proto(request.access_grants)
        )
        return model_to_proto(model)

    async def DeleteModel(
        self, request: pb.DeleteModelRequest, context: Context
    ) -> wrappers_pb2.BoolValue:
        await self._registry.delete_model(current_caller(), request.id)
        return wrappers_pb2.BoolValue(value=True)

    async def ListModelVersions(
        self, request: pb.ListModelVersionsRequest, context: Context
    ) -> pb.ListModelVersionsResponse:
        query = version_query_from_proto(request)
        page = await self._registry.list_versions(current_caller(), query)
        return version_page_to_proto(query, page)

    async def GetModelVersion(
        self, request: pb.GetModelVersionRequest, context: Context
    ) -> pb.ModelVersion:
        version = await self._registry.get_version(current_caller(), request.id, request.version_id)
        return version_to_proto(version)

    async def RestoreModelVersion(
        self, request: pb.RestoreModelVersionRequest, context: Context
    ) -> pb.Model:
        commit_message = request.commit_message if request.HasField("commit_message") else None
        model = await self._registry.restore_version(
            current_caller(), request.id, request.version_id, commit_message
        )
        return model_to_proto(model)

    async def DeleteModelVersion(
        self, request: pb.DeleteModelVersionRequest, context: Context
    ) -> wrappers_pb2.BoolValue:
        await self._registry.delete_version(current_caller(), request.id, request.version_id)
        return wrappers_pb2.BoolValue(value=True)

    async def ExportModels(
        self, request: pb.ExportModelsRequest, context: Context
    ) -> pb.ExportModelsResponse:
        caller = current_caller()
        query = export_query(
            ids=list(request.ids), page_size=request.page_size, page_token=request.page_token
        )
        page = await self._run(
            lambda: self._transfer.export_models(
                caller, query, measure=exported_size, budget=EXPORT_BUDGET
            )
        )
        return export_to_proto(query, page)

    async def ImportModels(
        self, request: pb.ImportModelsRequest, context: Context
    ) -> pb.ImportModelsResponse:
        caller = current_caller()
        records = [json_value(record) for record in request.models]
        report = await self._run(
            lambda: self._transfer.import_models(
                caller,
                records,
                on_conflict=request.on_conflict,
                format_version=request.format_version,
                dry_run=request.dry_run,
            )
        )
        return import_report_to_proto(report)

    async def _page_reply(
        self, request: pb.ListModelsRequest, write_page: PageWriter, entries: ModelEntries
    ) -> bytes:
        """The caller's page of `request`, written by `write_page` from
        `entries`, or as written for this very page before."""
        query = list_query_from_proto(request)
        caller = current_caller()
        page = await self._registry.list_models(caller, query)
        key = (write_page, caller, query)
        reply = self._replies.get(key, page)
        if reply is None:
            reply = write_page(query, page, entries.of)
            self._replies.put(key, page, reply, len(reply) + REPLY_OVERHEAD_BYTES)
        return reply

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)
