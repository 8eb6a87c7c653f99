"""Wraps every call of ModelService and GroupService: authenticates the
caller, turns the errors a call raises into google.rpc.Status replies, and
records the call's metrics and log line (telemetry.py)."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any, TypeAlias

import grpc
from google.protobuf.message import DecodeError
from grpc_status import rpc_status

from ..domain.auth import Authenticator
from ..domain.errors import DomainError, FieldViolation, InvalidArgument, ServiceUnavailable
from ..domain.models import Principal
from ..domain.stores import StorageUnavailable
from ..domain.validation import MAX_JSON_DEPTH
from .status import internal_status, status_for
from .telemetry import CallRecorder

log = logging.getLogger(__name__)

UNDECODABLE = FieldViolation(
    "request",
    f"request could not be decoded: malformed, or params/meta nested deeper than"
    f" {MAX_JSON_DEPTH} levels",
)

_caller: contextvars.ContextVar[Principal] = contextvars.ContextVar("caller")


def current_caller() -> Principal:
    """The authenticated caller of the RPC being served."""
    return _caller.get()


# Generic only in the type stubs: spelled as strings, never evaluated.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


class ModelServiceInterceptor(grpc.aio.ServerInterceptor):
    def __init__(
        self, service_prefixes: tuple[str, ...], authenticator: Authenticator, executor: Executor
    ) -> None:
        self._prefixes = service_prefixes  # e.g. "/modelregistry.v1.ModelService/"
        self._authenticator = authenticator
        self._executor = executor
        self._wrapped: dict[str, Handler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        wrapped = self._wrapped.get(details.method)
        if wrapped is not None:
            return wrapped
        handler = await continuation(details)
        # Health and reflection are open to all; unknown methods stay UNIMPLEMENTED.
        if handler is None or not details.method.startswith(self._prefixes):
            return handler
        if handler.unary_unary is None or handler.request_deserializer is None:
            raise NotImplementedError("only unary ModelService methods are served")
        # The request is decoded inside the guard, so that a malformed or
        # too deeply nested message is INVALID_ARGUMENT, not UNKNOWN.
        recorder = CallRecorder(details.method.rpartition("/")[2])
        wrapped = grpc.unary_unary_rpc_method_handler(
            # grpc.aio handlers are coroutines, though the stubs type them as sync.
            self._wrap(recorder, handler.unary_unary, handler.request_deserializer),  # type: ignore[arg-type]
            response_serializer=_sending_encoded(handler.response_serializer),
        )
        self._wrapped[details.method] = wrapped  # built once per method, not per call
        return wrapped

    def _wrap(
        self,
        recorder: CallRecorder,
        behavior: Callable[[Any, Context], Awaitable[Any]],
        deserialize: Callable[[bytes], Any],
    ) -> Callable[[bytes, Context], Awaitable[Any]]:
        async def guarded(raw_request: bytes, context: Context) -> Any:
            began = recorder.started()
            authorization, request_id = _read_metadata(context)
            caller: Principal | None = None
            code = grpc.StatusCode.OK
            try:
                try:
                    caller = await self._authenticate(authorization)
                    try:
                        request = deserialize(raw_request)
                    except DecodeError:
                        raise InvalidArgument([UNDECODABLE]) from None
                    token = _caller.set(caller)
                    try:
                        return await behavior(request, context)
                    finally:
                        _caller.reset(token)
                except DomainError as error:
                    status = status_for(error)
                except StorageUnavailable:
                    # A call whose domain code does not say it (the group
                    # admin's): the database is down, as for every other call.
                    status = status_for(ServiceUnavailable())
                except Exception:
                    log.exception("unexpected error in %s", behavior.__qualname__)
                    status = internal_status()
                reply = rpc_status.to_status(status)
                code = reply.code
                await context.abort(reply.code, reply.details, reply.trailing_metadata)
            except asyncio.CancelledError:  # the client gave up, or its deadline passed
                code = grpc.StatusCode.CANCELLED
                raise
            finally:
                recorder.finished(
                    began, code, caller.user_id if caller is not None else None, request_id
                )

        return guarded

    async def _authenticate(self, authorization: str | None) -> Principal:
        caller = self._authenticator.cached(authorization)
        if caller is None:
            loop = asyncio.get_running_loop()
            caller = await loop.run_in_executor(
                self._executor, self._authenticator.authenticate, authorization
            )
        return caller


def _sending_encoded(serialize: Callable[[Any], bytes] | None) -> Callable[[Any], bytes]:
    """The method's serializer, except that a reply its servicer has already
    encoded (ListModels': list_replies.py) is sent as it is."""
    if serialize is None:
        raise NotImplementedError("ModelService methods have serializers")

    def sending(reply: Any) -> bytes:
        return reply if isinstance(reply, bytes) else serialize(reply)

    return sending


def _read_metadata(context: Context) -> tuple[str | None, str | None]:
    """The call's authorization and x-request-id (Envoy forwards one with
    every request, and a gRPC client may send its own)."""
    authorization = request_id = None
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and authorization is None and isinstance(value, str):
            authorization = value
        elif key == "x-request-id" and request_id is None and isinstance(value, str):
            request_id = value
    return authorization, request_id
