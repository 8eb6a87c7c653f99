"""Generated requests, over gRPC and as JSON through Envoy.

Two properties. Judged creates: mostly valid models (unusual but valid
Unicode, grants with duplicates, shallow params and meta), some with exactly
one broken rule, each named; the rules of the README, written out here
independently of the server, decide accept or reject. An accepted model must
be stored exactly as sent after the documented defaults; a rejected one must
be INVALID_ARGUMENT (HTTP 400) naming the broken field, with no row.
Hostile requests: arbitrary values, bytes and keys; every answer is a success
or a client error with a message, never INTERNAL/UNKNOWN or a 5xx, never a
hang; a rejected create writes no row.

The regular run tries FUZZ_EXAMPLES (default 40) cases per test with fixed
seeds; `python3 tasks.py fuzz` tries 10,000 with random ones and prints the
counts."""

from __future__ import annotations

import copy
import itertools
import json
import math
import os
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelregistry.v1 import model_service_pb2_grpc as pb_grpc

from spec_examples import SPEC_REQUEST
from support import ADMIN_KEY, Registry, http_request, model_request, start_registry, status_details

DEFAULT_EXAMPLES = 40
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", str(DEFAULT_EXAMPLES)))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    # CI runs the same cases every time; the long run explores.
    derandomize=EXAMPLES == DEFAULT_EXAMPLES,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.filter_too_much,
    ],
    database=None,
)
# The long run needs more than the suite's per-test timeout.
pytestmark = pytest.mark.timeout(300 + EXAMPLES // 10)
CLIENT_CODES = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
CLIENT_STATUSES = {200, 400, 401, 413}  # the create path exists: never 404
# Judged creates: at least this share must be accepted, and this share
# rejected, or the generator has drifted to one side. (The fixed seed depends
# on where the file lies, so a clone draws other cases: the shares leave room;
# test_every_broken_rule_is_judged makes sure each broken rule is drawn.)
MIN_ACCEPTED = 0.3
MIN_REJECTED = 0.05
_engines: dict[str, sa.Engine] = {}  # one per registry, to read its rows
SEEN: dict[str, Counter] = {
    "grpc judged": Counter(),
    "http judged": Counter(),
    "grpc": Counter(),
    "http": Counter(),
    "grpc-bytes": Counter(),
}
BROKEN: dict[str, Counter] = {"grpc": Counter(), "http": Counter()}  # rules broken, by name
_fresh = itertools.count()

# == judged creates: the rules, written out from the README ===========================

MAX_ID = 256
MAX_DEPTH = 24
NUMBER_PARAMS = ("temperature", "top_p", "frequency_penalty", "presence_penalty")
DOCUMENTED_PARAMS = (*NUMBER_PARAMS, "max_tokens")
DOCUMENTED_META = ("profile_image_url", "description", "capabilities")
DEFAULT_PROFILE_IMAGE_URL = "/static/favicon.png"
ID_TOO_LONG = {
    "id": "Model ID is too long (max 256 characters)",
    "base_model_id": "base_model_id is too long (max 256 characters)",
}
MAX_EXACT = 2**53  # JSON numbers are doubles on the way: integers up to here are exact


def id_ok(value: Any) -> bool:
    """1 to 256 code points; no whitespace, control or invisible formatting
    characters."""
    return (
        isinstance(value, str)
        and 1 <= len(value) <= MAX_ID
        and not any(
            ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp")
            for ch in value
        )
    )


def levels(value: Any) -> int:
    """How many levels of objects/arrays `value` is."""
    if isinstance(value, dict):
        return 1 + max((levels(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((levels(v) for v in value), default=0)
    return 0


def json_document_ok(value: dict) -> bool:
    """Nesting inside at most 24 levels, and only JSON numbers (no NaN or
    infinity, which a gRPC Struct can carry)."""

    def finite(item: Any) -> bool:
        if isinstance(item, dict):
            return all(finite(v) for v in item.values())
        if isinstance(item, list):
            return all(finite(v) for v in item)
        return not (isinstance(item, float) and not math.isfinite(item))

    return levels(value) - 1 <= MAX_DEPTH and finite(value)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def image_source(value: Any) -> bool:
    """An http(s) URL with a host, a path starting with "/" (not "//", which
    names another host) or a data:image/ URI."""
    if not isinstance(value, str):
        return False
    lowered = value.lower()
    if lowered.startswith(("http://", "https://")):
        host = value.split("://", 1)[1].split("/", 1)[0]
        return host != ""
    return (value.startswith("/") and not value.startswith("//")) or lowered.startswith(
        "data:image/"
    )


def broken_rules(model: dict[str, Any]) -> list[str]:
    """The fields of `model` that break a rule of CreateModel, in field order."""
    broken = []
    if not id_ok(model.get("id", "")):
        broken.append("id")
    if not model.get("name", "").strip():
        broken.append("name")
    if "base_model_id" in model and not id_ok(model["base_model_id"]):
        broken.append("base_model_id")
    params = model.get("params")
    if not isinstance(params, dict):
        broken.append("params")
    else:
        broken += [f"params.{k}" for k in NUMBER_PARAMS if k in params and not is_number(params[k])]
        if "max_tokens" in params:
            tokens = params["max_tokens"]
            if not (is_number(tokens) and tokens > 0 and float(tokens).is_integer()):
                broken.append("params.max_tokens")
        if not json_document_ok(params):
            broken.append("params")
    meta = model.get("meta")
    if not isinstance(meta, dict):
        broken.append("meta")
    else:
        if "profile_image_url" in meta and not image_source(meta["profile_image_url"]):
            broken.append("meta.profile_image_url")
        if "description" in meta and not isinstance(meta["description"], str):
            broken.append("meta.description")
        if "capabilities" in meta and not isinstance(meta["capabilities"], dict):
            broken.append("meta.capabilities")
        if not json_document_ok(meta):
            broken.append("meta")
    for index, grant in enumerate(model.get("access_grants", [])):
        if grant.get("access_type") not in ("user", "group"):
            broken.append(f"access_grants[{index}].access_type")
        if not grant.get("access_id"):
            broken.append(f"access_grants[{index}].access_id")
        if grant.get("permission") not in ("read", "write"):
            broken.append(f"access_grants[{index}].permission")
    return broken


def as_stored(value: Any) -> Any:
    """A JSON value as it must come back: integral numbers are integers."""
    if isinstance(value, dict):
        return {k: as_stored(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_stored(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_EXACT:
        return int(value)
    return value


def expected_row(model: dict[str, Any]) -> dict[str, Any]:
    """What a valid `model` is stored as: the documented defaults applied,
    grants de-duplicated in first-seen order, server fields set."""
    meta = as_stored(model["meta"])
    meta.setdefault("profile_image_url", DEFAULT_PROFILE_IMAGE_URL)
    grants: list[dict] = []
    for grant in model.get("access_grants", []):
        if grant not in grants:
            grants.append(grant)
    return {
        "id": model["id"],
        "user_id": "admin",
        "base_model_id": model.get("base_model_id"),
        "name": model["name"],
        "params": as_stored(model["params"]),
        "meta": meta,
        "access_grants": grants,
        "is_active": model.get("is_active", True),
    }


def exactly(value: Any) -> Any:
    """`value` with the type of every number made visible, for comparing
    stored JSON (2000 and 2000.0 differ)."""
    if isinstance(value, dict):
        return {k: exactly(v) for k, v in value.items()}
    if isinstance(value, list):
        return [exactly(v) for v in value]
    return (type(value).__name__, value)


# -- generated models -------------------------------------------------------------------

# Unusual but valid: combining marks, right-to-left scripts, astral planes,
# emoji with modifiers, full-width forms, JSON and HTML punctuation.
UNUSUAL = [
    "é",
    "e\u0301",
    "\u0301",
    "模型",
    "😀",
    "👍🏽",
    "עברית",
    "العربية",
    "Ａ",
    "ß",
    "İ",
    "ǅ",
    "𝔘",
    "Ω",
    '"',
    "\\",
    "'",
    "<",
    "&",
    "/",
    "%00",
    "..",
    "null",
    "ﬀ",
    "\u0e01\u0e34",
]
id_char = st.one_of(st.characters(categories=("L", "M", "N", "P", "S")), st.sampled_from(UNUSUAL))
id_text = st.lists(id_char, max_size=12).map("".join)
# Anywhere else: any character UTF-8 can carry but NUL.
any_char = st.one_of(
    st.characters(codec="utf-8", exclude_characters="\x00"),
    st.sampled_from([*UNUSUAL, " ", "\t", "\n", "\u2028", "\u200b", "\u202e", "\ufeff"]),
)
free_text = st.lists(any_char, max_size=16).map("".join)
numbers = st.one_of(
    st.integers(-MAX_EXACT, MAX_EXACT),
    st.floats(-MAX_EXACT, MAX_EXACT, allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 1, -1, 2000, 0.5, 1.0, -0.0, 1e-300, MAX_EXACT, 0.1 + 0.2]),
)
valid_json = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, free_text),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(free_text, children, max_size=3)
    ),
    max_leaves=8,
)


def nested(depth: int, kind: str) -> Any:
    """`depth` levels of objects or arrays."""
    value: Any = {} if kind == "object" else []
    for _ in range(depth - 1):
        value = {"a": value} if kind == "object" else [value]
    return value


def other_keys(documented: tuple[str, ...]):
    keys = free_text.filter(lambda key: key not in documented)
    return st.dictionaries(keys, valid_json, max_size=4)


@st.composite
def params_values(draw) -> dict:
    params = draw(other_keys(DOCUMENTED_PARAMS))
    for key in NUMBER_PARAMS:
        if draw(st.booleans()):
            params[key] = draw(numbers)
    if draw(st.booleans()):
        params["max_tokens"] = draw(st.one_of(st.integers(1, 2**31), st.sampled_from([1, 2000])))
    if draw(st.integers(0, 9)) == 0:  # nesting at the limit is fine
        params["deep"] = nested(MAX_DEPTH, draw(st.sampled_from(["object", "array"])))
    return params


IMAGE_SOURCES = [
    DEFAULT_PROFILE_IMAGE_URL,
    "/",
    "/static/ünï.png",
    "https://example.com/x.png",
    "http://h",
    "HTTPS://EXAMPLE.COM/Y.PNG",
    "https://例え.jp/画像.png?size=2&x=%20",
    "data:image/png;base64,iVBORw0KGgo=",
    "DATA:IMAGE/svg+xml,<svg/>",
]


@st.composite
def meta_values(draw) -> dict:
    meta = draw(other_keys(DOCUMENTED_META))
    if draw(st.booleans()):
        meta["profile_image_url"] = draw(st.sampled_from(IMAGE_SOURCES))
    if draw(st.booleans()):
        meta["description"] = draw(free_text)
    if draw(st.booleans()):
        meta["capabilities"] = draw(
            st.dictionaries(free_text, st.one_of(st.booleans(), valid_json), max_size=3)
        )
    if draw(st.integers(0, 9)) == 0:
        meta["deep"] = nested(MAX_DEPTH, draw(st.sampled_from(["object", "array"])))
    return meta


grants = st.lists(
    st.fixed_dictionaries(
        {
            "access_type": st.sampled_from(["user", "group"]),
            # a small pool, so duplicates are common
            "access_id": st.sampled_from(["u1", "developers", "ünï", "g/1", "a b", "Ω-team"]),
            "permission": st.sampled_from(["read", "write"]),
        }
    ),
    max_size=5,
)


@dataclass(frozen=True)
class Shape:
    """A valid model, but for its id: the test makes that unique per call."""

    id_body: str
    id_length: int | None  # None: as it comes; else padded/cut to this length
    fields: dict[str, Any]


@st.composite
def valid_shapes(draw) -> Shape:
    fields: dict[str, Any] = {
        "name": draw(free_text.filter(lambda name: name.strip())),
        "params": draw(params_values()),
        "meta": draw(meta_values()),
    }
    if draw(st.booleans()):
        fields["access_grants"] = draw(grants)
    if draw(st.booleans()):
        fields["is_active"] = draw(st.booleans())
    if draw(st.booleans()):
        body = draw(id_text.filter(lambda text: text != ""))
        length = draw(st.sampled_from([None, None, 1, MAX_ID - 1, MAX_ID]))
        fields["base_model_id"] = sized(body, length)
    if draw(st.integers(0, 3)) == 0:  # server fields: ignored
        fields.update(user_id="mallory", created_at=draw(st.integers(0, 2**40)), updated_at=7)
    length = draw(st.sampled_from([None, None, None, MAX_ID - 1, MAX_ID]))
    return Shape(draw(id_text), length, fields)


def sized(text: str, length: int | None) -> str:
    if length is None:
        return text
    return (text + "x" * length)[:length]


def build(shape: Shape) -> dict[str, Any]:
    """The model of `shape`, with an id no other call has used."""
    prefix = f"j{next(_fresh)}-"
    return {"id": sized(prefix + shape.id_body, shape.id_length), **copy.deepcopy(shape.fields)}


# -- one broken rule each ----------------------------------------------------------------

WHITESPACE = [" ", "\t", "\n", "\r", "\u00a0", "\u2003", "\u3000", "\u2028", "\x85"]
CONTROL = ["\x01", "\x1b", "\x7f", "\u200b", "\u200d", "\u00ad", "\u202e", "\ufeff", "\u2060"]


@dataclass(frozen=True)
class Mutation:
    name: str
    field: str  # the field the answer must name; for a grant, which one is chosen later
    change: Callable[[dict[str, Any]], str | None]  # returns the field, if it names it

    def apply(self, model: dict[str, Any]) -> str:
        """Breaks the rule in `model`; the field whose rule is now broken."""
        return self.change(model) or self.field


def insert(where: str, char: str, at: float) -> Callable[[dict], None]:
    def apply(model: dict) -> None:
        value = model.get(where) or "m"
        cut = round(at * len(value))
        model[where] = value[:cut] + char + value[cut:]

    return apply


def put(path: tuple[str, ...], value: Any) -> Callable[[dict], None]:
    def apply(model: dict) -> None:
        target = model
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return apply


def drop(key: str) -> Callable[[dict], None]:
    def apply(model: dict) -> None:
        model.pop(key, None)

    return apply


def grant_change(key: str, value: str, at: float) -> Callable[[dict], None]:
    def apply(model: dict) -> None:
        granted = model.setdefault("access_grants", [])
        if not granted:
            granted.append({"access_type": "user", "access_id": "u1", "permission": "read"})
        granted[:] = [dict(grant) for grant in granted]
        index = min(int(at * len(granted)), len(granted) - 1)
        granted[index][key] = value
        return f"access_grants[{index}].{key}"

    return apply


KINDS = [
    "long id", "empty id", "whitespace in id", "control in id",
    "long base_model_id", "empty base_model_id", "whitespace in base_model_id",
    "control in base_model_id", "blank name", "no params", "no meta",
    "number param not a number", "max_tokens not a positive integer",
    "profile_image_url not an image", "description not a string",
    "capabilities not an object", "bad access_type", "bad permission", "empty access_id",
    "params too deep", "meta too deep", "NaN or infinity",
]  # fmt: skip


def kinds_for(surface: str) -> list[str]:
    # JSON cannot say NaN or infinity; a gRPC Struct can.
    return [kind for kind in KINDS if surface == "grpc" or kind != "NaN or infinity"]


@st.composite
def mutations(draw, surface: str, kind: str | None = None) -> Mutation:
    at = draw(st.floats(0, 1))
    if kind is None:
        kind = draw(st.sampled_from(kinds_for(surface)))
    if kind == "long id":
        length = draw(st.integers(MAX_ID + 1, MAX_ID + 44))
        return Mutation(kind, "id", lambda m: m.update(id=sized(m["id"], length)))
    if kind == "empty id":
        return Mutation(kind, "id", put(("id",), ""))
    if kind in ("whitespace in id", "control in id"):
        char = draw(st.sampled_from(WHITESPACE if kind.startswith("white") else CONTROL))
        return Mutation(kind, "id", insert("id", char, at))
    if kind == "long base_model_id":
        length = draw(st.integers(MAX_ID + 1, MAX_ID + 44))
        text = draw(id_text)
        return Mutation(kind, "base_model_id", put(("base_model_id",), sized(text, length)))
    if kind == "empty base_model_id":
        return Mutation(kind, "base_model_id", put(("base_model_id",), ""))
    if kind in ("whitespace in base_model_id", "control in base_model_id"):
        char = draw(st.sampled_from(WHITESPACE if kind.startswith("white") else CONTROL))
        return Mutation(kind, "base_model_id", insert("base_model_id", char, at))
    if kind == "blank name":
        return Mutation(kind, "name", put(("name",), draw(st.sampled_from(["", " ", "\t\n "]))))
    if kind in ("no params", "no meta"):
        return Mutation(kind, kind[3:], drop(kind[3:]))
    if kind == "number param not a number":
        key = draw(st.sampled_from(NUMBER_PARAMS))
        value = draw(st.sampled_from(["0.7", "", True, False, [], [0.5], {}, {"v": 1}]))
        return Mutation(kind, f"params.{key}", put(("params", key), value))
    if kind == "max_tokens not a positive integer":
        value = draw(st.sampled_from([0, -1, -(2**31), 2.5, 0.5, 1e-9, "100", True, [], {}]))
        return Mutation(kind, "params.max_tokens", put(("params", "max_tokens"), value))
    if kind == "profile_image_url not an image":
        value = draw(
            st.sampled_from(
                ["javascript:alert(1)", "ftp://h/x.png", "relative.png", "", "http://",
                 "https://", "mailto:a@b", "data:text/html,<b>", 5, True, {}, []]
            )
        )  # fmt: skip
        return Mutation(kind, "meta.profile_image_url", put(("meta", "profile_image_url"), value))
    if kind == "description not a string":
        value = draw(st.sampled_from([5, 0.5, True, [], {}, ["d"]]))
        return Mutation(kind, "meta.description", put(("meta", "description"), value))
    if kind == "capabilities not an object":
        value = draw(st.sampled_from([[], ["vision"], "vision", 1, True]))
        return Mutation(kind, "meta.capabilities", put(("meta", "capabilities"), value))
    if kind in ("bad access_type", "bad permission"):
        key = "access_type" if kind == "bad access_type" else "permission"
        bad = ["team", "User", "USER", "", "groups", "user "] if key == "access_type" else [
            "admin", "READ", "", "execute", "read "
        ]  # fmt: skip
        return Mutation(kind, key, grant_change(key, draw(st.sampled_from(bad)), at))
    if kind == "empty access_id":
        return Mutation(kind, "access_id", grant_change("access_id", "", at))
    if kind in ("params too deep", "meta too deep"):
        where = kind.split()[0]
        depth = draw(st.integers(MAX_DEPTH + 1, MAX_DEPTH + 6))
        value = nested(depth, draw(st.sampled_from(["object", "array"])))
        return Mutation(kind, where, put((where, "deep"), value))
    assert kind == "NaN or infinity"
    where = draw(st.sampled_from(["params", "meta"]))
    number = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    return Mutation(kind, where, put((where, "n"), [1, {"x": number}]))


@st.composite
def judged_cases(draw, surface: str, kind: str | None = None) -> tuple[Shape, Mutation | None]:
    if kind is not None:
        return draw(valid_shapes()), draw(mutations(surface, kind))
    # About 60% valid (the simplest case, so also where shrinking goes).
    broken = draw(st.integers(0, 4)) >= 3
    shape = draw(valid_shapes())
    return shape, draw(mutations(surface)) if broken else None


def names_the_field(message: str, field: str) -> bool:
    return message == ID_TOO_LONG.get(field) or message.startswith(field + " ")


# -- the judged property ------------------------------------------------------------------


@pytest.fixture(scope="module")
def target(database_url_factory: Callable[[], str]) -> Iterator[Registry]:
    registry = start_registry(database_url_factory(), http=True)
    _engines[registry.database_url] = sa.create_engine(registry.database_url)
    yield registry
    _engines.pop(registry.database_url).dispose()
    assert registry.stop() == 0
    backend = registry.database_url.split(":", 1)[0].split("+")[0]
    for surface, counts in SEEN.items():
        if counts:
            print(f"\nfuzz {surface} on {backend}: {sum(counts.values())} cases: {dict(counts)}")
        counts.clear()
    for surface, counts in BROKEN.items():
        if counts:
            print(
                f"fuzz {surface} judged on {backend}, broken rules: {dict(sorted(counts.items()))}"
            )
        counts.clear()
    log = "".join(registry.output)
    assert "Traceback" not in log and ADMIN_KEY not in log


def stored_row(registry: Registry, model_id: str) -> dict[str, Any] | None:
    with _engines[registry.database_url].connect() as connection:
        query = sa.text("SELECT * FROM models WHERE id = :id")
        row = connection.execute(query, {"id": model_id}).mappings().first()
    if row is None:
        return None
    row = dict(row)
    for column in ("params", "meta"):
        if isinstance(row[column], str):  # SQLite hands back the JSON text
            row[column] = json.loads(row[column])
    row["is_active"] = bool(row["is_active"])
    with _engines[registry.database_url].connect() as connection:
        grants = connection.execute(
            sa.text(
                "SELECT access_type, access_id, permission FROM model_grants"
                " WHERE model_id = :id ORDER BY position"
            ),
            {"id": model_id},
        )
        row["access_grants"] = [dict(grant) for grant in grants.mappings()]
    return row


@dataclass
class Answer:
    ok: bool
    body: dict[str, Any] | None  # the created model (JSON), when ok
    message: str  # the error's message (gRPC) or detail (HTTP)
    fields: list[str] | None  # gRPC: the BadRequest's fields


def create_over_grpc(stub: pb_grpc.ModelServiceStub, model: dict[str, Any]) -> Answer:
    # Built field by field: Struct.update carries NaN and infinity, which
    # JSON (and so json_format) cannot.
    fields = {k: v for k, v in model.items() if k not in ("params", "meta")}
    request = model_request(fields)
    for where in ("params", "meta"):
        if where in model:
            getattr(request.model, where).SetInParent()
            getattr(request.model, where).update(model[where])
    try:
        created = stub.CreateModel(
            request, metadata=[("authorization", f"Bearer {ADMIN_KEY}")], timeout=30
        )
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
        violations = status_details(error)["BadRequest"].field_violations
        return Answer(False, None, error.details(), [v.field for v in violations])
    reply = json_format.MessageToDict(
        created, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return Answer(True, reply, "", None)


def create_over_http(registry: Registry, model: dict[str, Any], ascii_only: bool) -> Answer:
    body = json.dumps(model, ensure_ascii=ascii_only, allow_nan=False).encode()
    response = http_request(registry.http_port, "POST", "/api/models/create", body, key=ADMIN_KEY)
    assert response.status in (200, 400), (response.status, response.body)
    answer = response.json()
    if response.status == 200:
        return Answer(True, answer, "", None)
    assert list(answer) == ["detail"], answer
    return Answer(False, None, answer["detail"], None)


def judge(registry: Registry, surface: str, create: Callable[[dict], Answer], case) -> str:
    shape, mutation = case
    model = build(shape)
    changed = mutation.apply(model) if mutation is not None else None
    if mutation is not None:
        BROKEN[surface][mutation.name] += 1
    broken = broken_rules(model)
    # The generator's own check: a valid shape, plus at most the one broken rule.
    if mutation is None:
        assert broken == [], ("a generated valid model breaks", broken, model)
    else:
        assert broken == [changed], (mutation.name, broken, model)

    before = int(time.time())
    answer = create(model)
    after = int(time.time())
    row = stored_row(registry, model["id"]) if isinstance(model["id"], str) else None

    if not broken:
        assert answer.ok, ("valid model refused", answer.message, model)
        expected = expected_row(model)
        assert row is not None, "acknowledged but not stored"
        assert before <= row["created_at"] == row["updated_at"] <= after
        stored = {key: row[key] for key in expected}
        assert exactly(stored) == exactly(expected), (stored, expected)
        # The reply is the stored model (numbers compared by value: gRPC
        # carries each as a double).
        reply = {key: answer.body.get(key) for key in expected}
        assert reply == expected, (reply, expected)
        assert int(answer.body["created_at"]) == row["created_at"]
        return "accepted"

    field = broken[0]
    assert not answer.ok, ("accepted although it breaks", field, model)
    assert names_the_field(answer.message, field), (field, answer.message)
    if answer.fields is not None:
        assert answer.fields == broken, (answer.fields, broken)
    assert row is None, "rejected but stored"
    return "rejected"


def check_shares(counts: Counter) -> None:
    total = counts["accepted"] + counts["rejected"]
    assert counts["accepted"] >= MIN_ACCEPTED * total, counts
    assert counts["rejected"] >= MIN_REJECTED * total, counts


def creator(target: Registry, surface: str, stub: pb_grpc.ModelServiceStub, ascii_only: bool):
    if surface == "grpc":
        return lambda model: create_over_grpc(stub, model)
    return lambda model: create_over_http(target, model, ascii_only)


@pytest.mark.parametrize("surface", ["grpc", "http"])
def test_creates_are_judged_by_the_rules(target: Registry, surface: str):
    counts = SEEN[f"{surface} judged"]
    with grpc.insecure_channel(target.grpc_target) as channel:
        stub = pb_grpc.ModelServiceStub(channel)

        @FUZZ
        @given(case=judged_cases(surface), ascii_only=st.booleans())
        def run(case, ascii_only: bool) -> None:
            create = creator(target, surface, stub, ascii_only)
            counts[judge(target, surface, create, case)] += 1

        run()
    check_shares(counts)


@pytest.mark.parametrize("surface", ["grpc", "http"])
def test_every_broken_rule_is_judged(target: Registry, surface: str):
    """Each kind of broken rule, a few times, whatever the main run drew."""
    with grpc.insecure_channel(target.grpc_target) as channel:
        stub = pb_grpc.ModelServiceStub(channel)
        for kind in kinds_for(surface):

            @settings(FUZZ, max_examples=min(EXAMPLES, 3))
            @given(case=judged_cases(surface, kind), ascii_only=st.booleans())
            def run(case, ascii_only: bool) -> None:
                create = creator(target, surface, stub, ascii_only)
                assert judge(target, surface, create, case) == "rejected"

            run()


# == hostile requests: no 5xx, no traceback, no row for a refusal =========================

edge_text = st.one_of(
    st.text(max_size=300),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "a\x00b",
            "\ud800",  # lone surrogates: JSON can escape them, UTF-8 cannot hold them
            "a\udfffb",
            "\u200f\u0627\u0644\u0645",  # right-to-left
            "\u0301",  # a lone combining mark
            "\u202eabc",
            "e\u0301",
            "\ufeff",
            "é" * 256,
            "é" * 257,
            "x" * 257,
            "😀" * 100,
            "\n",
            "javascript:alert(1)",
            "data:image/png;base64,AAAA",
            "/static/x.png",
            "//evil",
            "null",
        ]
    ),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**60), 2**60),
    st.floats(allow_nan=False, allow_infinity=False),
    edge_text,
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(edge_text, children, max_size=4)
    ),
    max_leaves=30,
)
auth_values = st.one_of(
    st.just(f"Bearer {ADMIN_KEY}"),
    st.just(f"bearer {ADMIN_KEY}"),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
    st.sampled_from(
        ["Bearer", "Bearer ", "Basic x", f"Bearer {ADMIN_KEY}x", f"Bearer  {ADMIN_KEY}"]
    ),
)
FIELDS = [
    "id",
    "name",
    "base_model_id",
    "params",
    "meta",
    "access_grants",
    "is_active",
    "user_id",
    "created_at",
    "updated_at",
    "extra",
]


@st.composite
def http_bodies(draw) -> tuple[str | None, bytes]:
    """A JSON body: the spec's example with fields dropped, replaced or added,
    or now and then arbitrary JSON or bytes."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return None, draw(st.binary(max_size=200))
    if kind == 1:
        return None, json.dumps(draw(json_values)).encode()
    model = dict(SPEC_REQUEST)
    model["id"] = draw(st.one_of(edge_text, json_values))
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)):
        if draw(st.booleans()):
            model.pop(field, None)
        else:
            model[field] = draw(json_values)
    if draw(st.booleans()):
        depth = draw(st.integers(1, 300))
        model["params"] = json.loads('{"a":' * depth + "1" + "}" * depth)
    model_id = model.get("id") if isinstance(model.get("id"), str) else None
    return model_id, json.dumps(model).encode()


grpc_text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=300)


@st.composite
def grpc_models(draw) -> dict:
    model = {
        "id": draw(st.one_of(grpc_text, st.sampled_from(["é" * 256, "é" * 257, "", " a"]))),
        "name": draw(grpc_text),
    }
    for field in ("params", "meta"):
        if draw(st.integers(0, 4)):
            value = draw(st.dictionaries(grpc_text, json_values.filter(_no_surrogates), max_size=5))
            model[field] = value
    if draw(st.booleans()):
        model["base_model_id"] = draw(grpc_text)
    if draw(st.booleans()):
        model["is_active"] = draw(st.booleans())
    model["access_grants"] = draw(
        st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "access_type": st.one_of(grpc_text, st.sampled_from(["user", "group"])),
                    "access_id": grpc_text,
                    "permission": st.one_of(grpc_text, st.sampled_from(["read", "write"])),
                },
            ),
            max_size=4,
        )
    )
    return model


def _encodable(text: str) -> bool:
    try:
        text.encode()
        return True
    except UnicodeEncodeError:  # a lone surrogate
        return False


def _no_surrogates(value) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode()
        return True
    except UnicodeEncodeError:
        return False


def row_exists(registry: Registry, model_id: str) -> bool:
    if "\x00" in model_id or not _encodable(model_id):
        return False  # no database can be asked this; the service rejects such ids
    with _engines[registry.database_url].connect() as connection:
        query = sa.text("SELECT 1 FROM models WHERE id = :id")
        return connection.execute(query, {"id": model_id}).first() is not None


@FUZZ
@given(body=http_bodies(), authorization=auth_values)
def test_http_answers_are_success_or_client_errors(target: Registry, body, authorization):
    model_id, payload = body
    existed = model_id is not None and row_exists(target, model_id)
    response = http_request(
        target.http_port,
        "POST",
        "/api/models/create",
        payload,
        headers={"Authorization": authorization},
    )
    SEEN["http"][response.status] += 1
    assert response.status in CLIENT_STATUSES, (response.status, response.body)
    assert response.headers["content-type"] == "application/json"
    answer = json.loads(response.body)
    if response.status == 200:
        assert answer["id"] == model_id and row_exists(target, model_id)
    else:
        assert list(answer) == ["detail"] and answer["detail"]
        if model_id is not None and not existed:
            assert not row_exists(target, model_id)


@FUZZ
@given(model=grpc_models(), authorization=auth_values)
def test_grpc_answers_are_success_or_client_errors(target: Registry, model, authorization):
    model_id = model["id"]
    existed = row_exists(target, model_id)
    with grpc.insecure_channel(target.grpc_target) as channel:
        from modelregistry.v1 import model_service_pb2_grpc as pb_grpc

        stub = pb_grpc.ModelServiceStub(channel)
        try:
            stub.CreateModel(
                model_request(model), metadata=[("authorization", authorization)], timeout=10
            )
            code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            code = error.code()
            assert error.details()
    SEEN["grpc"][code.name] += 1
    assert code in CLIENT_CODES
    if code is grpc.StatusCode.OK:
        assert row_exists(target, model_id)
    elif not existed:
        assert not row_exists(target, model_id)


@FUZZ
@given(payload=st.binary(max_size=500))
def test_grpc_garbage_bytes_are_client_errors(target: Registry, payload: bytes):
    with grpc.insecure_channel(target.grpc_target) as channel:
        call = channel.unary_unary(
            "/modelregistry.v1.ModelService/CreateModel",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        try:
            call(payload, metadata=[("authorization", f"Bearer {ADMIN_KEY}")], timeout=10)
            code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            code = error.code()
    SEEN["grpc-bytes"][code.name] += 1
    assert code in CLIENT_CODES
