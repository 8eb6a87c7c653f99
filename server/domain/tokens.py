"""Page tokens: opaque to clients, each bound to the query it continues. A
token is URL-safe base64 of [fingerprint, position...]; the fingerprint is
a hash of what the query is, so a token of one query is refused by another."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from .errors import FieldViolation, InvalidArgument


def fingerprint(kind: str, shape: Any) -> str:
    """A short digest of a query's shape (JSON-able), tagged with its kind."""
    return f"{kind}:" + hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:16]


def make_token(fingerprint: str, *position: Any) -> str:
    payload = json.dumps([fingerprint, *position], separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def read_token(token: str, fingerprint: str, *kinds: tuple[type, ...], of: str) -> list[Any]:
    """The position `token` holds, its parts of `kinds` (types, each part's
    allowed ones; bool is no int); InvalidArgument "page_token is not a
    token of `of`" for anything else."""
    invalid = InvalidArgument([FieldViolation("page_token", f"page_token is not a token of {of}")])
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        decoded: Any = json.loads(raw)
    except (binascii.Error, ValueError):
        raise invalid from None
    if not (
        isinstance(decoded, list)
        and len(decoded) == 1 + len(kinds)
        and decoded[0] == fingerprint
        and all(type(part) in allowed for part, allowed in zip(decoded[1:], kinds, strict=True))
    ):
        raise invalid
    return decoded[1:]
