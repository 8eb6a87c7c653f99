"""The rules a new model must meet, and the defaults it gets.

Every broken rule is collected, so a client can fix all of them at once; the
error's message is the first one, in field order."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlsplit

from .errors import FieldViolation, InvalidArgument
from .models import AccessGrant, GrantDraft, JsonObject, Model, ModelDraft

MAX_ID_LENGTH = 256  # Unicode code points
MAX_COMMIT_MESSAGE_LENGTH = 4096
# Objects and arrays inside params or meta nest at most this deep (protobuf
# decoding itself stops a little deeper).
MAX_JSON_DEPTH = 24
ID_TOO_LONG = f"Model ID is too long (max {MAX_ID_LENGTH} characters)"
DEFAULT_PROFILE_IMAGE_URL = "/static/favicon.png"

ACCESS_TYPES = ("user", "group")
PERMISSIONS = ("read", "write")
NUMBER_PARAMS = ("temperature", "top_p", "frequency_penalty", "presence_penalty")


def build_model(draft: ModelDraft, *, user_id: str, now: int) -> Model:
    """Check `draft` against every rule and return the model to store."""
    violations: list[FieldViolation] = []
    _check_identifier("id", draft.id, violations, too_long=ID_TOO_LONG)
    _check_name(draft.name, violations)
    if draft.base_model_id is not None:
        _check_identifier("base_model_id", draft.base_model_id, violations)
    _check_params(draft.params, violations)
    _check_meta(draft.meta, violations)
    grants = _check_grants(draft.access_grants, violations)
    _check_commit_message(draft.commit_message, violations)
    if violations:
        raise InvalidArgument(violations)

    assert draft.params is not None and draft.meta is not None
    meta = draft.meta
    if meta.get("profile_image_url") is None:  # absent or null: not set
        meta = {**meta, "profile_image_url": DEFAULT_PROFILE_IMAGE_URL}
    return Model(
        id=draft.id,
        user_id=user_id,
        base_model_id=draft.base_model_id,
        name=draft.name,
        params=draft.params,
        meta=meta,
        access_grants=grants,
        is_active=True if draft.is_active is None else draft.is_active,
        created_at=now,
        updated_at=now,
        commit_message=draft.commit_message,
    )


def _check_identifier(
    field: str, value: str, out: list[FieldViolation], *, too_long: str | None = None
) -> None:
    if not value:
        out.append(FieldViolation(field, f"{field} is required and must not be empty"))
    elif len(value) > MAX_ID_LENGTH:
        message = too_long or f"{field} is too long (max {MAX_ID_LENGTH} characters)"
        out.append(FieldViolation(field, message))
    # isprintable() is False for every whitespace but " ", and for control,
    # format (zero-width, bidi), surrogate and unassigned code points.
    elif " " in value or not value.isprintable():
        out.append(
            FieldViolation(field, f"{field} must not contain whitespace or control characters")
        )


def _check_name(name: str, out: list[FieldViolation]) -> None:
    if not name.strip():
        out.append(FieldViolation("name", "name is required and must not be empty"))
    elif "\x00" in name:
        out.append(FieldViolation("name", "name must not contain NUL characters"))


def _check_params(params: JsonObject | None, out: list[FieldViolation]) -> None:
    if params is None:
        out.append(FieldViolation("params", "params is required (send {} for none)"))
        return
    # A known key that is null is not set (front ends send null for "default").
    for key in NUMBER_PARAMS:
        if params.get(key) is not None and not _is_number(params[key]):
            out.append(FieldViolation(f"params.{key}", f"params.{key} must be a number"))
    value = params.get("max_tokens")
    if value is not None:
        if not (type(value) is int and value > 0):
            out.append(
                FieldViolation("params.max_tokens", "params.max_tokens must be a positive integer")
            )
    _check_json_values("params", params, out)


def _check_meta(meta: JsonObject | None, out: list[FieldViolation]) -> None:
    if meta is None:
        out.append(FieldViolation("meta", "meta is required (send {} for none)"))
        return
    # As in params, a known key that is null is not set.
    image_url = meta.get("profile_image_url")
    if image_url is not None and not _is_image_url(image_url):
        out.append(
            FieldViolation(
                "meta.profile_image_url",
                "meta.profile_image_url must be an http(s) URL, a path starting with '/'"
                " or a data:image/ URI",
            )
        )
    description = meta.get("description")
    if description is not None and not isinstance(description, str):
        out.append(FieldViolation("meta.description", "meta.description must be a string"))
    capabilities = meta.get("capabilities")
    if capabilities is not None and not isinstance(capabilities, dict):
        out.append(FieldViolation("meta.capabilities", "meta.capabilities must be an object"))
    _check_json_values("meta", meta, out)


def check_grants(grants: list[GrantDraft]) -> list[AccessGrant]:
    """The grants to store (de-duplicated, in the spec's spelling), or
    InvalidArgument naming every bad one."""
    violations: list[FieldViolation] = []
    checked = _check_grants(grants, violations)
    if violations:
        raise InvalidArgument(violations)
    return checked


def _check_grants(grants: list[GrantDraft], out: list[FieldViolation]) -> list[AccessGrant]:
    """The grants, de-duplicated in first-seen order; meaningful only when no
    violation was added to `out`."""
    unique: dict[AccessGrant, None] = {}
    for index, draft in enumerate(grants):
        where = f"access_grants[{index}]"
        grant = _one_spelling(draft, where, out)
        if grant is None:
            continue  # the other grants are still checked
        unique[grant] = None
        if grant.access_type not in ACCESS_TYPES:
            out.append(
                FieldViolation(
                    f"{where}.access_type", f"{where}.access_type must be 'user' or 'group'"
                )
            )
        if not grant.access_id.strip() or not grant.access_id.isprintable():
            out.append(
                FieldViolation(
                    f"{where}.access_id",
                    f"{where}.access_id must be a non-empty id without control characters",
                )
            )
        if grant.permission not in PERMISSIONS:
            out.append(
                FieldViolation(
                    f"{where}.permission", f"{where}.permission must be 'read' or 'write'"
                )
            )
    return list(unique)


def _one_spelling(draft: GrantDraft, where: str, out: list[FieldViolation]) -> AccessGrant | None:
    """The grant in the spec's spelling; None (reported) if the two spellings
    disagree."""
    for spec_name, spec_value, other_name, other_value in (
        ("access_type", draft.access_type, "principal_type", draft.principal_type),
        ("access_id", draft.access_id, "principal_id", draft.principal_id),
    ):
        if spec_value and other_value and spec_value != other_value:
            out.append(
                FieldViolation(
                    where,
                    f"{where} gives {spec_name} and {other_name} with different values:"
                    " send one of the two spellings",
                )
            )
            return None
    return AccessGrant(
        draft.access_type or draft.principal_type,
        draft.access_id or draft.principal_id,
        draft.permission,
    )


def check_commit_message(message: str | None) -> None:
    """InvalidArgument if `message` breaks the commit_message rule."""
    violations: list[FieldViolation] = []
    _check_commit_message(message, violations)
    if violations:
        raise InvalidArgument(violations)


def _check_commit_message(message: str | None, out: list[FieldViolation]) -> None:
    if message is None:
        return
    if len(message) > MAX_COMMIT_MESSAGE_LENGTH:
        out.append(
            FieldViolation(
                "commit_message",
                f"commit_message is too long (max {MAX_COMMIT_MESSAGE_LENGTH} characters)",
            )
        )
    elif "\x00" in message:
        out.append(
            FieldViolation("commit_message", "commit_message must not contain NUL characters")
        )


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)  # bool is an int subclass: excluded


def _is_image_url(value: Any) -> bool:
    """Values a front end may safely put in an <img src>."""
    if not isinstance(value, str) or not value.isprintable():
        return False
    if value.startswith("/"):
        return not value.startswith("//")  # "//host/x" is another host
    if value[:11].lower() == "data:image/":
        return True
    parts = urlsplit(value)
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def nesting_message(field: str) -> str:
    return f"{field} nests deeper than {MAX_JSON_DEPTH} levels"


def _check_json_values(field: str, value: Any, out: list[FieldViolation]) -> None:
    problem = _unstorable(field, value)
    if problem is not None:
        out.append(FieldViolation(field, problem))


def _unstorable(field: str, value: Any) -> str | None:
    """What no stored JSON document may hold: NaN and infinities (gRPC clients
    can send them in a Struct), NUL characters (PostgreSQL text refuses them)
    and nesting deeper than MAX_JSON_DEPTH."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                return nesting_message(field)
            if isinstance(item, dict):
                if any("\x00" in key for key in item):
                    return f"{field} must not contain NUL characters"
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"{field} must not contain NaN or infinite numbers"
        elif isinstance(item, str) and "\x00" in item:
            return f"{field} must not contain NUL characters"
    return None
