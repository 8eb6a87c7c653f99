"""Version retention (`serve --keep-versions N`): each model keeps its newest
N versions, the current one always among them. Pruning runs in the
background: at start a sweep of every model with more than N, then, every
`interval` seconds, the models written since the last pass. Each model is
pruned in its own short transaction, so a writer of that model waits at most
for one prune, and creates (one version each) never wait."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable
from concurrent.futures import Executor

from sqlalchemy import Engine, delete, func, select, update

from ..domain.stores import StorageUnavailable
from .database import WRITE_FIRST, translate_errors, writer_turn
from .tables import model_versions, models

log = logging.getLogger(__name__)

SWEEP_BATCH = 500


class VersionPruner:
    def __init__(self, engine: Engine, keep: int, *, interval: float = 1.0) -> None:
        if keep < 1:
            raise ValueError("a model keeps at least its current version")
        self._engine = engine
        self._keep = keep
        self._interval = interval
        self._written: set[str] = set()
        self._lock = threading.Lock()

    def written(self, model_id: str) -> None:
        """Note a model that has a new version (from any thread)."""
        with self._lock:
            self._written.add(model_id)

    def prune_written(self) -> int:
        """Prune the models written since the last call; versions deleted."""
        with self._lock:
            pending, self._written = self._written, set()
        done: list[str] = []
        try:
            deleted = 0
            for model_id in sorted(pending):
                deleted += self._prune_one(model_id)
                done.append(model_id)
            return deleted
        finally:
            with self._lock:  # what was not pruned waits for the next pass
                self._written.update(pending.difference(done))

    def sweep(self) -> int:
        """Prune every model that has more than `keep` versions."""
        deleted, after = 0, ""
        while True:
            with self._engine.connect() as connection:
                crowded: list[str] = list(
                    connection.execute(
                        select(model_versions.c.model_id)
                        .where(model_versions.c.model_id > after)
                        .group_by(model_versions.c.model_id)
                        .having(func.count() > self._keep)
                        .order_by(model_versions.c.model_id)
                        .limit(SWEEP_BATCH)
                    ).scalars()
                )
            if not crowded:
                return deleted
            deleted += self.prune(crowded)
            after = crowded[-1]

    def prune(self, model_ids: Iterable[str]) -> int:
        return sum(self._prune_one(model_id) for model_id in model_ids)

    def _prune_one(self, model_id: str) -> int:
        with (
            writer_turn(self._engine),
            translate_errors(),
            self._engine.connect().execution_options(**{WRITE_FIRST: True}) as connection,
            connection.begin(),
        ):
            # The model's row, locked: no version is written meanwhile.
            current = connection.execute(
                select(models.c.version_id).where(models.c.id == model_id).with_for_update()
            ).scalar()
            newest = connection.execute(
                select(func.max(model_versions.c.number)).where(
                    model_versions.c.model_id == model_id
                )
            ).scalar()
            if current is None or newest is None or newest <= self._keep:
                return 0
            deleted = connection.execute(
                delete(model_versions).where(
                    model_versions.c.model_id == model_id,
                    model_versions.c.number <= newest - self._keep,
                    model_versions.c.id != current,
                )
            ).rowcount
            # The oldest version kept has no parent any more.
            kept = select(model_versions.c.id).where(model_versions.c.model_id == model_id)
            connection.execute(
                update(model_versions)
                .where(
                    model_versions.c.model_id == model_id,
                    model_versions.c.parent_id.is_not(None),
                    ~model_versions.c.parent_id.in_(kept),
                )
                .values(parent_id=None)
            )
            return int(deleted)

    async def run(self, executor: Executor) -> None:
        """Sweep, then prune what is written, until cancelled. An outage only
        delays pruning: the models are pruned on a later pass."""
        loop = asyncio.get_running_loop()
        swept = False
        while True:
            try:
                if not swept:
                    await loop.run_in_executor(executor, self.sweep)
                    swept = True
                await loop.run_in_executor(executor, self.prune_written)
            except StorageUnavailable as error:
                log.warning("pruning versions is waiting for the database: %s", error)
            await asyncio.sleep(self._interval)
