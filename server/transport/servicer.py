"""ModelService: protobuf in -> domain call -> protobuf out."""

from __future__ import annotations

import grpc

from modelregistry.v1 import model_service_pb2 as pb
from modelregistry.v1 import model_service_pb2_grpc as pb_grpc

from ..domain.registry import ModelRegistry
from .convert import draft_from_proto, model_to_proto
from .interceptor import current_caller


class ModelService(pb_grpc.ModelServiceServicer):
    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry

    async def CreateModel(
        self,
        request: pb.CreateModelRequest,
        context: grpc.aio.ServicerContext[pb.CreateModelRequest, pb.Model],
    ) -> pb.Model:
        draft = draft_from_proto(request.model)
        model = await self._registry.create_model(current_caller(), draft)
        return model_to_proto(model)
