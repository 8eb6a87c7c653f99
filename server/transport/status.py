"""The one place where a domain error becomes a gRPC status. Envoy's
error-shaping script maps these codes to HTTP statuses (envoy/http_face.lua)."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from ..domain import errors

ERROR_DOMAIN = "modelregistry.v1"
INTERNAL_MESSAGE = "Internal Server Error"

_CODES: dict[type[errors.DomainError], grpc.StatusCode] = {
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.ModelIdTaken: grpc.StatusCode.ALREADY_EXISTS,
    errors.ServiceUnavailable: grpc.StatusCode.UNAVAILABLE,
    errors.ModelNotFound: grpc.StatusCode.NOT_FOUND,
    errors.GroupNotFound: grpc.StatusCode.NOT_FOUND,
    errors.GroupIdTaken: grpc.StatusCode.ALREADY_EXISTS,
    errors.UserNotFound: grpc.StatusCode.NOT_FOUND,
    errors.VersionNotFound: grpc.StatusCode.NOT_FOUND,
    errors.CurrentVersion: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ExportTooLarge: grpc.StatusCode.FAILED_PRECONDITION,
}


def status_for(error: errors.DomainError) -> status_pb2.Status:
    code = _CODES[type(error)]
    details = [error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN)]
    if isinstance(error, errors.InvalidArgument):
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in error.violations
                ]
            )
        )
    return _status(code, error.message, details)


def internal_status() -> status_pb2.Status:
    info = error_details_pb2.ErrorInfo(reason="INTERNAL", domain=ERROR_DOMAIN)
    return _status(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE, [info])


def _status(code: grpc.StatusCode, message: str, details: list[Any]) -> status_pb2.Status:
    packed = []
    for detail in details:
        wrapper = any_pb2.Any()
        wrapper.Pack(detail)
        packed.append(wrapper)
    return status_pb2.Status(code=code.value[0], message=message, details=packed)
