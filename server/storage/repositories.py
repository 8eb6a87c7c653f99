"""The domain's user and key stores (domain/stores.py) on SQLAlchemy: one
short transaction each. (Models: models.py; groups: groups.py.)"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, bindparam, func, insert, select, update

from ..domain.models import ActiveKey, ApiKey, Principal, User
from .database import translate_errors
from .tables import api_keys, users


def _user_values(user: User) -> dict[str, object]:
    return {
        "id": user.id,
        "role": user.role,
        "can_create_models": user.can_create_models,
        "created_at": user.created_at,
    }


class UserRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def insert(self, user: User) -> None:
        with translate_errors(), self._engine.begin() as connection:
            connection.execute(insert(users), _user_values(user))

    def insert_with_key(self, user: User, key_id: str, key_hash: str) -> None:
        """A user and its first key, in one transaction: both or neither;
        DuplicateKey if the user (or the key) exists already."""
        with translate_errors(), self._engine.begin() as connection:
            connection.execute(insert(users), _user_values(user))
            connection.execute(
                insert(api_keys),
                {
                    "id": key_id,
                    "user_id": user.id,
                    "key_hash": key_hash,
                    "created_at": user.created_at,
                },
            )

    def list(self) -> Sequence[User]:
        with translate_errors(), self._engine.connect() as connection:
            rows = connection.execute(select(users).order_by(users.c.id)).all()
        return [User(r.id, r.role, r.can_create_models, r.created_at) for r in rows]

    def exists(self, user_id: str) -> bool:
        with translate_errors(), self._engine.connect() as connection:
            return (
                connection.execute(select(users.c.id).where(users.c.id == user_id)).first()
                is not None
            )

    def count(self) -> int:
        with translate_errors(), self._engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(users)).scalar_one()


class ApiKeyRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # Built once: this runs on every request whose key is not cached.
        self._find_active = (
            select(users.c.id, users.c.role, users.c.can_create_models, api_keys.c.key_hash)
            .join(users, users.c.id == api_keys.c.user_id)
            .where(api_keys.c.key_hash == bindparam("key_hash"), api_keys.c.revoked_at.is_(None))
        )

    def insert(self, key_id: str, user_id: str, key_hash: str, created_at: int) -> None:
        with translate_errors(), self._engine.begin() as connection:
            connection.execute(
                insert(api_keys),
                {"id": key_id, "user_id": user_id, "key_hash": key_hash, "created_at": created_at},
            )

    def find_active(self, key_hash: str) -> ActiveKey | None:
        with translate_errors(), self._engine.connect() as connection:
            row = connection.execute(self._find_active, {"key_hash": key_hash}).first()
        if row is None:
            return None
        return ActiveKey(Principal(row.id, row.role, row.can_create_models), row.key_hash)

    def revoke(self, key_id: str, revoked_at: int) -> bool:
        with translate_errors(), self._engine.begin() as connection:
            result = connection.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=revoked_at)
            )
        return result.rowcount == 1

    def list(self, user_id: str | None = None) -> Sequence[ApiKey]:
        query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        if user_id is not None:
            query = query.where(api_keys.c.user_id == user_id)
        with translate_errors(), self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return [ApiKey(r.id, r.user_id, r.created_at, r.revoked_at) for r in rows]
