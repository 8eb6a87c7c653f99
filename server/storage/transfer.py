"""The domain's TransferStore on SQLAlchemy: export's reads, and an import's
batch in one transaction. New models are written as creates write them and
changes as updates do (models.py), so rows, grants, words, counts and
versions stay as every other write leaves them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Select, exc, select

from ..domain.listing import Visibility
from ..domain.models import Model
from ..domain.stores import ImportDecision
from .database import WRITE_FIRST, is_outage, is_unique_violation, translate_errors, writer_turn
from .listing import grantee_types, readable, reader_parameters
from .models import (
    _count_new,
    _grants_of,
    _groups_of,
    _insert_models,
    _store_change,
)
from .rows import model_of
from .tables import models


class TransferRepository:
    def __init__(
        self, engine: Engine, *, on_new_version: Callable[[str], None] | None = None
    ) -> None:
        self._engine = engine
        # Told the id of each existing model an import gave a new version
        # (retention.py), as ModelRepository tells it of updates.
        self._on_new_version = on_new_version

    def groups_of(self, user_id: str) -> frozenset[str]:
        with translate_errors(), self._engine.connect() as connection:
            return _groups_of(connection, user_id)

    def visible_ids(self, ids: Sequence[str], visibility: Visibility) -> frozenset[str]:
        query = _visible(select(models.c.id).where(models.c.id.in_(ids)), visibility)
        with translate_errors(), self._engine.connect() as connection:
            return frozenset(connection.execute(query).scalars())

    def export(
        self, visibility: Visibility, ids: Sequence[str], after: str | None, limit: int
    ) -> list[Model]:
        query = select(models)
        if ids:
            query = query.where(models.c.id.in_(ids))
        if after is not None:
            query = query.where(models.c.id > after)
        query = _visible(query.order_by(models.c.id).limit(limit), visibility)
        with translate_errors(), self._engine.connect() as connection:
            rows = connection.execute(query).all()
            grants = _grants_of(connection, [row.id for row in rows]) if rows else {}
        return [model_of(row, grants.get(row.id, [])) for row in rows]

    def import_batch(
        self, ids: Sequence[str], user_id: str, decide: ImportDecision, *, write: bool
    ) -> frozenset[str]:
        options = {WRITE_FIRST: True} if write else {}
        with (
            writer_turn(self._engine) if write else contextlib.nullcontext(),
            translate_errors(),
            self._engine.connect().execution_options(**options) as connection,
            connection.begin(),
        ):
            stored = _load_many(connection, sorted(set(ids)), for_update=write)
            plan = decide(stored, _groups_of(connection, user_id))
            if not write:
                return frozenset()  # a dry run: the transaction only read
            taken = _insert_new(connection, plan.new)
            changed = [after.id for _, after in plan.changes if after.id not in taken]
            for before, after in plan.changes:
                if after.id not in taken:
                    _store_change(connection, before, after, user_id)
        if self._on_new_version is not None:
            for model_id in changed:
                self._on_new_version(model_id)
        return taken


def _visible(query: Select[Any], visibility: Visibility) -> Select[Any]:
    """`query` kept to the models a caller may read, as ListModels keeps them."""
    if visibility.everything:
        return query
    return query.where(readable(grantee_types(visibility))).params(reader_parameters(visibility))


def _load_many(connection: Connection, ids: list[str], *, for_update: bool) -> Mapping[str, Model]:
    """The models of `ids`, with their grants; locked (in id order, as every
    batch locks them, so two imports cannot deadlock) when `for_update`."""
    if not ids:
        return {}
    query = select(models).where(models.c.id.in_(ids)).order_by(models.c.id)
    if for_update:
        query = query.with_for_update()  # PostgreSQL; SQLite holds its write lock already
    rows = connection.execute(query).all()
    grants = _grants_of(connection, [row.id for row in rows]) if rows else {}
    return {row.id: model_of(row, grants.get(row.id, [])) for row in rows}


def _insert_new(connection: Connection, new: list[Model]) -> frozenset[str]:
    """Insert new models, with their first versions; the ids another writer
    created since they were found missing are returned, not written."""
    new = sorted(new, key=lambda model: model.id)  # unique-index locks in one order
    if not new:
        return frozenset()
    taken: set[str] = set()
    try:
        with connection.begin_nested():
            _insert_models(connection, new)  # the common case: one statement per table
    except exc.IntegrityError as error:
        if not is_unique_violation(error):
            raise
        for model in new:  # one by one, each in its own savepoint
            try:
                with connection.begin_nested():
                    _insert_models(connection, [model])
            except exc.IntegrityError as one:
                if is_outage(one) or not is_unique_violation(one):
                    raise
                taken.add(model.id)
    stored = [model for model in new if model.id not in taken]
    if stored:
        _count_new(connection, stored)
    return frozenset(taken)
