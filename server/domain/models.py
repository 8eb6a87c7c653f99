"""The registry's records, as plain values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class AccessGrant:
    access_type: str  # "user" | "group"
    access_id: str
    permission: str  # "read" | "write"


@dataclass(frozen=True, slots=True)
class GrantDraft:
    """A grant as sent: the grantee in the spec's spelling (access_type,
    access_id), in Open WebUI's (principal_type, principal_id), or both.
    An empty string is a spelling not used."""

    access_type: str
    access_id: str
    permission: str
    principal_type: str = ""
    principal_id: str = ""


@dataclass(frozen=True, slots=True)
class ModelDraft:
    """A create request as the client sent it, before any rule is applied.

    None marks a field the client did not send."""

    id: str
    name: str
    base_model_id: str | None
    params: JsonObject | None
    meta: JsonObject | None
    access_grants: list[GrantDraft]
    is_active: bool | None
    commit_message: str | None = None


@dataclass(frozen=True, slots=True)
class Model:
    id: str
    user_id: str
    base_model_id: str | None
    name: str
    params: JsonObject
    meta: JsonObject
    access_grants: list[AccessGrant]
    is_active: bool
    created_at: int
    updated_at: int
    # Why this state was written; kept with the model, not returned with it.
    commit_message: str | None = None
    # Whether the caller may change it: set when a model is read for a caller.
    write_access: bool | None = None
    # The version this state is (versions.py); every write makes a new one.
    version_id: str = ""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a version keeps of a model: everything a restore brings back."""

    name: str
    base_model_id: str | None
    params: JsonObject
    meta: JsonObject
    is_active: bool
    access_grants: list[AccessGrant]


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One recorded state of a model. Immutable once written."""

    id: str
    model_id: str
    parent_id: str | None  # the version it was made from; None for the first
    number: int  # 1 for the model's first version, then one more for each
    user_id: str  # who wrote it
    commit_message: str | None
    created_at: int
    snapshot: Snapshot | None  # None where only the history is read


ROLE_ADMIN = "admin"
ROLE_USER = "user"
ROLES = (ROLE_ADMIN, ROLE_USER)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller."""

    user_id: str
    role: str
    can_create_models: bool

    @property
    def may_create_models(self) -> bool:
        return self.role == ROLE_ADMIN or self.can_create_models


@dataclass(frozen=True, slots=True)
class User:
    id: str
    role: str
    can_create_models: bool
    created_at: int

    @property
    def may_create_models(self) -> bool:
        return Principal(self.id, self.role, self.can_create_models).may_create_models


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as stored: its id and owner; the key itself never is."""

    id: str
    user_id: str
    created_at: int
    revoked_at: int | None


@dataclass(frozen=True, slots=True)
class ActiveKey:
    """An unrevoked key found by its hash: its owner, and the hash as stored
    (compared again in constant time)."""

    owner: Principal
    key_hash: str


@dataclass(frozen=True, slots=True)
class Group:
    """Users that grants can name together (access_type "group")."""

    id: str
    name: str
    created_at: int
    member_ids: tuple[str, ...] = ()
