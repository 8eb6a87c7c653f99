"""Domain errors -> google.rpc.Status (transport/status.py): one code, one
message and one ErrorInfo each; BadRequest names every bad field."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from modelregistry_server.domain import errors
from modelregistry_server.transport.status import internal_status, status_for


def unpacked(status: status_pb2.Status) -> list[Message]:
    found: list[Message] = []
    for detail in status.details:
        for kind in (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest):
            if detail.Is(kind.DESCRIPTOR):
                message = kind()
                detail.Unpack(message)
                found.append(message)
    assert len(found) == len(status.details), "a detail of an unexpected type"
    return found


def info(reason: str) -> error_details_pb2.ErrorInfo:
    return error_details_pb2.ErrorInfo(reason=reason, domain="modelregistry.v1")


@pytest.mark.parametrize(
    ("error", "code", "grpc_code", "message", "reason"),
    [
        (
            errors.Unauthenticated(),
            code_pb2.UNAUTHENTICATED,
            grpc.StatusCode.UNAUTHENTICATED,
            "Unauthorized",
            "UNAUTHENTICATED",
        ),
        (
            errors.PermissionDenied(),
            code_pb2.PERMISSION_DENIED,
            grpc.StatusCode.PERMISSION_DENIED,
            "Unauthorized",
            "PERMISSION_DENIED",
        ),
        (
            errors.ModelIdTaken(),
            code_pb2.ALREADY_EXISTS,
            grpc.StatusCode.ALREADY_EXISTS,
            "Model ID is already taken",
            "MODEL_ID_TAKEN",
        ),
        (
            errors.ServiceUnavailable(),
            code_pb2.UNAVAILABLE,
            grpc.StatusCode.UNAVAILABLE,
            "Service Unavailable",
            "DATABASE_UNAVAILABLE",
        ),
    ],
)
def test_each_error_has_its_code_message_and_reason(
    error: errors.DomainError, code: int, grpc_code: grpc.StatusCode, message: str, reason: str
):
    status = status_for(error)
    assert status.code == code
    assert status.message == message
    assert unpacked(status) == [info(reason)]
    # What the interceptor hands to grpc carries the same code and message.
    assert rpc_status.to_status(status).code == grpc_code
    assert rpc_status.to_status(status).details == message


def test_invalid_argument_names_every_field_and_says_the_first():
    error = errors.InvalidArgument(
        [
            errors.FieldViolation("id", "Model ID is too long (max 256 characters)"),
            errors.FieldViolation("meta.profile_image_url", "meta.profile_image_url must be ..."),
            errors.FieldViolation("access_grants[2].permission", "must be 'read' or 'write'"),
        ]
    )
    status = status_for(error)
    assert status.code == code_pb2.INVALID_ARGUMENT
    assert rpc_status.to_status(status).code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.message == "Model ID is too long (max 256 characters)"
    assert unpacked(status) == [
        info("INVALID_ARGUMENT"),
        error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field="id", description="Model ID is too long (max 256 characters)"
                ),
                error_details_pb2.BadRequest.FieldViolation(
                    field="meta.profile_image_url",
                    description="meta.profile_image_url must be ...",
                ),
                error_details_pb2.BadRequest.FieldViolation(
                    field="access_grants[2].permission", description="must be 'read' or 'write'"
                ),
            ]
        ),
    ]


def test_internal_says_nothing_of_the_cause():
    status = internal_status()
    assert status.code == code_pb2.INTERNAL
    assert status.message == "Internal Server Error"
    assert unpacked(status) == [info("INTERNAL")]


def test_every_domain_error_has_a_code():
    def subclasses(cls: type) -> list[type]:
        return [c for sub in cls.__subclasses__() for c in (sub, *subclasses(sub))]

    kinds = subclasses(errors.DomainError)
    assert len(kinds) >= 5
    for kind in kinds:
        error = (
            kind([errors.FieldViolation("f", "d")]) if kind is errors.InvalidArgument else kind()
        )
        assert status_for(error).code not in (code_pb2.OK, code_pb2.UNKNOWN, code_pb2.INTERNAL)
