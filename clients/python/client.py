"""The registry's RPCs as methods of one client: its API key on every call,
a deadline per call, retries on UNAVAILABLE, failures as typed exceptions."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from enum import Enum
from typing import Any, TypeVar

import grpc
from google.protobuf import field_mask_pb2, json_format
from google.protobuf.message import Message

from modelregistry.v1 import group_service_pb2 as gpb
from modelregistry.v1 import group_service_pb2_grpc as gpb_grpc
from modelregistry.v1 import model_service_pb2 as pb
from modelregistry.v1 import model_service_pb2_grpc as pb_grpc

from .errors import error_from_rpc
from .retry import Backoff, Retrying

Request = TypeVar("Request", bound=Message)
Reply = TypeVar("Reply", bound=Message)
Built = TypeVar("Built", bound=Message)

ModelLike = pb.Model | Mapping[str, Any]
GrantLike = pb.AccessGrant | Mapping[str, Any]


class _Keep(Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP
DEFAULT_BACKOFF = Backoff()


class Client:
    """A client of one registry.

    `target` is an address ("localhost:50051"), or a channel the caller
    owns and closes. `timeout` (seconds; None for none) bounds each call,
    its retries and waits included; `retries` is how many times a call that
    failed with UNAVAILABLE is made again, after `backoff`'s waits.

    Replies are the contract's messages (the .pyi stubs type them); wrappers
    are unwrapped: DeleteModel gives a bool, DeleteGroup None. Models and
    grants may be given as messages or as dicts in the contract's JSON shape
    (`{"id": ..., "params": {"temperature": 0.7}, ...}`).

    Every call but ToggleModel is retried. A create or delete (of a model,
    a group or a membership) retried after an attempt that was in fact
    applied fails with AlreadyExists or NotFound and `attempts` > 1: it was
    applied, by this call or by another one with the same id; the client
    cannot tell which.
    """

    def __init__(
        self,
        target: str | grpc.Channel,
        *,
        api_key: str | None = None,
        timeout: float | None = 10.0,
        retries: int = 3,
        backoff: Backoff = DEFAULT_BACKOFF,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        if isinstance(target, str):
            # The channel reconnects at least as often as the client retries:
            # its own default backoff (1 s growing to 120 s) would answer each
            # retry UNAVAILABLE without trying the server again.
            options = [
                ("grpc.initial_reconnect_backoff_ms", max(1, int(backoff.initial * 1000))),
                ("grpc.min_reconnect_backoff_ms", max(1, int(backoff.initial * 1000))),
                ("grpc.max_reconnect_backoff_ms", max(1, int(backoff.maximum * 1000))),
            ]
            if credentials is None:
                self._channel = grpc.insecure_channel(target, options)
            else:
                self._channel = grpc.secure_channel(target, credentials, options)
            self._owns_channel = True
        else:
            self._channel = target
            self._owns_channel = False
        self._models = pb_grpc.ModelServiceStub(self._channel)
        self._groups = gpb_grpc.GroupServiceStub(self._channel)
        self._metadata = _authorization(api_key)
        self._retrying = Retrying(timeout, retries, backoff)

    def with_options(
        self,
        *,
        api_key: str | None | _Keep = KEEP,
        timeout: float | None | _Keep = KEEP,
        retries: int | _Keep = KEEP,
        backoff: Backoff | _Keep = KEEP,
    ) -> Client:
        """A client on the same channel with some options changed (the
        channel stays this client's to close)."""
        other = copy.copy(self)
        other._owns_channel = False
        if not isinstance(api_key, _Keep):
            other._metadata = _authorization(api_key)
        changes: dict[str, Any] = {"timeout": timeout, "retries": retries, "backoff": backoff}
        kept = {name: value for name, value in changes.items() if not isinstance(value, _Keep)}
        other._retrying = dataclasses.replace(self._retrying, **kept)
        return other

    def close(self) -> None:
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- ModelService ----------------------------------------------------------------

    def create_model(self, model: ModelLike) -> pb.Model:
        request = pb.CreateModelRequest(model=_message(model, pb.Model))
        return self._call(self._models.CreateModel, request)

    def get_model(self, model_id: str) -> pb.Model:
        return self._call(self._models.GetModel, pb.GetModelRequest(id=model_id))

    def list_models(
        self,
        *,
        page_size: int = 0,
        page_token: str = "",
        query: str = "",
        view_option: str = "",
        order_by: str = "",
        direction: str = "",
        is_active: bool | None = None,
        owner_id: str = "",
        page: int = 0,
        tag: str = "",
    ) -> pb.ListModelsResponse:
        """One page; see iter_models for all of them."""
        request = pb.ListModelsRequest(
            page_size=page_size,
            page_token=page_token,
            query=query,
            view_option=view_option,
            order_by=order_by,
            direction=direction,
            is_active=is_active,
            owner_id=owner_id,
            page=page,
            tag=tag,
        )
        return self._call(self._models.ListModels, request)

    def list_model_tags(self) -> list[str]:
        """The tags of the models the caller may read, sorted."""
        reply = self._call(self._models.ListModelTags, pb.ListModelTagsRequest())
        return list(reply.tags)

    def iter_models(
        self,
        *,
        page_size: int = 0,
        query: str = "",
        view_option: str = "",
        order_by: str = "",
        direction: str = "",
        is_active: bool | None = None,
        owner_id: str = "",
        tag: str = "",
    ) -> Iterator[pb.Model]:
        """Every model of a query, page after page (each page one call, with
        its own deadline and retries)."""
        token = ""
        while True:
            page = self.list_models(
                page_size=page_size,
                page_token=token,
                query=query,
                view_option=view_option,
                order_by=order_by,
                direction=direction,
                is_active=is_active,
                owner_id=owner_id,
                tag=tag,
            )
            yield from page.items
            token = page.next_page_token
            if not token:
                return

    def update_model(self, model: ModelLike, update_mask: Iterable[str] | None = None) -> pb.Model:
        """Replaces the model's fields, or only those named in `update_mask`."""
        request = pb.UpdateModelRequest(model=_message(model, pb.Model))
        if update_mask is not None:
            request.update_mask.CopyFrom(field_mask_pb2.FieldMask(paths=list(update_mask)))
        return self._call(self._models.UpdateModel, request)

    def toggle_model(self, model_id: str) -> pb.Model:
        # Never retried: a retry after an attempt that was applied flips it back.
        request = pb.ToggleModelRequest(id=model_id)
        return self._call(self._models.ToggleModel, request, retry=False)

    def update_model_access(
        self, model_id: str, access_grants: Iterable[GrantLike], name: str = ""
    ) -> pb.Model:
        """Replaces the model's grants."""
        grants = [_message(grant, pb.AccessGrant) for grant in access_grants]
        request = pb.UpdateModelAccessRequest(id=model_id, name=name, access_grants=grants)
        return self._call(self._models.UpdateModelAccess, request)

    def delete_model(self, model_id: str) -> bool:
        request = pb.DeleteModelRequest(id=model_id)
        return self._call(self._models.DeleteModel, request).value

    # -- versions ----------------------------------------------------------------------

    def list_model_versions(
        self, model_id: str, *, page_size: int = 0, page_token: str = "", page: int = 0
    ) -> pb.ListModelVersionsResponse:
        """One page of the model's history, newest first; see iter_model_versions."""
        request = pb.ListModelVersionsRequest(
            id=model_id, page_size=page_size, page_token=page_token, page=page
        )
        return self._call(self._models.ListModelVersions, request)

    def iter_model_versions(
        self, model_id: str, *, page_size: int = 0
    ) -> Iterator[pb.ModelVersion]:
        """Every version of the model, newest first, page after page."""
        token = ""
        while True:
            page = self.list_model_versions(model_id, page_size=page_size, page_token=token)
            yield from page.versions
            token = page.next_page_token
            if not token:
                return

    def get_model_version(self, model_id: str, version_id: str) -> pb.ModelVersion:
        request = pb.GetModelVersionRequest(id=model_id, version_id=version_id)
        return self._call(self._models.GetModelVersion, request)

    def restore_model_version(
        self, model_id: str, version_id: str, commit_message: str | None = None
    ) -> pb.Model:
        # Never retried: each restore that was applied records one more version.
        request = pb.RestoreModelVersionRequest(
            id=model_id, version_id=version_id, commit_message=commit_message
        )
        return self._call(self._models.RestoreModelVersion, request, retry=False)

    def delete_model_version(self, model_id: str, version_id: str) -> bool:
        request = pb.DeleteModelVersionRequest(id=model_id, version_id=version_id)
        return self._call(self._models.DeleteModelVersion, request).value

    # -- export and import -------------------------------------------------------------

    def export_models(self, ids: Iterable[str] = ()) -> pb.ExportModelsResponse:
        """Every model the caller may read, or those of `ids`."""
        return self._call(self._models.ExportModels, pb.ExportModelsRequest(ids=list(ids)))

    def import_models(
        self,
        models: Iterable[Mapping[str, Any]],
        *,
        on_conflict: str = "",
        dry_run: bool = False,
        format_version: int = 0,
    ) -> pb.ImportModelsResponse:
        """Import records (JSON objects); safe to retry: a record already
        imported is unchanged the second time."""
        request = pb.ImportModelsRequest(
            on_conflict=on_conflict, dry_run=dry_run, format_version=format_version
        )
        for record in models:
            json_format.ParseDict(dict(record), request.models.add())
        return self._call(self._models.ImportModels, request)

    # -- GroupService (admins) -------------------------------------------------------

    def create_group(self, group_id: str, name: str = "") -> gpb.Group:
        request = gpb.CreateGroupRequest(group=gpb.Group(id=group_id, name=name))
        return self._call(self._groups.CreateGroup, request)

    def list_groups(self) -> gpb.ListGroupsResponse:
        return self._call(self._groups.ListGroups, gpb.ListGroupsRequest())

    def delete_group(self, group_id: str) -> None:
        self._call(self._groups.DeleteGroup, gpb.DeleteGroupRequest(id=group_id))

    def add_group_member(self, group_id: str, user_id: str) -> gpb.Group:
        request = gpb.AddGroupMemberRequest(group_id=group_id, user_id=user_id)
        return self._call(self._groups.AddGroupMember, request)

    def remove_group_member(self, group_id: str, user_id: str) -> gpb.Group:
        request = gpb.RemoveGroupMemberRequest(group_id=group_id, user_id=user_id)
        return self._call(self._groups.RemoveGroupMember, request)

    # --------------------------------------------------------------------------------

    def _call(
        self,
        method: grpc.UnaryUnaryMultiCallable[Request, Reply],
        request: Request,
        *,
        retry: bool = True,
    ) -> Reply:
        """One unary RPC under this client's key, deadline and retries."""

        def attempt(seconds: float | None) -> Reply:
            try:
                return method(request, timeout=seconds, metadata=self._metadata)
            except grpc.RpcError as error:
                raise error_from_rpc(error) from None

        retrying = self._retrying if retry else dataclasses.replace(self._retrying, retries=0)
        return retrying.call(attempt, type(request).__name__)


def _authorization(api_key: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {api_key}"),) if api_key is not None else ()


def _message(value: Built | Mapping[str, Any], kind: type[Built]) -> Built:
    """`value` as a `kind` message: itself, or parsed from its JSON shape
    (an unknown field raises json_format.ParseError)."""
    if isinstance(value, Message):
        return value
    return json_format.ParseDict(dict(value), kind())
