"""The list's JSON, which the server writes itself (ListModelsJson,
server/transport/http_json.py), against GetModel's, which Envoy's transcoder
and http_face.lua write from protobuf: through the real Envoy, every listed
model must be byte for byte the model GetModel answers. The models carry
every Unicode character a string can hold, doubles of every kind and each
field's unset and set forms, so that an escape, a number's digits, a key's
place or a null written differently fails here.

Objects with several keys are compared parsed: protobuf writes a Struct's
keys in no fixed order, so two of its own replies differ in that too."""

from __future__ import annotations

import json
import math
import random
import struct
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from registry_support import Caller, add_users
from support import ADMIN_KEY, Registry, http_request, start_registry

# Every code point a model's string may hold (not NUL, not a surrogate), a
# slice a model: a model's reply stays well under Envoy's 4 MiB.
CODE_POINTS = [c for c in range(1, 0x110000) if not 0xD800 <= c <= 0xDFFF]
SLICE = 120_000


def doubles() -> list[float | int]:
    """Numbers a Struct holds, written every way protobuf writes a double."""
    chosen: list[float | int] = [
        0,
        1,
        -1,
        2000,
        0.1,
        0.7,
        0.1 + 0.7,
        1 / 3,
        -2.5,
        1e-5,
        1e-7,
        0.0001,
        123456789.123,
        999_999_999_999_999,
        -999_999_999_999_999,
        10**15,
        -(10**15),
        1234567890123456,
        2**53,
        2**53 + 2,
        1e16,
        1e20,
        1e21,
        1.2345678901234568e22,
        1.7976931348623157e308,
        5e-324,
        2.2250738585072014e-308,
        0.30000000000000004,
        1e300,
        -1e-300,
    ]
    rng = random.Random(20261128)
    while len(chosen) < 600:
        (value,) = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))
        if math.isfinite(value):
            chosen.append(value)
    chosen += [rng.randrange(-(2**53), 2**53) for _ in range(200)]
    chosen += [rng.randrange(10**14, 10**16) for _ in range(100)]
    return chosen


def parity_models() -> list[dict[str, Any]]:
    """Models whose every object has one key (so their text has one order),
    but the last, which has several."""
    models: list[dict[str, Any]] = []
    for n, start in enumerate(range(0, len(CODE_POINTS), SLICE)):
        text = "".join(chr(c) for c in CODE_POINTS[start : start + SLICE])
        models.append(
            {
                "id": f"parity-text-{n:02d}",
                "name": text[:200],
                "params": {"text": text},
                "meta": {"profile_image_url": "/static/favicon.png"},
            }
        )
    models.append(
        {
            "id": "parity-numbers",
            "name": "Numbers <&> \u2028",
            "base_model_id": "base<model>",
            "params": {"numbers": doubles()},
            "meta": {"profile_image_url": "/p.png"},
            "is_active": False,
            "access_grants": [
                {"access_type": "group", "access_id": "g<1>", "permission": "write"},
                {"access_type": "user", "access_id": "someone", "permission": "read"},
            ],
        }
    )
    models.append(
        {
            "id": "parity-shapes",
            "name": "Shapes",
            "params": {"nested": [{"a": [[], {}, None, True, False, "", [{"b": -0.5}]]}]},
            "meta": {"profile_image_url": "/x"},
        }
    )
    models.append(
        {
            "id": "parity-many-keys",
            "name": "Many keys",
            "params": {"temperature": 0.7, "max_tokens": 2000, "stop": ["\n"], "seed": None},
            "meta": {"description": "d", "capabilities": {"vision": True, "tools": False}},
        }
    )
    return models


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, dict[str, str]]]:
    path: Path = tmp_path_factory.mktemp("parity") / "r.db"
    registry = start_registry(f"sqlite:///{path}", http=True)
    try:
        keys = add_users(registry, {"reader": {}})
        with grpc.insecure_channel(registry.grpc_target) as channel:
            admin = Caller(registry, channel, ADMIN_KEY)
            for model in parity_models():
                everyone = {"access_type": "user", "access_id": "*", "permission": "read"}
                grants = model.get("access_grants", [])
                admin.create({**model, "access_grants": [*grants, everyone]})
        yield registry, keys
    finally:
        assert registry.stop() == 0


def get(registry: Registry, path: str, key: str) -> bytes:
    response = http_request(registry.http_port, "GET", path, key=key)
    assert response.status == 200, response.body[:300]
    assert response.headers["content-type"] == "application/json"
    assert not [h for h in response.headers if h.startswith(("grpc-", "x-envoy-"))]
    return response.body


def pages_of_one(registry: Registry, key: str) -> Iterator[bytes]:
    """The parity models' list, a model a page, by token."""
    token = ""
    while True:
        query = urllib.parse.urlencode({"query": "parity", "page_size": 1, "page_token": token})
        body = get(registry, f"/api/v1/models/list?{query}", key)
        yield body
        token = json.loads(body)["next_page_token"]
        if not token:
            return


@pytest.mark.parametrize("caller", ["admin", "reader"])
def test_each_listed_model_is_the_text_get_model_answers(web, caller):
    registry, keys = web
    key = ADMIN_KEY if caller == "admin" else keys["reader"]
    expected_ids = sorted(model["id"] for model in parity_models())
    seen = []
    for page in pages_of_one(registry, key):
        parsed = json.loads(page)
        [model_id] = [item["id"] for item in parsed["items"]]
        seen.append(model_id)
        model = get(registry, f"/api/v1/models/model?id={model_id}", key)
        token = json.dumps(parsed["next_page_token"])
        rest = f',"total":{len(expected_ids)},"next_page_token":{token}}}'
        if model_id == "parity-many-keys":  # several keys: compared parsed
            assert parsed["items"] == [json.loads(model)]
            assert page.endswith(b"]" + rest.encode())
        else:
            assert page == b'{"items":[' + model + b"]" + rest.encode()
        assert parsed["items"][0]["write_access"] is (caller == "admin")
        if caller == "reader":
            assert parsed["items"][0]["params"] == {}
    assert sorted(seen) == expected_ids


def test_the_texts_hold_every_escape_and_number_form(web):
    """What the byte comparison covers: protobuf's own escapes and number
    forms are in the replies compared (so neither side writes them plainly)."""
    registry, _ = web
    numbers = get(registry, "/api/v1/models/model?id=parity-numbers", ADMIN_KEY)
    for written in [b"\\u003c", b"\\u2028", b"1e+21", b"4.94065645841247e-324", b"2000"]:
        assert written in numbers, written
    first = get(registry, "/api/v1/models/model?id=parity-text-00", ADMIN_KEY)
    for written in [b"\\b", b"\\u0001", b"\\u007f", b"\\u00ad", b"\\\\", b'\\"', "é".encode()]:
        assert written in first, written
    astral = b"".join(
        get(registry, f"/api/v1/models/model?id=parity-text-{n:02d}", ADMIN_KEY)
        for n in range(len(CODE_POINTS) // SLICE + 1)
    )
    assert b"\\udb40\\udc01" in astral and "😀".encode() in astral


def test_an_empty_page_and_an_error_are_written_as_before(web):
    registry, _ = web
    body = get(registry, "/api/v1/models/list?query=nothing-matches-this", ADMIN_KEY)
    assert body == b'{"items":[],"total":0,"next_page_token":""}'
    response = http_request(
        registry.http_port, "GET", "/api/models/list?page_token=x", key=ADMIN_KEY
    )
    assert (response.status, response.body) == (
        400,
        b'{"detail":"page_token is not a token of this query"}',
    )
    assert not [h for h in response.headers if h.startswith(("grpc-", "x-envoy-"))]
