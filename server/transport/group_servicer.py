"""GroupService: protobuf in -> domain call (on a database thread: group
management is synchronous) -> protobuf out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeAlias, TypeVar

import grpc
from google.protobuf import empty_pb2

from modelregistry.v1 import group_service_pb2 as pb
from modelregistry.v1 import group_service_pb2_grpc as pb_grpc

from ..domain.groups import GroupAdmin
from .convert import group_to_proto
from .interceptor import current_caller

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
T = TypeVar("T")


class GroupService(pb_grpc.GroupServiceServicer):
    def __init__(self, groups: GroupAdmin, executor: Executor) -> None:
        self._groups = groups
        self._executor = executor

    async def CreateGroup(self, request: pb.CreateGroupRequest, context: Context) -> pb.Group:
        caller = current_caller()
        group = await self._run(
            lambda: self._groups.create(caller, request.group.id, request.group.name)
        )
        return group_to_proto(group)

    async def ListGroups(
        self, request: pb.ListGroupsRequest, context: Context
    ) -> pb.ListGroupsResponse:
        caller = current_caller()
        groups = await self._run(lambda: self._groups.list(caller))
        return pb.ListGroupsResponse(groups=[group_to_proto(group) for group in groups])

    async def DeleteGroup(
        self, request: pb.DeleteGroupRequest, context: Context
    ) -> empty_pb2.Empty:
        caller = current_caller()
        await self._run(lambda: self._groups.delete(caller, request.id))
        return empty_pb2.Empty()

    async def AddGroupMember(self, request: pb.AddGroupMemberRequest, context: Context) -> pb.Group:
        caller = current_caller()
        group = await self._run(
            lambda: self._groups.add_member(caller, request.group_id, request.user_id)
        )
        return group_to_proto(group)

    async def RemoveGroupMember(
        self, request: pb.RemoveGroupMemberRequest, context: Context
    ) -> pb.Group:
        caller = current_caller()
        group = await self._run(
            lambda: self._groups.remove_member(caller, request.group_id, request.user_id)
        )
        return group_to_proto(group)

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)
