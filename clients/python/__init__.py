"""A typed Python client of the model registry:

    from modelregistry.client import Client, NotFound

    with Client("localhost:50051", api_key=key) as registry:
        model = registry.get_model("my-model")

Every RPC of ModelService and GroupService is a method (`GetModel` is
`get_model`); see Client for deadlines, retries and what they return, and
errors.py for the exceptions."""

from .client import Client
from .errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RegistryError,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from .retry import Backoff

__all__ = [
    "AlreadyExists",
    "Backoff",
    "Client",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "RegistryError",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
]
