"""Groups: named sets of users that grants can name (access_type "group").
Only admins manage them; a change counts from the members' next request
(memberships are read per request, never cached)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from .errors import (
    FieldViolation,
    GroupIdTaken,
    GroupNotFound,
    InvalidArgument,
    PermissionDenied,
    UserNotFound,
)
from .models import ROLE_ADMIN, Group, Model, Principal
from .stores import DuplicateKey, GroupStore, UserStore
from .versions import new_version_id

MAX_GROUP_ID_LENGTH = 256
# Who the operator's commands (`model-registry groups ...`) act as.
OPERATOR = Principal(user_id="", role=ROLE_ADMIN, can_create_models=True)


class GroupAdmin:
    def __init__(
        self, groups: GroupStore, users: UserStore, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._groups = groups
        self._users = users
        self._clock = clock

    def create(self, caller: Principal, group_id: str, name: str = "") -> Group:
        _require_admin(caller)
        violations: list[FieldViolation] = []
        if not group_id or len(group_id) > MAX_GROUP_ID_LENGTH:
            violations.append(
                FieldViolation("id", f"id must be 1 to {MAX_GROUP_ID_LENGTH} characters")
            )
        elif " " in group_id or not group_id.isprintable():
            violations.append(
                FieldViolation("id", "id must not contain whitespace or control characters")
            )
        if "\x00" in name:
            violations.append(FieldViolation("name", "name must not contain NUL characters"))
        if violations:
            raise InvalidArgument(violations)
        group = Group(group_id, name.strip() or group_id, int(self._clock()))
        try:
            self._groups.create(group)
        except DuplicateKey:
            raise GroupIdTaken() from None
        return group

    def delete(self, caller: Principal, group_id: str) -> None:
        """The group, its memberships and every grant that names it: a group
        made again with this id inherits nothing. A model that loses a grant
        changes like any other: a new version, which is what every copy of
        a model kept by version (the list's, GetModel's) goes by."""
        _require_admin(caller)
        now = int(self._clock())

        def revoke(model: Model) -> Model:
            return replace(
                model,
                access_grants=[
                    grant
                    for grant in model.access_grants
                    if (grant.access_type, grant.access_id) != ("group", group_id)
                ],
                updated_at=max(now, model.updated_at),
                commit_message=f"Group {group_id} deleted",
                version_id=new_version_id(),
            )

        if not self._groups.delete(group_id, revoke, caller.user_id):
            raise GroupNotFound()

    def list(self, caller: Principal) -> Sequence[Group]:
        _require_admin(caller)
        return self._groups.list()

    def add_member(self, caller: Principal, group_id: str, user_id: str) -> Group:
        _require_admin(caller)
        if self._groups.get(group_id) is None:
            raise GroupNotFound()
        if not self._users.exists(user_id):
            raise UserNotFound()
        self._groups.add_member(group_id, user_id)
        return self._existing(group_id)

    def remove_member(self, caller: Principal, group_id: str, user_id: str) -> Group:
        _require_admin(caller)
        if self._groups.get(group_id) is None:
            raise GroupNotFound()
        if not self._groups.remove_member(group_id, user_id):
            raise UserNotFound("User is not a member of the group")
        return self._existing(group_id)

    def _existing(self, group_id: str) -> Group:
        group = self._groups.get(group_id)
        if group is None:  # deleted meanwhile
            raise GroupNotFound()
        return group


def _require_admin(caller: Principal) -> None:
    if caller.role != ROLE_ADMIN:
        raise PermissionDenied()
