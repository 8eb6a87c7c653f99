"""A failed call as a typed exception: one class per gRPC code the registry
answers with, each carrying the code, the message and the google.rpc
details of the `grpc-status-details-bin` trailer, decoded."""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import grpc
from google.protobuf import any_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message
from google.rpc import error_details_pb2  # registers ErrorInfo, BadRequest, ... for unpacking
from grpc_status import rpc_status


class FieldViolation(NamedTuple):
    """One bad field of an INVALID_ARGUMENT, from its google.rpc.BadRequest."""

    field: str
    description: str


class RegistryError(Exception):
    """A call that did not succeed. `details` are the google.rpc messages
    (ErrorInfo, BadRequest, ...) the server sent; a detail of a type this
    process does not know stays a google.protobuf.Any. `attempts` counts the
    calls made, retries included."""

    CODE: ClassVar[grpc.StatusCode | None] = None  # set by each subclass

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        details: list[Message] | None = None,
        *,
        attempts: int = 1,
    ) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.details = details or []
        self.attempts = attempts

    @property
    def reason(self) -> str | None:
        """The ErrorInfo's reason (e.g. "MODEL_ID_TAKEN"), if the server sent one."""
        for detail in self.details:
            if isinstance(detail, error_details_pb2.ErrorInfo):
                return str(detail.reason)
        return None


class InvalidArgument(RegistryError):
    CODE = grpc.StatusCode.INVALID_ARGUMENT

    @property
    def field_violations(self) -> list[FieldViolation]:
        """Every bad field the server named, in its order."""
        return [
            FieldViolation(str(violation.field), str(violation.description))
            for detail in self.details
            if isinstance(detail, error_details_pb2.BadRequest)
            for violation in detail.field_violations
        ]


class NotFound(RegistryError):
    CODE = grpc.StatusCode.NOT_FOUND


class AlreadyExists(RegistryError):
    CODE = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(RegistryError):
    """The call cannot be made in the resource's state (deleting the
    current version)."""

    CODE = grpc.StatusCode.FAILED_PRECONDITION


class PermissionDenied(RegistryError):
    CODE = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(RegistryError):
    CODE = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhausted(RegistryError):
    CODE = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(RegistryError):
    CODE = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(RegistryError):
    CODE = grpc.StatusCode.DEADLINE_EXCEEDED


class Internal(RegistryError):
    CODE = grpc.StatusCode.INTERNAL


_BY_CODE: dict[grpc.StatusCode, type[RegistryError]] = {
    kind.CODE: kind for kind in RegistryError.__subclasses__() if kind.CODE is not None
}


def registry_error(
    code: grpc.StatusCode, message: str, details: list[Message] | None = None
) -> RegistryError:
    """The exception of `code`'s class (RegistryError itself for a code
    without one)."""
    return _BY_CODE.get(code, RegistryError)(code, message, details)


def error_from_rpc(error: grpc.RpcError) -> RegistryError:
    """A failed call's typed exception, its details decoded from the trailer."""
    if not isinstance(error, grpc.Call):  # every RpcError of a unary call is one
        return RegistryError(grpc.StatusCode.UNKNOWN, str(error))
    code, message = error.code(), error.details() or ""
    try:
        status = rpc_status.from_call(error)
    except ValueError:  # a trailer contradicting the call's own code or message
        status = None
    details = [unpack(packed) for packed in status.details] if status is not None else []
    return registry_error(code, message, details)


def unpack(packed: any_pb2.Any) -> Message:
    """A detail as its own message type when this process knows the type."""
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(packed.TypeName())
    except KeyError:
        return packed
    detail = message_factory.GetMessageClass(descriptor)()
    packed.Unpack(detail)
    return detail
