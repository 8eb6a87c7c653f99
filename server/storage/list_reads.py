"""ListModels' pages and the tag list, read where and how is cheapest: on
SQLite first on the event loop's thread (loop_first.py), a page's models from
those kept by version (model_cache.py), and a reader's matches and tags from
what was kept at the database's current version (kept_reads.py).

A page asked again by the same reader at the version it was read at is the
very page answered before, the same object: what the domain and the
transport made of it is then looked up too (domain/derived.py), so a page
asked again costs a version check and three lookups."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, Engine, Row

from ..domain.listing import ListQuery, ModelPage, Reader
from .kept_reads import BYTES_PER_MATCH, DEFAULT_BUDGET_BYTES, KeptReads
from .listing import matches_of, page_of, page_of_matches, reader_shape, tags_of_readable
from .loop_first import DEFAULT_BUDGET_SECONDS as DEFAULT_LOOP_BUDGET_SECONDS
from .loop_first import LoopFirstReads, Version
from .metrics import LIST_PAGES_AGAIN, LIST_PAGES_KEPT, LIST_TOTALS_KEPT
from .model_cache import ModelCache

# A query matching more of what a reader may read is not kept: about 1.3 MB.
MAX_KEPT_MATCHES = 5000
# A kept tag: its string and its place in the list.
BYTES_PER_TAG = 64
# A kept page, per model: a model's objects beside its params and meta (the
# model cache's estimate). A page's models are mostly those the cache holds;
# what the domain and transport made of a kept page goes with it.
BYTES_PER_PAGE_MODEL = 1024

Found = tuple[ModelPage, frozenset[str]]  # a page, and its reader's groups

GroupsOf = Callable[[Connection, Reader], frozenset[str]]


@dataclass(frozen=True, slots=True)
class _KeptMatches:
    matches: Sequence[Row[Any]]  # listing.matches_of
    groups: frozenset[str]  # the reader's, at the same version


class ListReads:
    def __init__(
        self,
        engine: Engine,
        executor: Executor,
        groups_of: GroupsOf,
        *,
        budget_seconds: float = DEFAULT_LOOP_BUDGET_SECONDS,
        models: ModelCache | None = None,
    ) -> None:
        # On the event loop when SQLite answers quickly, else on `executor`
        # (a few threads of their own: Settings.list_threads).
        self._reads = LoopFirstReads(engine, executor, budget_seconds=budget_seconds)
        self._groups_of = groups_of  # a reader's groups, in the read's transaction
        self._models = models or ModelCache()  # pages' models, by version
        self._matches: KeptReads[_KeptMatches] = KeptReads()
        self._finding: dict[Hashable, asyncio.Future[None]] = {}  # a thread finds its matches
        self._tags: KeptReads[list[str]] = KeptReads(DEFAULT_BUDGET_BYTES // 4)
        self._totals: KeptReads[int] = KeptReads(DEFAULT_BUDGET_BYTES // 16)
        self._pages: KeptReads[Found] = KeptReads(2 * DEFAULT_BUDGET_BYTES)  # ~1,000 pages

    async def page(self, query: ListQuery, reader: Reader) -> Found:
        """One page of `query` as `reader` may see it, and the reader's
        groups: the same objects as last time when nothing changed since."""
        shape = reader_shape(query, reader)
        # A page that reads all its matches anyway (a reader's, or what was
        # shared) keeps them: every page of one query by one reader shares
        # them, their total and the reader's groups. Any other page (an
        # admin's, walking an index in order) keeps only its total, which
        # it counts apart: a search's can be thousands of rows.
        keeps = shape.counted_with_page
        key = (reader, replace(query, after=None, offset=0, page_size=0))
        page_key = (reader, query)

        def read(connection: Connection, version: Version | None) -> Found:
            if version is None:  # in a thread
                return read_afresh(connection, None)
            found = self._pages.get(page_key, version)
            if found is not None:
                LIST_PAGES_AGAIN.inc()
                return found
            found = read_afresh(connection, version)
            cost = (len(found[0].models) + 1) * BYTES_PER_PAGE_MODEL
            self._pages.offer(page_key, version, found, cost)
            return found

        def read_afresh(connection: Connection, version: Version | None) -> Found:
            if not keeps:
                return self._page_counted_once(connection, query, reader, key, version)
            if version is not None:
                kept = self._matches.get(key, version)
                if kept is not None:
                    page = page_of_matches(connection, query, kept.matches, self._models)
                    if page is not None:
                        LIST_PAGES_KEPT.inc()
                        return page, kept.groups
            groups = self._groups_of(connection, reader)
            visibility = reader.visibility(groups)
            if version is not None and self._matches.worth_keeping(key, version):
                matches = matches_of(connection, query, visibility, MAX_KEPT_MATCHES)
                if matches is None:
                    self._matches.refuse(key, version)
                else:
                    cost = (len(matches) + 1) * BYTES_PER_MATCH
                    self._matches.put(key, version, _KeptMatches(matches, groups), cost)
                    page = page_of_matches(connection, query, matches, self._models)
                    if page is not None:
                        return page, groups
            elif version is None and keeps_in_threads:
                # In a thread (finding them all took longer than the loop's
                # budget): found all the same, and kept if no other
                # connection committed meanwhile (run_versioned). Else every
                # page of the query would run here, at that cost, until the
                # loop tried again.
                matches = matches_of(connection, query, visibility, MAX_KEPT_MATCHES)
                if matches is not None:
                    found_in_thread.append(_KeptMatches(matches, groups))
                    page = page_of_matches(connection, query, matches, self._models)
                    if page is not None:
                        return page, groups
            return page_of(connection, query, visibility, self._models), groups

        keeps_in_threads = keeps and self._reads.versions_known()
        found_in_thread: list[_KeptMatches] = []
        # Kinds of like cost: the shape, and whether rows are skipped to reach the page.
        kind = (shape, query.offset > 0)
        if not keeps_in_threads:  # nothing a thread finds could be kept
            return await self._reads.run(kind, read)
        # One call at a time finds a query's matches in a thread: the calls
        # that come meanwhile (every connection asks again after a commit)
        # wait for it once, then read their page from what it kept, on the
        # loop. A read on the loop never yields, so only a thread's read is
        # ever seen here in flight.
        finding = self._finding.get(key)
        if finding is not None:
            await asyncio.shield(finding)
        mine = key not in self._finding
        if mine:
            self._finding[key] = asyncio.get_running_loop().create_future()
        try:
            (page, groups), read_at = await self._reads.run_versioned(kind, read)
        finally:
            if mine:
                self._finding.pop(key).set_result(None)
        if found_in_thread and read_at is not None:
            kept = found_in_thread[0]
            self._matches.put(key, read_at, kept, (len(kept.matches) + 1) * BYTES_PER_MATCH)
            self._reads.retry_on_loop(kind)  # its next pages come from what was kept
        return page, groups

    def _page_counted_once(
        self,
        connection: Connection,
        query: ListQuery,
        reader: Reader,
        key: Hashable,
        version: Version | None,
    ) -> Found:
        """A page whose total is counted apart, with the total kept at
        `version` from the query's second page or second asking."""
        groups = self._groups_of(connection, reader)
        total = None if version is None else self._totals.get(key, version)
        page = page_of(connection, query, reader.visibility(groups), self._models, total)
        if total is not None:
            LIST_TOTALS_KEPT.inc()
        elif version is not None:
            self._totals.offer(key, version, page.total, BYTES_PER_MATCH)
        return page, groups

    async def tags(self, reader: Reader) -> Sequence[str]:
        """The tags of the models `reader` may read, each once, sorted by key."""

        def read(connection: Connection, version: Version | None) -> list[str]:
            if version is not None:
                kept = self._tags.get(reader, version)
                if kept is not None:
                    return kept
            groups = self._groups_of(connection, reader)
            tags = tags_of_readable(connection, reader.visibility(groups))
            if version is not None:  # the whole answer: kept at once
                cost = sum(len(tag) + BYTES_PER_TAG for tag in tags) + BYTES_PER_MATCH
                self._tags.put(reader, version, tags, cost)
            return tags

        return await self._reads.run(("tags", reader.everything), read)  # kept: not to change

    def close(self) -> None:
        self._reads.close()
