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
from .domain.registry import ModelRegistry
from .storage.database import create_database_engine
from .storage.repositories import ApiKeyRepository, ModelRepository, UserRepository


@dataclass(frozen=True, slots=True)
class App:
    """What serving requests needs: the registry and the authenticator."""

    engine: Engine
    models: ModelRepository
    registry: ModelRegistry
    authenticator: Authenticator

    def close(self) -> None:
        self.models.close()
        self.engine.dispose()


def build_app(settings: Settings) -> App:
    engine = create_database_engine(settings.database_url, pool_size=settings.database_threads)
    models = ModelRepository(engine)
    return App(
        engine=engine,
        models=models,
        registry=ModelRegistry(models),
        authenticator=Authenticator(
            ApiKeyRepository(engine), cache_seconds=settings.auth_cache_seconds
        ),
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


def database_executor(settings: Settings) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(settings.database_threads, thread_name_prefix="db")
