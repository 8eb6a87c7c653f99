"""The domain's ModelStore on SQLAlchemy. A model is a row of `models`, its
grants (model_grants, in order) and its words (model_words, the text
search's index); model_counts follows every insert, delete and is_active
change in the same transaction. Creates are group-committed (writer.py);
everything else runs on the database threads, one transaction each."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any, TypeVar

from sqlalchemy import (
    BindParameter,
    Connection,
    Engine,
    Row,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)

from ..domain.listing import ListQuery, ModelPage, Reader, tag_key, tags_of, words_of
from ..domain.models import AccessGrant, Model, ModelVersion, Snapshot
from ..domain.stores import ModelChange, VersionChange, VersionCheck
from ..domain.versions import VersionPage, VersionQuery, first_version, version_of
from .changes import Change, ChangeWriter
from .database import READ_ONLY, WRITE_FIRST, translate_errors, writer_turn
from .kept_reads import KeptReads
from .list_reads import ListReads
from .loop_first import GET_COUNTERS, LoopFirstReads, Version
from .metrics import GET_READS_AGAIN
from .model_cache import ModelCache
from .reader import BatchReader
from .rows import STORED_BYTES, model_from_rows, models_with_grants
from .tables import (
    group_members,
    model_counts,
    model_grants,
    model_tags,
    model_versions,
    model_words,
    models,
)
from .writer import BatchWriter

T = TypeVar("T")


class ModelRepository:
    def __init__(
        self,
        engine: Engine,
        executor: Executor,
        *,
        list_executor: Executor,
        on_new_version: Callable[[str], None] | None = None,
    ) -> None:
        self._engine = engine
        self._executor = executor
        # Decoded models by version, for pages and GetModel alike.
        self._models = ModelCache()
        self._listing = ListReads(engine, list_executor, _groups_for, models=self._models)
        # GetModel's answers at the database's version: the model's version
        # id (its model kept in the cache) and the caller's groups that matter.
        self._kept_gets: KeptReads[tuple[str, frozenset[str]]] = KeptReads()
        # Told the id of each model that got a new version (retention.py).
        self._on_new_version = on_new_version
        self._writer: BatchWriter[Model] = BatchWriter(
            engine, _insert_models, order=lambda model: model.id, written=_count_new
        )
        # GetModel's reads: on SQLite first on the event loop (loop_first.py),
        # where one costs less than handing it to a thread; on PostgreSQL,
        # where each statement waits on the network, batched on a thread.
        self._gets = (
            LoopFirstReads(engine, list_executor, counters=GET_COUNTERS)
            if engine.dialect.name == "sqlite"
            else None
        )
        self._reader: BatchReader[tuple[str, str], tuple[Model | None, frozenset[str]]] | None = (
            None if self._gets is not None else BatchReader(engine, _read_models)
        )
        # SQLite writes one transaction at a time: there, changes are
        # group-committed too (changes.py).
        self._changes = ChangeWriter(engine) if engine.dialect.name == "sqlite" else None

    async def insert(self, model: Model) -> None:
        """Store a new model, durably, before returning; DuplicateKey if its
        id is taken, StorageUnavailable if the database cannot take it."""
        await asyncio.wrap_future(self._writer.submit(model))

    async def get(self, model_id: str, user_id: str) -> tuple[Model | None, frozenset[str]]:
        key = (model_id, user_id)
        if self._gets is not None:
            return await self._gets.run(
                "get", lambda connection, version: self._read(connection, version, key)
            )
        assert self._reader is not None
        return await asyncio.wrap_future(self._reader.submit(key))

    def _read(
        self, connection: Connection, version: Version | None, key: tuple[str, str]
    ) -> tuple[Model | None, frozenset[str]]:
        """GetModel on SQLite: asked again at the version it was read at,
        from what was kept then (KeptReads: from its second asking), while
        the model cache holds the model."""
        if version is not None:
            kept = self._kept_gets.get(key, version)
            if kept is not None:
                model = self._models.get(kept[0])
                if model is not None:
                    GET_READS_AGAIN.inc()
                    return model, kept[1]
        model, groups = _read_model(connection, *key, self._models)
        if version is not None and model is not None and model.version_id:
            self._kept_gets.offer(key, version, (model.version_id, groups), BYTES_PER_KEPT_GET)
        return model, groups

    async def tags(self, reader: Reader) -> Sequence[str]:
        return await self._listing.tags(reader)

    async def modify(self, model_id: str, user_id: str, change: ModelChange) -> Model | None:
        def write(connection: Connection, current: Model | None) -> Model | None:
            return change(current, _groups_of(connection, user_id))

        return await self._write(model_id, user_id, write)

    async def restore(
        self, model_id: str, version_id: str, user_id: str, change: VersionChange
    ) -> Model:
        def write(connection: Connection, current: Model | None) -> Model:
            version = _load_version(connection, model_id, version_id) if current else None
            return change(current, version, _groups_of(connection, user_id))

        return await self._write(model_id, user_id, write)

    async def delete_version(
        self, model_id: str, version_id: str, user_id: str, check: VersionCheck
    ) -> None:
        def write(connection: Connection, current: Model | None) -> Model | None:
            version = _load_version(connection, model_id, version_id) if current else None
            check(current, version, _groups_of(connection, user_id))
            assert version is not None
            _delete_version(connection, version)
            return current  # unchanged

        await self._write(model_id, user_id, write)

    async def versions(
        self, query: VersionQuery, user_id: str
    ) -> tuple[Model | None, frozenset[str], VersionPage]:
        def read() -> tuple[Model | None, frozenset[str], VersionPage]:
            with translate_errors(), self._engine.connect() as connection:
                model = _load(connection, query.model_id)
                page = _version_page(connection, query) if model else VersionPage([], None)
                return model, _groups_of(connection, user_id), page

        return await self._run(read)

    async def version(
        self, model_id: str, version_id: str, user_id: str
    ) -> tuple[Model | None, frozenset[str], ModelVersion | None]:
        def read() -> tuple[Model | None, frozenset[str], ModelVersion | None]:
            with translate_errors(), self._engine.connect() as connection:
                model = _load(connection, model_id)
                version = _load_version(connection, model_id, version_id) if model else None
                return model, _groups_of(connection, user_id), version

        return await self._run(read)

    async def _write(
        self, model_id: str, user_id: str, work: Callable[[Connection, Model | None], T]
    ) -> T:
        """`work` on the model, locked, in one transaction; what it returns
        (a Model) is stored, with its new version if it has one."""

        def apply(connection: Connection) -> T:
            current = _load(connection, model_id, for_update=True)
            changed = work(connection, current)
            assert changed is None or isinstance(changed, Model)
            _store_change(connection, current, changed, user_id)
            if _has_new_version(current, changed):
                new_versions.append(model_id)
            return changed

        def committed(_changed: object) -> None:
            if self._on_new_version is not None:
                for changed_id in new_versions:
                    self._on_new_version(changed_id)

        new_versions: list[str] = []
        if self._changes is not None:
            future = self._changes.submit(Change(apply, committed))
            result: T = await asyncio.wrap_future(future)
            return result

        def write() -> T:
            with (
                writer_turn(self._engine),
                translate_errors(),
                self._engine.connect().execution_options(**{WRITE_FIRST: True}) as connection,
                connection.begin(),
            ):
                changed = apply(connection)
            committed(changed)
            return changed

        return await self._run(write)

    async def list(self, query: ListQuery, reader: Reader) -> tuple[ModelPage, frozenset[str]]:
        return await self._listing.page(query, reader)

    def close(self) -> None:
        self._listing.close()
        self._writer.close()
        if self._gets is not None:
            self._gets.close()
        if self._reader is not None:
            self._reader.close()
        if self._changes is not None:
            self._changes.close()

    def _reading(self) -> Connection:
        """A connection for reads that are each one statement."""
        return self._engine.connect().execution_options(**{READ_ONLY: True})

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)


# -- writing ------------------------------------------------------------------------


def _model_values(model: Model) -> dict[str, Any]:
    return {
        "id": model.id,
        "user_id": model.user_id,
        "base_model_id": model.base_model_id,
        "name": model.name,
        "params": model.params,
        "meta": model.meta,
        "is_active": model.is_active,
        "created_at": model.created_at,
        "updated_at": model.updated_at,
        "commit_message": model.commit_message,
        "version_id": model.version_id,
    }


def _grant_rows(model: Model) -> list[dict[str, Any]]:
    return [
        {
            "model_id": model.id,
            "position": position,
            "access_type": grant.access_type,
            "access_id": grant.access_id,
            "permission": grant.permission,
        }
        for position, grant in enumerate(model.access_grants)
    ]


def _word_rows(model: Model) -> list[dict[str, Any]]:
    return [
        {"word": word, "model_id": model.id, "created_at": model.created_at}
        for word in words_of(model.id, model.name, model.base_model_id)
    ]


def _tag_rows(model: Model) -> list[dict[str, str]]:
    return [
        {"tag": tag_key(name), "model_id": model.id, "name": name} for name in tags_of(model.meta)
    ]


def _version_row(version: ModelVersion) -> dict[str, Any]:
    assert version.snapshot is not None
    snapshot = version.snapshot
    return {
        "id": version.id,
        "model_id": version.model_id,
        "number": version.number,
        "parent_id": version.parent_id,
        "user_id": version.user_id,
        "commit_message": version.commit_message,
        "created_at": version.created_at,
        "snapshot": {
            "name": snapshot.name,
            "base_model_id": snapshot.base_model_id,
            "params": snapshot.params,
            "meta": snapshot.meta,
            "is_active": snapshot.is_active,
            "access_grants": [
                {
                    "access_type": grant.access_type,
                    "access_id": grant.access_id,
                    "permission": grant.permission,
                }
                for grant in snapshot.access_grants
            ],
        },
    }


def _insert_models(connection: Connection, batch: list[Model]) -> None:
    """New models, whole: rows, first versions, grants and words (the
    counts: _count_new)."""
    connection.execute(insert(models), [_model_values(model) for model in batch])
    connection.execute(
        insert(model_versions), [_version_row(first_version(model)) for model in batch]
    )
    grants = [row for model in batch for row in _grant_rows(model)]
    if grants:
        connection.execute(insert(model_grants), grants)
    words = [row for model in batch for row in _word_rows(model)]
    if words:
        connection.execute(insert(model_words), words)
    tags = [row for model in batch for row in _tag_rows(model)]
    if tags:
        connection.execute(insert(model_tags), tags)


def _count_new(connection: Connection, stored: list[Model]) -> None:
    _count(connection, Counter(model.is_active for model in stored))


def _store_change(
    connection: Connection, before: Model | None, after: Model | None, user_id: str
) -> None:
    if before is None or after is before:
        return  # `change` refused (it raises) or had nothing to do
    key = {"model_id": before.id}
    if after is None:
        connection.execute(_DELETE_MODEL, key)  # grants, words and versions cascade
        _count(connection, Counter({before.is_active: -1}))
        return
    values = _model_values(after)
    del values["id"]
    connection.execute(_UPDATE_MODEL, {**values, **key})
    if after.access_grants != before.access_grants:
        connection.execute(_DELETE_GRANTS, key)
        if after.access_grants:
            connection.execute(_INSERT_GRANTS, _grant_rows(after))
    if (after.name, after.base_model_id) != (before.name, before.base_model_id):
        connection.execute(_DELETE_WORDS, key)
        connection.execute(_INSERT_WORDS, _word_rows(after))
    if tags_of(after.meta) != tags_of(before.meta):
        connection.execute(_DELETE_TAGS, key)
        if tag_rows := _tag_rows(after):
            connection.execute(_INSERT_TAGS, tag_rows)
    if after.is_active != before.is_active:
        _count(connection, Counter({before.is_active: -1, after.is_active: 1}))
    if _has_new_version(before, after):
        number: int | None = connection.execute(_LAST_NUMBER, key).scalar()
        version = version_of(
            after, parent_id=before.version_id or None, number=(number or 0) + 1, user_id=user_id
        )
        connection.execute(_INSERT_VERSION, _version_row(version))


def change_models(
    connection: Connection, model_ids: Sequence[str], change: Callable[[Model], Model], user_id: str
) -> None:
    """Each model of `model_ids` (in this order: rows are locked in it)
    stored as `change` makes it, with its new version, by `user_id`."""
    for model_id in model_ids:
        before = _load(connection, model_id, for_update=True)
        if before is not None:
            _store_change(connection, before, change(before), user_id)


def _has_new_version(before: Model | None, after: Model | None) -> bool:
    return before is not None and after is not None and after.version_id != before.version_id


def _delete_version(connection: Connection, version: ModelVersion) -> None:
    """Delete a version; the versions made from it get its parent."""
    connection.execute(delete(model_versions).where(model_versions.c.id == version.id))
    connection.execute(
        update(model_versions)
        .where(
            model_versions.c.model_id == version.model_id,
            model_versions.c.parent_id == version.id,
        )
        .values(parent_id=version.parent_id)
    )


def _count(connection: Connection, changes: Counter[bool]) -> None:
    # Rows in one order (false, then true) in every transaction: two writers
    # moving models in opposite directions would otherwise deadlock.
    for is_active, delta in sorted(changes.items()):
        if delta:
            connection.execute(_COUNT, {"counted": is_active, "delta": delta})


# Built once: a change runs several of these, and building a statement costs
# more than running it. (A model's key is the bound parameter "model_id".)
_MODEL_KEY: BindParameter[str] = bindparam("model_id")
_UPDATE_MODEL = update(models).where(models.c.id == _MODEL_KEY)  # SET: the other parameters
_DELETE_MODEL = delete(models).where(models.c.id == _MODEL_KEY)
_DELETE_GRANTS = delete(model_grants).where(model_grants.c.model_id == _MODEL_KEY)
_INSERT_GRANTS = insert(model_grants)
_DELETE_WORDS = delete(model_words).where(model_words.c.model_id == _MODEL_KEY)
_INSERT_WORDS = insert(model_words)
_DELETE_TAGS = delete(model_tags).where(model_tags.c.model_id == _MODEL_KEY)
_INSERT_TAGS = insert(model_tags)
_INSERT_VERSION = insert(model_versions)
_COUNT = (
    update(model_counts)
    .where(model_counts.c.is_active == bindparam("counted"))
    .values(models=model_counts.c.models + bindparam("delta"))
)


# -- reading ------------------------------------------------------------------------

# A kept GetModel answer: the key's two ids, a version id and a few groups.
BYTES_PER_KEPT_GET = 256


# Built once: these run on every GetModel and every change. A model and its
# grants come in one statement (one row per grant, or one without any).
_MODEL_WITH_GRANTS = (
    models_with_grants()
    .where(models.c.id == bindparam("model_id"))
    .order_by(model_grants.c.position)
)
# PostgreSQL locks the model's row; SQLite holds its write lock already.
_MODEL_WITH_GRANTS_FOR_UPDATE = _MODEL_WITH_GRANTS.with_for_update(of=models)
# Each grant row says whether the caller is in the group it names.
_MODEL_WITH_GRANTS_AND_CALLER = _MODEL_WITH_GRANTS.add_columns(
    STORED_BYTES,
    and_(
        model_grants.c.access_type == "group",
        exists().where(
            group_members.c.user_id == bindparam("user_id"),
            group_members.c.group_id == model_grants.c.access_id,
        ),
    ).label("caller_in_group"),
)
_GROUPS_OF = select(group_members.c.group_id).where(group_members.c.user_id == bindparam("user_id"))
_LAST_NUMBER = select(func.max(model_versions.c.number)).where(
    model_versions.c.model_id == bindparam("model_id")
)
_VERSION = select(model_versions).where(
    model_versions.c.id == bindparam("version_id"),
    model_versions.c.model_id == bindparam("model_id"),
)


_MODELS_WITH_GRANTS = (
    models_with_grants()
    .where(models.c.id.in_(bindparam("model_ids", expanding=True)))
    .order_by(models.c.id, model_grants.c.position)
)
_GROUPS_OF_USERS = select(group_members.c.user_id, group_members.c.group_id).where(
    group_members.c.user_id.in_(bindparam("user_ids", expanding=True))
)


def _read_models(
    connection: Connection, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], tuple[Model | None, frozenset[str]]]:
    """GetModel's lookups, (model id, caller's user id) each: every model
    with its grants in one statement, every caller's groups in another."""
    model_ids = sorted({model_id for model_id, _ in keys})
    user_ids = sorted({user_id for _, user_id in keys})
    rows_of: dict[str, list[Row[Any]]] = {}
    for row in connection.execute(_MODELS_WITH_GRANTS, {"model_ids": model_ids}):
        rows_of.setdefault(row.id, []).append(row)
    groups: dict[str, set[str]] = {}
    for member in connection.execute(_GROUPS_OF_USERS, {"user_ids": user_ids}):
        groups.setdefault(member.user_id, set()).add(member.group_id)
    found = {model_id: model_from_rows(rows) for model_id, rows in rows_of.items()}
    return {
        (model_id, user_id): (found.get(model_id), frozenset(groups.get(user_id, ())))
        for model_id, user_id in keys
    }


def _read_model(
    connection: Connection, model_id: str, user_id: str, cache: ModelCache
) -> tuple[Model | None, frozenset[str]]:
    """One GetModel lookup in one statement: the model with its grants, and
    of the caller's groups those its grants name (the only ones that can
    decide the caller's access). The model is decoded only when `cache`
    does not hold its version, and then kept there."""
    rows = connection.execute(
        _MODEL_WITH_GRANTS_AND_CALLER, {"model_id": model_id, "user_id": user_id}
    ).all()
    if not rows:
        return None, frozenset()
    groups = frozenset(row.grant_id for row in rows if row.caller_in_group)
    version_id = rows[0].version_id
    model = cache.get(version_id) if version_id else None
    if model is None:
        model = model_from_rows(rows)
        cache.put(model, rows[0].stored_bytes or 0)
    return model, groups


def _load(connection: Connection, model_id: str, *, for_update: bool = False) -> Model | None:
    query = _MODEL_WITH_GRANTS_FOR_UPDATE if for_update else _MODEL_WITH_GRANTS
    rows = connection.execute(query, {"model_id": model_id}).all()
    return model_from_rows(rows) if rows else None


_GRANTS_OF = (
    select(model_grants)
    .where(model_grants.c.model_id.in_(bindparam("model_ids", expanding=True)))
    .order_by(model_grants.c.model_id, model_grants.c.position)
)


def _grants_of(connection: Connection, model_ids: Sequence[str]) -> dict[str, list[AccessGrant]]:
    grants: dict[str, list[AccessGrant]] = {}
    for row in connection.execute(_GRANTS_OF, {"model_ids": list(model_ids)}):
        grants.setdefault(row.model_id, []).append(
            AccessGrant(row.access_type, row.access_id, row.permission)
        )
    return grants


def _groups_for(connection: Connection, reader: Reader) -> frozenset[str]:
    """The reader's groups, read in the listing's own transaction, if it needs them."""
    return _groups_of(connection, reader.user_id) if reader.needs_groups else frozenset()


def _groups_of(connection: Connection, user_id: str) -> frozenset[str]:
    return frozenset(connection.execute(_GROUPS_OF, {"user_id": user_id}).scalars())


def _load_version(connection: Connection, model_id: str, version_id: str) -> ModelVersion | None:
    row = connection.execute(_VERSION, {"model_id": model_id, "version_id": version_id}).first()
    return None if row is None else _version(row, with_snapshot=True)


def _version(row: Row[Any], *, with_snapshot: bool) -> ModelVersion:
    snapshot = None
    if with_snapshot:
        stored = row.snapshot
        snapshot = Snapshot(
            name=stored["name"],
            base_model_id=stored["base_model_id"],
            params=stored["params"],
            meta=stored["meta"],
            is_active=stored["is_active"],
            access_grants=[
                AccessGrant(grant["access_type"], grant["access_id"], grant["permission"])
                for grant in stored["access_grants"]
            ],
        )
    return ModelVersion(
        id=row.id,
        model_id=row.model_id,
        parent_id=row.parent_id,
        number=row.number,
        user_id=row.user_id,
        commit_message=row.commit_message,
        created_at=row.created_at,
        snapshot=snapshot,
    )


_HISTORY_COLUMNS = [c for c in model_versions.c if c.name != "snapshot"]


def _version_page(connection: Connection, query: VersionQuery) -> VersionPage:
    page = select(*_HISTORY_COLUMNS).where(model_versions.c.model_id == query.model_id)
    if query.before is not None:
        page = page.where(model_versions.c.number < query.before)
    page = (
        page.order_by(model_versions.c.number.desc())
        .offset(query.offset)
        .limit(query.page_size + 1)  # one more: is there a next page?
    )
    rows = connection.execute(page).all()
    more = len(rows) > query.page_size
    rows = rows[: query.page_size]
    versions = [_version(row, with_snapshot=False) for row in rows]
    return VersionPage(versions, versions[-1].number if more and versions else None)
