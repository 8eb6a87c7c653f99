"""The domain's GroupStore on SQLAlchemy: groups and their members."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import Connection, Engine, bindparam, delete, insert, select

from ..domain.models import Group, Model
from ..domain.stores import DuplicateKey
from .database import translate_errors
from .models import change_models
from .tables import group_members, groups, model_grants

_MODELS_GRANTED_TO = (
    select(model_grants.c.model_id)
    .where(model_grants.c.access_type == "group", model_grants.c.access_id == bindparam("group_id"))
    .distinct()
)


class GroupRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create(self, group: Group) -> None:
        with translate_errors(), self._engine.begin() as connection:
            connection.execute(
                insert(groups),
                {"id": group.id, "name": group.name, "created_at": group.created_at},
            )

    def delete(self, group_id: str, revoke: Callable[[Model], Model], user_id: str) -> bool:
        """The group and its memberships; each model granted to it stored as
        `revoke` makes it, with its new version."""
        with translate_errors(), self._engine.begin() as connection:
            connection.execute(delete(group_members).where(group_members.c.group_id == group_id))
            granted: list[str] = list(
                connection.execute(_MODELS_GRANTED_TO, {"group_id": group_id}).scalars()
            )
            change_models(connection, sorted(granted), revoke, user_id)
            deleted = connection.execute(delete(groups).where(groups.c.id == group_id))
        return deleted.rowcount == 1

    def get(self, group_id: str) -> Group | None:
        with translate_errors(), self._engine.connect() as connection:
            found = _groups(connection, group_id)
        return found[0] if found else None

    def list(self) -> Sequence[Group]:
        with translate_errors(), self._engine.connect() as connection:
            return _groups(connection)

    def add_member(self, group_id: str, user_id: str) -> None:
        try:
            with translate_errors(), self._engine.begin() as connection:
                connection.execute(
                    insert(group_members), {"group_id": group_id, "user_id": user_id}
                )
        except DuplicateKey:
            pass  # a member already: nothing to do

    def remove_member(self, group_id: str, user_id: str) -> bool:
        with translate_errors(), self._engine.begin() as connection:
            removed = connection.execute(
                delete(group_members).where(
                    group_members.c.group_id == group_id, group_members.c.user_id == user_id
                )
            )
        return removed.rowcount == 1


def _groups(connection: Connection, group_id: str | None = None) -> list[Group]:
    query = select(groups).order_by(groups.c.id)
    members = select(group_members).order_by(group_members.c.group_id, group_members.c.user_id)
    if group_id is not None:
        query = query.where(groups.c.id == group_id)
        members = members.where(group_members.c.group_id == group_id)
    by_group: dict[str, list[str]] = {}
    for row in connection.execute(members):
        by_group.setdefault(row.group_id, []).append(row.user_id)
    return [
        Group(row.id, row.name, row.created_at, tuple(by_group.get(row.id, ())))
        for row in connection.execute(query)
    ]
