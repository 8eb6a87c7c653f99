"""The gRPC server: ModelService, GroupService, health and reflection,
registered in one place."""

from __future__ import annotations

from concurrent.futures import Executor

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from modelregistry.v1 import group_service_pb2, group_service_pb2_grpc
from modelregistry.v1 import model_service_pb2 as pb
from modelregistry.v1 import model_service_pb2_grpc as pb_grpc

from ..config import Settings
from ..domain.auth import Authenticator
from ..domain.groups import GroupAdmin
from ..domain.registry import ModelRegistry
from ..domain.transfer import ModelTransfer
from .group_servicer import GroupService
from .interceptor import ModelServiceInterceptor
from .servicer import ModelService

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ModelService"].full_name
GROUP_SERVICE_NAME = group_service_pb2.DESCRIPTOR.services_by_name["GroupService"].full_name


def create_server(
    settings: Settings,
    registry: ModelRegistry,
    transfer: ModelTransfer,
    groups: GroupAdmin,
    authenticator: Authenticator,
    executor: Executor,
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """A server bound to settings.grpc_host:grpc_port (0 picks a free port),
    not yet started. Returns it, the bound port and its health servicer."""
    server = grpc.aio.server(
        interceptors=[
            ModelServiceInterceptor(
                (f"/{SERVICE_NAME}/", f"/{GROUP_SERVICE_NAME}/"), authenticator, executor
            )
        ],
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            # A reply is the request plus what the server adds (defaults, user_id,
            # timestamps), so a request just under the receive limit still gets its
            # reply: never a model stored but answered RESOURCE_EXHAUSTED.
            ("grpc.max_send_message_length", 2 * settings.max_message_bytes),
        ],
    )
    pb_grpc.add_ModelServiceServicer_to_server(ModelService(registry, transfer, executor), server)
    group_service_pb2_grpc.add_GroupServiceServicer_to_server(
        GroupService(groups, executor), server
    )

    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)

    reflection.enable_server_reflection(
        (SERVICE_NAME, GROUP_SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    port = server.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port}")
    return server, port, health_servicer


async def mark_serving(health_servicer: health.aio.HealthServicer, serving: bool) -> None:
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if serving
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, status)
