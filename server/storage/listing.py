"""ListModels' queries: one page of the models a caller may read, and its
total. A statement is built once per query shape (which filters, which
order, whether after a page token) with every value a bound parameter, and
kept: building one was about a fifth of a reader's page. The page reads
only ids, versions and sort keys; models are decoded only when the cache
(model_cache.py) does not hold them at those versions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Select,
    and_,
    bindparam,
    exists,
    func,
    or_,
    select,
    text,
    tuple_,
    union,
)

from ..domain.listing import ListQuery, ModelPage, Reader, SortValue, Visibility
from ..domain.models import Model
from .model_cache import ModelCache
from .rows import STORED_BYTES, model_from_rows, models_with_grants
from .tables import NAME_KEY, model_counts, model_grants, model_tags, model_words, models

# Above every character a word can hold: `word < prefix + LAST` bounds a prefix range.
LAST = "\U0010ffff"
SORT_COLUMNS = {
    "name": NAME_KEY,
    "created_at": models.c.created_at,
    "updated_at": models.c.updated_at,
}


@dataclass(frozen=True, slots=True)
class Shape:
    """What a statement depends on, besides its parameters' values."""

    order_by: str
    descending: bool
    after: bool  # continues after a page token's position
    view: str  # "", "created" or "shared"
    everything: bool  # an admin
    is_active: bool  # filtered by is_active
    owner: bool  # filtered by owner
    words: int
    tag: bool  # filtered by a tag
    grantee_types: tuple[str, ...]  # the access_types of the caller's grantees

    @property
    def found_by_id(self) -> bool:
        """The page's models are found by id (from words or grants), not by
        walking an order's index."""
        return self.view == "shared" or not self.everything or self.words > 0 or self.tag

    @property
    def counted_with_page(self) -> bool:
        """What a reader may see (or what was shared) is all read and sorted
        before the page is cut, so the page's own statement counts it (after
        a page token too, before the token's position is applied). Not for
        an admin's search: counting many matches in the words' index alone
        is cheaper."""
        return self.view == "shared" or not self.everything


def shape_of(query: ListQuery, visibility: Visibility) -> Shape:
    return Shape(
        order_by=query.order_by,
        descending=query.descending,
        after=query.after is not None,
        view=query.view,
        everything=visibility.everything,
        is_active=query.is_active is not None,
        owner=query.owner_id is not None,
        words=len(query.words),
        tag=query.tag is not None,
        grantee_types=grantee_types(visibility),
    )


def reader_shape(query: ListQuery, reader: Reader) -> Shape:
    """The shape of `reader`'s pages of `query`, their groups aside (which
    are read with the page): what tells pages of like cost apart."""
    return shape_of(query, reader.visibility(frozenset()))


def parameters_of(query: ListQuery, visibility: Visibility) -> dict[str, Any]:
    """The values of a page's statements (each uses those it names)."""
    values: dict[str, Any] = {
        "offset": query.offset,
        "limit": query.page_size + 1,  # one more: is there a next page?
        **reader_parameters(visibility),
    }
    if query.is_active is not None:
        values["is_active"] = query.is_active
    if query.owner_id is not None:
        values["owner_id"] = query.owner_id
    for index, word in enumerate(query.words):
        values[f"word_{index}"] = word
        values[f"word_end_{index}"] = word + LAST
    if query.tag is not None:
        values["tag"] = query.tag
    if query.after is not None:
        values["after_key"], values["after_id"] = query.after
    return values


def grantee_types(visibility: Visibility) -> tuple[str, ...]:
    """The access_types among the caller's grantees: what readable() is built for."""
    return tuple(sorted({access_type for access_type, _ in visibility.grantees}))


def reader_parameters(visibility: Visibility) -> dict[str, Any]:
    """The values readable() binds: the caller ("me") and their grantees by type."""
    values: dict[str, Any] = {"me": visibility.user_id}
    for access_type, access_id in visibility.grantees:
        values.setdefault(f"grantees_{access_type}", []).append(access_id)
    return values


def page_of(
    connection: Connection,
    query: ListQuery,
    visibility: Visibility,
    cache: ModelCache,
    total: int | None = None,
) -> ModelPage:
    """One page: the page's ids and versions by one indexed statement, then
    only the models `cache` does not hold at those versions, with their
    grants, by another; then the total, unless the page counted it or it is
    given (the query's total as read at this snapshot)."""
    shape = shape_of(query, visibility)
    values = parameters_of(query, visibility)
    statement = _page_statement(shape)
    word = _only_word(connection, shape, values)
    if word is not None:
        values["word"] = word
        if shape.order_by == "created_at":
            statement = _one_word_page(shape)
    rows = connection.execute(statement, values).all()
    more = len(rows) > query.page_size
    rows = rows[: query.page_size]
    if shape.counted_with_page and rows:
        total = int(rows[0].matched)
    elif total is None:
        counted = _WORD_ROWS if word is not None else _total_statement(shape)
        total = int(connection.execute(counted, values).scalar_one())
    return _page(connection, rows, more, total, cache)


def _only_word(connection: Connection, shape: Shape, values: dict[str, Any]) -> str | None:
    """For an admin's one-word search: the one indexed word that starts with
    the query's word, if only one does (two index seeks); else None."""
    if not _admin_one_word(shape):
        return None
    lowest, highest = connection.execute(_word_range(), values).one()
    return str(lowest) if lowest is not None and lowest == highest else None


def matches_of(
    connection: Connection, query: ListQuery, visibility: Visibility, most: int
) -> Sequence[Row[Any]] | None:
    """Every model `query` matches for `visibility`, in the query's order from
    its start (rows of id, version_id and sort_key, as the page's statement
    reads them: kept as they come, since making other objects of them cost
    as much as reading them); None if there are more than `most`."""
    shape = replace(shape_of(query, visibility), after=False)
    values = {**parameters_of(query, visibility), "offset": 0, "limit": most + 1}
    rows = connection.execute(_page_statement(shape), values).all()
    return None if len(rows) > most else rows


def page_of_matches(
    connection: Connection, query: ListQuery, matches: Sequence[Row[Any]], cache: ModelCache
) -> ModelPage | None:
    """The page of `query` out of all its matches (matches_of), as page_of
    would read it; None if its token's position cannot be compared with them."""
    start = 0
    if query.after is not None:
        first_after = _first_after(matches, query.after, query.descending)
        if first_after is None:
            return None
        start = first_after
    start += query.offset
    rows = matches[start : start + query.page_size + 1]
    more = len(rows) > query.page_size
    return _page(connection, rows[: query.page_size], more, len(matches), cache)


def _first_after(
    matches: Sequence[Any], after: tuple[SortValue, str], descending: bool
) -> int | None:
    """The index of the first match past `after` in the query's order (as the
    statement's `(key, id) > (:after_key, :after_id)`, or `<` descending):
    Python orders ints, and strs by code point, as SQLite's BINARY collation
    does."""
    if matches and type(matches[0].sort_key) is not type(after[0]):
        return None  # SQLite would order these; let it
    low, high = 0, len(matches)
    while low < high:
        middle = (low + high) // 2
        position = (matches[middle].sort_key, matches[middle].id)
        past = position < after if descending else position > after
        if past:
            high = middle
        else:
            low = middle + 1
    return low


def _page(
    connection: Connection,
    rows: Sequence[Sequence[Any]],  # Rows, read by position
    more: bool,
    total: int,
    cache: ModelCache,
) -> ModelPage:
    """The page of these rows (id, version_id, sort_key each): models the
    cache holds at those versions, the rest read with their grants."""
    # By position: a Row's attribute costs ten times its index, and a page
    # reads 30 rows of them.
    ids = [row[0] for row in rows]
    kept = cache.get_many([row[1] for row in rows])
    missing = [model_id for model_id, model in zip(ids, kept, strict=True) if model is None]
    read = _read_models(connection, missing, cache) if missing else {}
    # A model deleted between the two statements (PostgreSQL reads each in
    # its own snapshot) is left out; one changed meanwhile comes as it is now.
    items = [
        found
        for found in (
            model or read.get(model_id) for model_id, model in zip(ids, kept, strict=True)
        )
        if found is not None
    ]
    last: tuple[SortValue, str] | None = None
    if more and rows:
        last = (rows[-1][2], rows[-1][0])
    return ModelPage(models=items, total=total, last=last)


# SQLite takes the primary key's index for `id IN (...)` lookups, one row
# each, then reads each model's row for its sort key. A condition on the next
# column of ix_models_id_keys (true of every model) steers it to that
# covering index instead: a search matching 10,000 models pages about five
# times faster. (bench/query_plans.py shows the plans.)
_KEYS_FROM_INDEX = models.c.created_at >= -(2**63)


@lru_cache(maxsize=512)
def _page_statement(shape: Shape) -> Select[Any]:
    key = SORT_COLUMNS[shape.order_by]
    page = select(models.c.id, models.c.version_id, key.label("sort_key")).where(*_filters(shape))
    if shape.found_by_id:
        page = page.where(_KEYS_FROM_INDEX)
    if shape.counted_with_page:
        page = page.add_columns(func.count().over().label("matched"))
    if shape.after and shape.counted_with_page:
        # Counted over every match, then cut at the token's position: the
        # window is computed before the outer statement's condition.
        counted = page.subquery("counted")
        return _ordered_after(select(*counted.c), shape, counted.c.sort_key, counted.c.id, key.type)
    return _ordered_after(page, shape, key, models.c.id, key.type)


def _admin_one_word(shape: Shape) -> bool:
    """An admin's search for one word, nothing else filtered: when only one
    indexed word starts with it, its rows are the matches, each model once."""
    filtered = shape.is_active or shape.owner or shape.view or shape.tag
    return shape.everything and shape.words == 1 and not filtered


@lru_cache(maxsize=1)
def _word_range() -> Select[Any]:
    """The lowest and the highest word in the query's word's range (two index seeks)."""
    return select(
        select(func.min(model_words.c.word)).where(_matching(0)).scalar_subquery(),
        select(func.max(model_words.c.word)).where(_matching(0)).scalar_subquery(),
    )


@lru_cache(maxsize=8)
def _one_word_page(shape: Shape) -> Select[Any]:
    """The page of the models with the word `word`, read in the query's order
    from model_words' key (word, created_at, model_id: each word row carries
    its model's created_at), so its cost follows the page, not the word's matches; each
    model's version from its row. (When the range holds several words, their
    matches must be merged and sorted: _page_statement.)"""
    key = model_words.c.created_at
    page = (
        select(models.c.id, models.c.version_id, key.label("sort_key"))
        .select_from(model_words.join(models, models.c.id == model_words.c.model_id))
        .where(model_words.c.word == bindparam("word"))
    )
    return _ordered_after(page, shape, key, model_words.c.model_id, key.type)


def _ordered_after(
    page: Select[Any], shape: Shape, key: Any, model_id: Any, key_type: Any
) -> Select[Any]:
    """`page` after the token's position (if any), in the query's order, cut
    to the page: by (key, model_id), both directions the same way."""
    if shape.after:
        after = tuple_(key, model_id)
        position = tuple_(bindparam("after_key", type_=key_type), bindparam("after_id"))
        page = page.where(after < position if shape.descending else after > position)
    if shape.descending:
        page = page.order_by(key.desc(), model_id.desc())
    else:
        page = page.order_by(key.asc(), model_id.asc())
    return page.offset(bindparam("offset")).limit(bindparam("limit"))


@lru_cache(maxsize=512)
def _total_statement(shape: Shape) -> Select[Any]:
    unfiltered = not (shape.words or shape.owner or shape.view or shape.tag)
    if shape.everything and unfiltered:
        # Every model, or every (in)active one: kept counts, not a scan.
        counts = select(func.coalesce(func.sum(model_counts.c.models), 0))
        if shape.is_active:
            counts = counts.where(model_counts.c.is_active == bindparam("is_active"))
        return counts
    if _admin_one_word(shape):
        # Several words start with the query's (else _WORD_ROWS): a model
        # may have two of them. Counted in the words' index alone.
        return select(func.count(model_words.c.model_id.distinct())).where(_matching(0))
    return select(func.count()).select_from(models).where(*_filters(shape))


# The models with one word: each of its rows is another model (a model has
# a word once), and counting rows is about six times cheaper than counting
# distinct ids (BENCHMARKS.md).
_WORD_ROWS = (
    select(func.count()).select_from(model_words).where(model_words.c.word == bindparam("word"))
)


def _filters(shape: Shape) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if shape.is_active:
        conditions.append(models.c.is_active == bindparam("is_active"))
    if shape.owner:
        conditions.append(models.c.user_id == bindparam("owner_id"))
    if shape.view == "created":
        conditions.append(models.c.user_id == bindparam("me"))
    elif shape.view == "shared":
        conditions.append(models.c.user_id != bindparam("me"))
        conditions.append(models.c.id.in_(_granted(shape.grantee_types)))
    elif not shape.everything:
        conditions.append(readable(shape.grantee_types))
    for index in range(shape.words):
        conditions.append(_has_word(index, driven_by_words=shape.everything))
    if shape.tag:
        conditions.append(_has_tag(driven_by_tags=shape.everything))
    return conditions


def _has_tag(*, driven_by_tags: bool) -> ColumnElement[bool]:
    """A model has the query's tag: led by the tag's models for an admin, or
    checked in each readable model's own tags (as _has_word)."""
    tagged = model_tags.c.tag == bindparam("tag")
    if driven_by_tags:
        return models.c.id.in_(select(model_tags.c.model_id).where(tagged))
    return exists().where(model_tags.c.model_id == models.c.id, tagged)


def _has_word(index: int, *, driven_by_words: bool) -> ColumnElement[bool]:
    """A model has a word starting with the query's word number `index`."""
    starts = _matching(index)
    if driven_by_words:
        # Every model may match: the matching words lead, so the cost follows
        # how many models the word matches.
        return models.c.id.in_(select(model_words.c.model_id).where(starts))
    # The caller's own models and grants lead (see _filters); each is checked
    # by its own few words (ix_model_words_model_id_word), so the cost follows
    # what the caller may read, not how many models the word matches.
    return exists().where(model_words.c.model_id == models.c.id, starts)


def _matching(index: int) -> ColumnElement[bool]:
    """A word starting with the query's word number `index`: a range of
    model_words' key."""
    return and_(
        model_words.c.word >= bindparam(f"word_{index}"),
        model_words.c.word < bindparam(f"word_end_{index}"),
    )


def readable(grantee_types: Sequence[str]) -> ColumnElement[bool]:
    """A model the caller (not an admin) may read: driven from the caller's
    own models and their grants (reader_parameters), both indexed,
    so the cost follows what the caller may see, not how many models exist."""
    return models.c.id.in_(_readable_ids(grantee_types))


def _readable_ids(grantee_types: Sequence[str]) -> Any:
    own = select(models.c.id.label("id")).where(models.c.user_id == bindparam("me"))
    return union(own, _granted(grantee_types))


# Every tag once, by its key: a walk from each key to the next in the tags'
# primary key (tag, model_id), so the cost follows how many tags there are,
# not how many models have them; each in the spelling of its first model.
_EVERY_TAG = text(
    """
    WITH RECURSIVE keys(tag) AS (
        SELECT min(tag) FROM model_tags
        UNION ALL
        SELECT (SELECT min(t.tag) FROM model_tags t WHERE t.tag > keys.tag)
        FROM keys WHERE keys.tag IS NOT NULL
    )
    SELECT (SELECT t.name FROM model_tags t WHERE t.tag = keys.tag ORDER BY t.model_id LIMIT 1)
    FROM keys WHERE keys.tag IS NOT NULL
    """
)


@lru_cache(maxsize=16)
def _readable_tags(grantee_types: tuple[str, ...]) -> Select[Any]:
    """The tags of a reader's models (own and granted), each once."""
    first_spelling = func.min(model_tags.c.name)
    return (
        select(first_spelling)
        .where(model_tags.c.model_id.in_(_readable_ids(grantee_types)))
        .group_by(model_tags.c.tag)
        .order_by(model_tags.c.tag)
    )


def tags_of_readable(connection: Connection, visibility: Visibility) -> list[str]:
    """The tags of the models `visibility` lets through, sorted by key."""
    if visibility.everything:
        return list(connection.execute(_EVERY_TAG).scalars())
    statement = _readable_tags(grantee_types(visibility))
    return list(connection.execute(statement, reader_parameters(visibility)).scalars())


def _granted(grantee_types: Sequence[str]) -> Select[tuple[str]]:
    return select(model_grants.c.model_id.label("id")).where(
        or_(
            *(
                and_(
                    model_grants.c.access_type == access_type,
                    model_grants.c.access_id.in_(
                        bindparam(f"grantees_{access_type}", expanding=True)
                    ),
                )
                for access_type in grantee_types
            )
        )
    )


# The models of a page that the cache does not hold: one statement, a row
# per grant (or one without any), and the size of their JSON as stored.
_MODELS_WITH_GRANTS = (
    models_with_grants(STORED_BYTES)
    .where(models.c.id.in_(bindparam("model_ids", expanding=True)))
    .order_by(models.c.id, model_grants.c.position)
)


def _read_models(
    connection: Connection, model_ids: list[str], cache: ModelCache
) -> dict[str, Model]:
    rows_of: dict[str, list[Row[Any]]] = {}
    for row in connection.execute(_MODELS_WITH_GRANTS, {"model_ids": model_ids}):
        rows_of.setdefault(row.id, []).append(row)
    read = {}
    for model_id, rows in rows_of.items():
        model = read[model_id] = model_from_rows(rows)
        cache.put(model, rows[0].stored_bytes or 0)
    return read
