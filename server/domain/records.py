"""The records an import reads, in every format the registry knows, made
into create's drafts: a wrong JSON type is reported here, every other rule
is create's (validation.py).

Format version 1 is a model as CreateModel returns it. The same reader takes
Open WebUI's model objects (its export: grants spelled `principal_type` /
`principal_id`, an `anyone` grant, a legacy `access_control`, keys the
registry has no field for) and its older `{"info": {...}}` records."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .access import EVERYONE, READ, WRITE
from .errors import FieldViolation
from .models import GrantDraft, JsonObject, ModelDraft

# What a file made by `model-registry export` says it is, and the newest
# version of that format; every version up to it is read.
FORMAT = "model-registry.models"
FORMAT_VERSION = 1
# What a version's commit message says when the record gives none.
IMPORTED = "Imported"
# Timestamps are whole Unix seconds that JSON numbers hold exactly.
MAX_TIMESTAMP = 2**53

# Keys that are the registry's own fields. user_id, version_id and
# write_access are read from no file: the server sets them.
MODEL_KEYS = frozenset(
    {
        "id",
        "name",
        "base_model_id",
        "params",
        "meta",
        "access_grants",
        "is_active",
        "created_at",
        "updated_at",
        "commit_message",
        "user_id",
        "version_id",
        "write_access",
    }
)
# Open WebUI's grants before access_grants (read only when there are none).
LEGACY_ACCESS = "access_control"
# Open WebUI's grant that reaches anyone, signed in or not; here every
# signed-in user (`user` / `*`), the widest grant the registry has.
ANYONE = "anyone"


class RecordRefused(Exception):
    """A record that cannot be imported, and why (what the client is told)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class ImportRecord:
    """A record read: the create it amounts to, and the timestamps it keeps
    (None when it gives none)."""

    draft: ModelDraft
    created_at: int | None
    updated_at: int | None
    # Fields of the wrong JSON type; each is absent from the draft.
    violations: tuple[FieldViolation, ...] = ()


class FileRefused(Exception):
    """A file that holds no records the registry reads, and why."""


def file_records(document: Any) -> tuple[int, list[Any]]:
    """The format version (0: the newest) and the records of a file: an
    export of `model-registry export` ({"format", "format_version",
    "models"}), a bare array (the HTTP export, Open WebUI's export), or
    {"models": [...]} (the body of an import)."""
    if isinstance(document, list):
        return 0, document
    if not isinstance(document, dict) or not isinstance(document.get("models"), list):
        raise FileRefused(
            'the file must hold a JSON array of models, or an object with a "models" array'
        )
    if "format" in document and document["format"] != FORMAT:
        raise FileRefused(
            f"the file is not a {FORMAT} export (its format is {document['format']!r})"
        )
    version = document.get("format_version", 0)
    if type(version) is not int or version < 0:
        raise FileRefused("format_version must be a whole number")
    if version > FORMAT_VERSION:
        raise FileRefused(
            f"the file is format version {version}, newer than this registry reads"
            f" (1 to {FORMAT_VERSION}): import it with a newer model-registry"
        )
    return version, document["models"]


def record_id(record: Any) -> str:
    """The model id a record names, or "" when it names none."""
    model = _unwrapped(record)
    value = model.get("id") if isinstance(model, dict) else None
    return value if isinstance(value, str) else ""


def read_record(record: Any, format_version: int) -> ImportRecord:
    """The record as a draft for CreateModel's rules, with every field of
    the wrong JSON type reported (such a field is left out of the draft);
    RecordRefused if it is no model at all. `format_version` is a version
    this registry reads."""
    return READERS[format_version](record)


def _read_v1(record: Any) -> ImportRecord:
    model = _unwrapped(record)
    if not isinstance(model, dict):
        raise RecordRefused("the record is not a JSON object")
    fields = _Fields(model)
    model_id = fields.string("id") or ""
    name = fields.string("name") or ""
    meta = fields.object("meta")
    if meta is not None:
        meta = _with_extra_keys(meta, model)
        if meta.get("profile_image_url") == "":
            # Open WebUI's "no image": the default, as when it is null.
            meta = {**meta, "profile_image_url": None}
    commit_message = fields.string("commit_message")
    draft = ModelDraft(
        id=model_id,
        name=name,
        base_model_id=fields.string("base_model_id"),
        params=fields.object("params"),
        meta=meta,
        access_grants=fields.grants(),
        is_active=fields.boolean("is_active"),
        commit_message=IMPORTED if commit_message is None else commit_message,
    )
    created_at, updated_at = fields.timestamp("created_at"), fields.timestamp("updated_at")
    return ImportRecord(draft, created_at, updated_at, tuple(fields.violations))


READERS: dict[int, Callable[[Any], ImportRecord]] = {1: _read_v1}
assert set(READERS) == set(range(1, FORMAT_VERSION + 1))


def _unwrapped(record: Any) -> Any:
    """Open WebUI's front end imports `m.info ?? m`: its older exports hold
    each model under "info", beside what the model list showed."""
    if isinstance(record, dict) and record.get("info") is not None:
        return record["info"]
    return record


def _with_extra_keys(meta: JsonObject, model: JsonObject) -> JsonObject:
    """meta with the record's keys that are no field of the registry and
    hold a value (Open WebUI's background_image_data, ...): nothing sent is
    lost."""
    extra = {
        key: value
        for key, value in model.items()
        if key not in MODEL_KEYS and key != LEGACY_ACCESS and value is not None
    }
    if not extra:
        return meta
    clashes = sorted(key for key in extra if key in meta)
    if clashes:
        raise RecordRefused(
            f"{clashes[0]} is both a key of the record and of its meta: keep one of them"
        )
    return {**meta, **extra}


class _Fields:
    """A record's fields by their JSON type. A field of the wrong type is
    reported in `violations` and read as absent (None)."""

    def __init__(self, model: JsonObject) -> None:
        self.model = model
        self.violations: list[FieldViolation] = []

    def _wrong(self, field: str, expected: str) -> None:
        self.violations.append(FieldViolation(field, f"{field} must be {expected}"))

    def string(self, key: str) -> str | None:
        value = self.model.get(key)
        if value is not None and not isinstance(value, str):
            self._wrong(key, "a string")
            return None
        return value

    def boolean(self, key: str) -> bool | None:
        value = self.model.get(key)
        if value is not None and not isinstance(value, bool):
            self._wrong(key, "true or false")
            return None
        return value

    def object(self, key: str) -> JsonObject | None:
        value = self.model.get(key)
        if value is not None and not isinstance(value, dict):
            self._wrong(key, "an object")
            return None
        return value

    def timestamp(self, key: str) -> int | None:
        value = self.model.get(key)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if value is not None and (type(value) is not int or not 0 <= value <= MAX_TIMESTAMP):
            self._wrong(key, "a whole number of seconds since 1970")
            return None
        return value

    def grants(self) -> list[GrantDraft]:
        grants = self.model.get("access_grants")
        if grants is None and LEGACY_ACCESS in self.model:
            return _legacy_grants(self.model[LEGACY_ACCESS])
        if grants is None:
            return []
        if not isinstance(grants, list):
            self._wrong("access_grants", "an array")
            return []
        drafts = [self._grant(grant, f"access_grants[{i}]") for i, grant in enumerate(grants)]
        if None in drafts:
            return []  # reported; create then checks no grant, so indexes stay true
        return [draft for draft in drafts if draft is not None]

    def _grant(self, grant: Any, where: str) -> GrantDraft | None:
        if not isinstance(grant, dict):
            self._wrong(where, "an object")
            return None
        fields = {}
        for key in ("access_type", "access_id", "permission", "principal_type", "principal_id"):
            value = grant.get(key)
            if value is not None and not isinstance(value, str):
                self._wrong(f"{where}.{key}", "a string")
                return None
            fields[key] = value or ""
        if fields["principal_type"] == ANYONE and fields["principal_id"] == EVERYONE:
            fields["principal_type"] = "user"
        return GrantDraft(**fields)


def _legacy_grants(access_control: Any) -> list[GrantDraft]:
    """Open WebUI's access_control as grants, as its own migration reads it:
    null is readable by every user, {} by the owner only, otherwise
    {"read"|"write": {"group_ids": [...], "user_ids": [...]}}."""
    if access_control is None:
        return [GrantDraft("user", EVERYONE, READ)]
    if not isinstance(access_control, dict):
        raise RecordRefused(f"{LEGACY_ACCESS} must be an object or null")
    grants: list[GrantDraft] = []
    for permission in (READ, WRITE):
        entry = access_control.get(permission)
        entry = {} if entry is None else entry
        if not isinstance(entry, dict):
            raise RecordRefused(f"{LEGACY_ACCESS}.{permission} must be an object")
        for key, access_type in (("group_ids", "group"), ("user_ids", "user")):
            ids = entry.get(key)
            ids = [] if ids is None else ids
            where = f"{LEGACY_ACCESS}.{permission}.{key}"
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise RecordRefused(f"{where} must be an array of strings")
            grants.extend(GrantDraft(access_type, i, permission) for i in ids)
    return grants
