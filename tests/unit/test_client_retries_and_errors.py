"""The Python client's pure parts: a method for every RPC, the backoff
schedule, the retry loop (on a clock of its own) and the error classes."""

from __future__ import annotations

import importlib
import pkgutil
import re

import grpc
import pytest
from google.protobuf import any_pb2, struct_pb2
from google.rpc import error_details_pb2

import modelregistry.v1
from modelregistry.client import (
    AlreadyExists,
    Backoff,
    Client,
    DeadlineExceeded,
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
from modelregistry.client.errors import registry_error, unpack
from modelregistry.client.retry import Retrying


def snake_case(rpc: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", rpc).lower()


def every_rpc() -> list[str]:
    """Each RPC of each service in the contract's generated modules, but
    those that answer a google.api.HttpBody: they serve the HTTP face its
    JSON (ListModelsJson), and gRPC clients call their protobuf twins."""
    rpcs = []
    for module in pkgutil.iter_modules(modelregistry.v1.__path__):
        if module.name.endswith("_pb2"):
            file = importlib.import_module(f"modelregistry.v1.{module.name}").DESCRIPTOR
            for service in file.services_by_name.values():
                rpcs += [
                    f"{service.name}/{method.name}"
                    for method in service.methods
                    if method.output_type.full_name != "google.api.HttpBody"
                ]
    return rpcs


def test_every_rpc_of_every_service_has_a_client_method():
    methods = {rpc: snake_case(rpc.split("/")[1]) for rpc in every_rpc()}
    assert methods["ModelService/CreateModel"] == "create_model"
    assert methods["GroupService/AddGroupMember"] == "add_group_member"
    assert "ModelService/ListModels" in methods and "ModelService/ListModelsJson" not in methods
    missing = [rpc for rpc, name in methods.items() if not callable(getattr(Client, name, None))]
    assert missing == [], f"no method for {missing}: add each to clients/python/client.py"


# -- backoff and retries -------------------------------------------------------------


def test_backoff_ceilings_double_up_to_the_maximum():
    backoff = Backoff(initial=0.1, multiplier=2.0, maximum=1.0)
    assert [backoff.ceiling(n) for n in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_a_delay_is_drawn_below_its_ceiling():
    backoff = Backoff(initial=0.5, multiplier=3.0, maximum=10.0)
    assert backoff.delay(2, lambda: 0.0) == 0.0
    assert backoff.delay(2, lambda: 0.5) == pytest.approx(2.25)
    assert all(0 <= backoff.delay(1) <= 1.5 for _ in range(200))


class Clock:
    """Time that passes only when the code under test waits or works."""

    def __init__(self) -> None:
        self.now = 100.0
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def retrying(clock: Clock, *, timeout: float | None = 10.0, retries: int = 3) -> Retrying:
    return Retrying(
        timeout,
        retries,
        Backoff(initial=1.0, multiplier=2.0, maximum=3.0),
        clock=lambda: clock.now,
        sleep=clock.sleep,
        rand=lambda: 0.5,
    )


def failing(clock: Clock, errors: list[RegistryError], took: float = 0.0):
    """An attempt that raises `errors` in turn, then answers "done"; each
    takes `took` seconds and records the time it was given."""
    given: list[float | None] = []

    def attempt(seconds: float | None) -> str:
        given.append(seconds)
        clock.now += took
        if errors:
            raise errors.pop(0)
        return "done"

    return attempt, given


def unavailable() -> Unavailable:
    return Unavailable(grpc.StatusCode.UNAVAILABLE, "Service Unavailable")


def test_unavailable_is_retried_after_growing_waits():
    clock = Clock()
    attempt, given = failing(clock, [unavailable(), unavailable(), unavailable()])
    assert retrying(clock).call(attempt, "Call") == "done"
    assert clock.waits == [0.5, 1.0, 1.5]  # half of 1, 2, then 3 (the maximum)
    assert given == [10.0, 9.5, 8.5, 7.0]  # each attempt gets what is left of the deadline


def test_after_the_last_retry_the_error_carries_every_attempt():
    clock = Clock()
    attempt, given = failing(clock, [unavailable() for _ in range(5)])
    with pytest.raises(Unavailable) as caught:
        retrying(clock, retries=2).call(attempt, "Call")
    assert caught.value.attempts == 3 and len(given) == 3 and len(clock.waits) == 2


@pytest.mark.parametrize(
    "error",
    [
        NotFound(grpc.StatusCode.NOT_FOUND, "Model not found"),
        DeadlineExceeded(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"),
        Internal(grpc.StatusCode.INTERNAL, "Internal Server Error"),
    ],
)
def test_any_other_error_is_not_retried(error: RegistryError):
    clock = Clock()
    attempt, given = failing(clock, [error])
    with pytest.raises(type(error)) as caught:
        retrying(clock).call(attempt, "Call")
    assert caught.value.attempts == 1 and len(given) == 1 and clock.waits == []


def test_an_error_after_a_retry_counts_the_attempts():
    clock = Clock()
    taken = AlreadyExists(grpc.StatusCode.ALREADY_EXISTS, "Model ID is already taken")
    attempt, _ = failing(clock, [unavailable(), taken])
    with pytest.raises(AlreadyExists) as caught:
        retrying(clock).call(attempt, "CreateModelRequest")
    assert caught.value.attempts == 2


def test_no_retry_starts_once_its_wait_would_reach_the_deadline():
    clock = Clock()
    attempt, given = failing(clock, [unavailable() for _ in range(10)], took=2.5)
    with pytest.raises(Unavailable) as caught:
        retrying(clock, timeout=6.0, retries=10).call(attempt, "Call")
    # 2.5 s, a wait of 0.5 s, 2.5 s: 5.5 s gone; the next wait (1 s) would end past 6 s.
    assert caught.value.attempts == 2 and clock.waits == [0.5]
    assert given == [6.0, 3.0]


def test_without_a_timeout_attempts_have_no_deadline():
    clock = Clock()
    attempt, given = failing(clock, [unavailable()])
    assert retrying(clock, timeout=None).call(attempt, "Call") == "done"
    assert given == [None, None]


# -- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgument),
        (grpc.StatusCode.NOT_FOUND, NotFound),
        (grpc.StatusCode.ALREADY_EXISTS, AlreadyExists),
        (grpc.StatusCode.PERMISSION_DENIED, PermissionDenied),
        (grpc.StatusCode.UNAUTHENTICATED, Unauthenticated),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, ResourceExhausted),
        (grpc.StatusCode.UNAVAILABLE, Unavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceeded),
        (grpc.StatusCode.INTERNAL, Internal),
        (grpc.StatusCode.CANCELLED, RegistryError),
        (grpc.StatusCode.UNKNOWN, RegistryError),
    ],
)
def test_each_code_has_its_class(code: grpc.StatusCode, kind: type[RegistryError]):
    error = registry_error(code, "said")
    assert type(error) is kind
    assert (error.code, error.message, error.details, error.attempts) == (code, "said", [], 1)
    assert str(error) == f"{code.name}: said"


def test_field_violations_and_reason_come_from_the_details():
    info = error_details_pb2.ErrorInfo(reason="INVALID_ARGUMENT", domain="modelregistry.v1")
    bad = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="name", description="name is bad"),
            error_details_pb2.BadRequest.FieldViolation(field="meta", description="meta is bad"),
        ]
    )
    error = registry_error(grpc.StatusCode.INVALID_ARGUMENT, "name is bad", [info, bad])
    assert isinstance(error, InvalidArgument) and error.reason == "INVALID_ARGUMENT"
    assert error.field_violations == [
        FieldViolation("name", "name is bad"),
        FieldViolation("meta", "meta is bad"),
    ]
    assert registry_error(grpc.StatusCode.NOT_FOUND, "gone").reason is None


def test_details_are_unpacked_to_their_types_and_unknown_ones_stay_packed():
    info = error_details_pb2.ErrorInfo(reason="MODEL_ID_TAKEN", domain="modelregistry.v1")
    packed = any_pb2.Any()
    packed.Pack(info)
    assert unpack(packed) == info and isinstance(unpack(packed), error_details_pb2.ErrorInfo)
    unknown = any_pb2.Any(
        type_url="type.googleapis.com/example.Unknown", value=struct_pb2.Value().SerializeToString()
    )
    assert unpack(unknown) is unknown
