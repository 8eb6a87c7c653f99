"""GetModel on SQLite keeps what a caller's lookup found at the database's
version (storage/models.py): asked again with nothing committed between, it
is answered from that; any commit, by any connection, and it is read again.
In-process, on a real SQLite file."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from modelregistry_server.app import App, build_app
from modelregistry_server.config import Settings
from modelregistry_server.domain.errors import ModelNotFound
from modelregistry_server.domain.models import ROLE_USER, GrantDraft, ModelDraft, Principal
from modelregistry_server.storage.metrics import GET_READS_AGAIN
from modelregistry_server.storage.migrations import upgrade

OWNER = Principal("owner", ROLE_USER, can_create_models=True)
MEMBER = Principal("member", ROLE_USER, can_create_models=False)
OUTSIDER = Principal("outsider", ROLE_USER, can_create_models=False)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[tuple[App, str]]:
    """A model shared with group `team`, which `member` is in."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    upgrade(url)
    engine = create_engine(url)
    with engine.begin() as connection:
        for user in ("owner", "member", "outsider"):
            connection.exec_driver_sql(f"INSERT INTO users VALUES ('{user}', 'user', 1, 0)")
        connection.exec_driver_sql("INSERT INTO groups VALUES ('team', 'Team', 0)")
        connection.exec_driver_sql("INSERT INTO group_members VALUES ('team', 'member')")
    engine.dispose()
    app = build_app(Settings(database_url=url))
    grant = GrantDraft("group", "team", "read", None, None)
    draft = ModelDraft("shared", "Shared", None, {}, {}, [grant], None, None)
    asyncio.run(app.registry.create_model(OWNER, draft))
    yield app, url
    app.close()


def read_times(app: App, caller: Principal, times: int) -> list[str]:
    """What each of `times` GetModel calls answered: the name, or not found."""

    async def read() -> list[str]:
        answers = []
        for _ in range(times):
            try:
                answers.append((await app.registry.get_model(caller, "shared")).name)
            except ModelNotFound:
                answers.append("not found")
        return answers

    return asyncio.run(read())


def test_a_lookup_asked_again_is_answered_from_what_was_kept(
    registry: tuple[App, str],
) -> None:
    app, _ = registry
    again_before = GET_READS_AGAIN._value.get()
    assert read_times(app, MEMBER, 4) == ["Shared"] * 4
    # Kept at its second asking (kept_reads.py): the third and fourth from it.
    assert GET_READS_AGAIN._value.get() - again_before == 2


def test_what_was_kept_for_one_caller_never_answers_another(
    registry: tuple[App, str],
) -> None:
    app, _ = registry
    assert read_times(app, MEMBER, 3) == ["Shared"] * 3
    assert read_times(app, OUTSIDER, 3) == ["not found"] * 3
    assert read_times(app, MEMBER, 1) == ["Shared"]


def test_any_commit_and_the_lookup_is_read_again(registry: tuple[App, str]) -> None:
    app, url = registry
    assert read_times(app, MEMBER, 3) == ["Shared"] * 3
    engine = create_engine(url)
    with engine.begin() as connection:  # another connection: the operator's, say
        connection.exec_driver_sql("DELETE FROM group_members WHERE user_id = 'member'")
    engine.dispose()
    assert read_times(app, MEMBER, 3) == ["not found"] * 3
