"""The JSON the server writes itself (GetModelJson and ListModelsJson,
server/transport/http_json.py) against the JSON Envoy's transcoder and
http_face.lua write from a Model message (ToggleModel's reply, the export's):
through the real Envoy, every model GetModel answers and every listed model
must be, byte for byte, what the transcoder wrote of it. The models carry
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
from dataclasses import dataclass
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


@dataclass
class Parity:
    registry: Registry
    keys: dict[str, str]  # caller -> API key
    # What the transcoder wrote of each model (id -> JSON) as each caller sees it.
    transcoded: dict[str, dict[str, bytes]]


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Parity]:
    path: Path = tmp_path_factory.mktemp("parity") / "r.db"
    registry = start_registry(f"sqlite:///{path}", http=True)
    try:
        keys = {"admin": ADMIN_KEY, **add_users(registry, {"reader": {}})}
        with grpc.insecure_channel(registry.grpc_target) as channel:
            admin = Caller(registry, channel, ADMIN_KEY)
            for model in parity_models():
                everyone = {"access_type": "user", "access_id": "*", "permission": "read"}
                grants = model.get("access_grants", [])
                admin.create({**model, "access_grants": [*grants, everyone]})
        yield Parity(registry, keys, transcoded_models(registry, keys))
    finally:
        assert registry.stop() == 0


def transcoded_models(registry: Registry, keys: dict[str, str]) -> dict[str, dict[str, bytes]]:
    """Each model as Envoy's transcoder and the Lua filter write a Model: for
    the admin, ToggleModel's reply (toggled twice, so it is as created); for
    the reader, who may not toggle, the export's (a model the reader may not
    change, without write_access, which GetModel adds as `false` before
    version_id, its place in the message)."""
    admin: dict[str, bytes] = {}
    reader: dict[str, bytes] = {}
    for model in parity_models():
        toggle = f"/api/v1/models/model/toggle?id={model['id']}"
        for _ in range(2):
            response = http_request(registry.http_port, "POST", toggle, key=keys["admin"])
            assert response.status == 200, response.body[:300]
        admin[model["id"]] = response.body
        exported = get(registry, f"/api/v1/models/export?ids={model['id']}", keys["reader"])
        assert exported.startswith(b"[{") and exported.endswith(b"}]")
        before, version = exported[1:-1].split(b',"version_id":')
        reader[model["id"]] = before + b',"write_access":false,"version_id":' + version
    return {"admin": admin, "reader": reader}


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


def assert_same_model(written: bytes, transcoded: bytes, model_id: str) -> None:
    if model_id == "parity-many-keys":  # several keys: compared parsed
        assert json.loads(written) == json.loads(transcoded)
    else:
        assert written == transcoded


@pytest.mark.parametrize("caller", ["admin", "reader"])
def test_get_model_writes_the_text_the_transcoder_writes(web: Parity, caller: str):
    for model_id, transcoded in web.transcoded[caller].items():
        written = get(web.registry, f"/api/models/model?id={model_id}", web.keys[caller])
        assert_same_model(written, transcoded, model_id)
        parsed = json.loads(written)
        assert parsed["write_access"] is (caller == "admin")
        assert (parsed["params"] == {}) is (caller == "reader")


@pytest.mark.parametrize("caller", ["admin", "reader"])
def test_each_listed_model_is_the_text_the_transcoder_writes(web: Parity, caller: str):
    transcoded = web.transcoded[caller]
    seen = []
    for page in pages_of_one(web.registry, web.keys[caller]):
        parsed = json.loads(page)
        [model_id] = [item["id"] for item in parsed["items"]]
        seen.append(model_id)
        token = json.dumps(parsed["next_page_token"])
        rest = f'],"total":{len(transcoded)},"next_page_token":{token}}}'.encode()
        assert page.startswith(b'{"items":[') and page.endswith(rest)
        assert_same_model(page[len(b'{"items":[') : -len(rest)], transcoded[model_id], model_id)
    assert sorted(seen) == sorted(transcoded)


def test_the_texts_hold_every_escape_and_number_form(web: Parity):
    """What the byte comparison covers: protobuf's own escapes and number
    forms are in the transcoder's texts compared (so neither side writes
    them plainly)."""
    admin = web.transcoded["admin"]
    numbers = admin["parity-numbers"]
    for written in [b"\\u003c", b"\\u2028", b"1e+21", b"4.94065645841247e-324", b"2000"]:
        assert written in numbers, written
    first = admin["parity-text-00"]
    for written in [b"\\b", b"\\u0001", b"\\u007f", b"\\u00ad", b"\\\\", b'\\"', "é".encode()]:
        assert written in first, written
    astral = b"".join(
        text for model_id, text in admin.items() if model_id.startswith("parity-text")
    )
    assert b"\\udb40\\udc01" in astral and "😀".encode() in astral


def test_an_empty_page_and_errors_are_written_as_before(web: Parity):
    registry = web.registry
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
    response = http_request(registry.http_port, "GET", "/api/models/model?id=nope", key=ADMIN_KEY)
    assert (response.status, response.body) == (404, b'{"detail":"Model not found"}')
    assert not [h for h in response.headers if h.startswith(("grpc-", "x-envoy-"))]
