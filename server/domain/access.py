"""Who may do what with a model: the one place these rules are decided.

Admins and the model's owner may do everything. A `read` grant (to the
caller, to a group the caller is in, or to every signed-in user as
`user` / `*`) lets a caller see the model; a `write` grant also lets them
change, toggle, share and delete it. Storage applies the same rules when it
lists (storage/models.py), and the access tests check both against one
matrix."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace

from .models import ROLE_ADMIN, AccessGrant, Model, Principal

EVERYONE = "*"  # access_id of a user grant that reaches every signed-in user
READ = "read"
WRITE = "write"


@dataclass(frozen=True, slots=True)
class Access:
    read: bool
    write: bool


NO_ACCESS = Access(read=False, write=False)
FULL_ACCESS = Access(read=True, write=True)


def access_to(caller: Principal, model: Model, caller_groups: Collection[str]) -> Access:
    """What `caller`, a member of `caller_groups`, may do with `model`."""
    if caller.role == ROLE_ADMIN or model.user_id == caller.user_id:
        return FULL_ACCESS
    permissions = {
        grant.permission
        for grant in model.access_grants
        if reaches(grant, caller.user_id, caller_groups)
    }
    if WRITE in permissions:
        return FULL_ACCESS  # write includes read
    return Access(read=READ in permissions, write=False)


def reaches(grant: AccessGrant, user_id: str, groups: Collection[str]) -> bool:
    if grant.access_type == "user":
        return grant.access_id in (user_id, EVERYONE)
    return grant.access_type == "group" and grant.access_id in groups


def grant_principals(user_id: str, groups: Iterable[str]) -> list[tuple[str, str]]:
    """The (access_type, access_id) pairs whose grants reach this user: what
    storage looks up to list the models shared with them."""
    return [("user", user_id), ("user", EVERYONE), *(("group", group) for group in groups)]


def as_seen_by(model: Model, access: Access) -> Model:
    """The model as a caller with `access` may see it: a reader who may not
    change it does not get its params (system prompts, curated settings).
    It varies with the model and `access.write` only: ListModels keeps the
    models it sends, encoded, by version and write access
    (transport/list_replies.py)."""
    if access.write:
        return replace(model, write_access=True)
    return replace(model, params={}, write_access=False)
