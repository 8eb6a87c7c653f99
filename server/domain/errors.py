"""Errors the domain raises. The transport maps each class to one gRPC status
code (transport/status.py); these classes carry only what a client is told."""

from __future__ import annotations

from dataclasses import dataclass


class DomainError(Exception):
    """An error the client is told about: `message` and a stable `reason`."""

    reason = "ERROR"
    message = "Error"

    def __init__(self, message: str | None = None) -> None:
        if message is not None:
            self.message = message
        super().__init__(self.message)


class Unauthenticated(DomainError):
    reason = "UNAUTHENTICATED"
    message = "Unauthorized"


class PermissionDenied(DomainError):
    reason = "PERMISSION_DENIED"
    message = "Unauthorized"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    field: str  # spec field path, e.g. "meta.profile_image_url"
    description: str


class InvalidArgument(DomainError):
    """One or more fields break a rule; the message is the first violation."""

    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = violations
        super().__init__(violations[0].description)


class ModelIdTaken(DomainError):
    reason = "MODEL_ID_TAKEN"
    message = "Model ID is already taken"


class ServiceUnavailable(DomainError):
    reason = "DATABASE_UNAVAILABLE"
    message = "Service Unavailable"


class ModelNotFound(DomainError):
    """No such model, or one the caller may not see: the two look alike."""

    reason = "MODEL_NOT_FOUND"
    message = "Model not found"


class GroupNotFound(DomainError):
    reason = "GROUP_NOT_FOUND"
    message = "Group not found"


class GroupIdTaken(DomainError):
    reason = "GROUP_ID_TAKEN"
    message = "Group ID is already taken"


class UserNotFound(DomainError):
    reason = "USER_NOT_FOUND"
    message = "User not found"


class VersionNotFound(DomainError):
    reason = "MODEL_VERSION_NOT_FOUND"
    message = "Model version not found"


class CurrentVersion(DomainError):
    """The model's current version cannot be deleted: restore another first."""

    reason = "CURRENT_VERSION"
    message = "Cannot delete the current version"


class ExportTooLarge(DomainError):
    """A whole export would not fit in one reply: it is refused, never cut short."""

    reason = "EXPORT_TOO_LARGE"
    message = (
        "The export is larger than one reply may be (4 MiB): ask for fewer ids,"
        " page it over gRPC (page_size, page_token) or run `model-registry export`"
    )
