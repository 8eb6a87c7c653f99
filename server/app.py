"""Wiring: builds every long-lived object once, at start-up. The one module
that knows both the domain and the storage that implements its stores."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Engine

from .config import Settings
from .domain.accounts import Accounts
from .domain.auth import Authenticator
from .domain.groups import GroupAdmin
from .domain.registry import ModelRegistry
from .domain.transfer import ModelTransfer
from .storage.checkpoints import Checkpointer
from .storage.database import create_database_engine, sqlite_file
from .storage.groups import GroupRepository
from .storage.models import ModelRepository
from .storage.repositories import ApiKeyRepository, UserRepository
from .storage.retention import VersionPruner
from .storage.transfer import TransferRepository


@dataclass(frozen=True, slots=True)
class App:
    """What serving requests needs: the registry, export and import, the
    groups, the authenticator, and the threads that wait on the database
    for them."""

    engine: Engine
    executor: ThreadPoolExecutor
    list_executor: ThreadPoolExecutor  # ListModels' pages
    models: ModelRepository
    registry: ModelRegistry
    transfer: ModelTransfer
    groups: GroupAdmin
    authenticator: Authenticator
    pruner: VersionPruner | None  # with --keep-versions; serve runs it
    checkpointer: Checkpointer | None  # SQLite's WAL checkpoints, beside the writer

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.list_executor.shutdown(wait=True)
        self.models.close()
        if self.checkpointer is not None:
            self.checkpointer.close()
        self.engine.dispose()


def build_app(settings: Settings) -> App:
    # A connection for each thread, and one kept for the event loop's own
    # quick reads (storage/loop_first.py).
    sqlite_path = sqlite_file(settings.database_url)
    engine = create_database_engine(
        settings.database_url,
        pool_size=settings.database_threads + settings.list_threads + 1,
        checkpoints_apart=sqlite_path is not None,
    )
    checkpointer = Checkpointer(sqlite_path) if sqlite_path is not None else None
    executor = ThreadPoolExecutor(settings.database_threads, thread_name_prefix="db")
    list_executor = ThreadPoolExecutor(settings.list_threads, thread_name_prefix="db-list")
    pruner = None
    if settings.keep_versions is not None:
        pruner = VersionPruner(engine, settings.keep_versions)
    models = ModelRepository(
        engine,
        executor,
        list_executor=list_executor,
        on_new_version=pruner.written if pruner is not None else None,
    )
    return App(
        engine=engine,
        executor=executor,
        list_executor=list_executor,
        models=models,
        registry=ModelRegistry(models),
        transfer=ModelTransfer(
            TransferRepository(
                engine, on_new_version=pruner.written if pruner is not None else None
            )
        ),
        groups=GroupAdmin(GroupRepository(engine), UserRepository(engine)),
        authenticator=Authenticator(
            ApiKeyRepository(engine), cache_seconds=settings.auth_cache_seconds
        ),
        pruner=pruner,
        checkpointer=checkpointer,
    )


@contextlib.contextmanager
def open_accounts(database_url: str) -> Iterator[Accounts]:
    """Users and keys only, for the operator's commands and the first
    start's admin: one connection, and no model writer thread."""
    engine = create_database_engine(database_url, pool_size=1)
    try:
        yield Accounts(UserRepository(engine), ApiKeyRepository(engine))
    finally:
        engine.dispose()


@contextlib.contextmanager
def open_transfer(database_url: str) -> Iterator[tuple[ModelTransfer, UserRepository]]:
    """Export and import, and the users they act as, for the operator's
    commands: one connection."""
    engine = create_database_engine(database_url, pool_size=1)
    try:
        yield ModelTransfer(TransferRepository(engine)), UserRepository(engine)
    finally:
        engine.dispose()


@contextlib.contextmanager
def open_groups(database_url: str) -> Iterator[GroupAdmin]:
    """Groups, for the operator's commands: one connection."""
    engine = create_database_engine(database_url, pool_size=1)
    try:
        yield GroupAdmin(GroupRepository(engine), UserRepository(engine))
    finally:
        engine.dispose()
