"""Alembic migrations: the only way the schema is made, on every backend."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from modelregistry_server.app import open_accounts
from modelregistry_server.storage.migrations import head_revision, upgrade
from modelregistry_server.storage.tables import metadata

from support import MODEL_REGISTRY, Registry, query, start_registry

NewDatabase = Callable[[], str]


def schema_diff(url: str) -> list:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            return compare_metadata(context, metadata)
    finally:
        engine.dispose()


def names(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        found = set()
        for table in ("users", "api_keys", "models"):
            found.add(inspector.get_pk_constraint(table)["name"])
            found |= {fk["name"] for fk in inspector.get_foreign_keys(table)}
            found |= {uq["name"] for uq in inspector.get_unique_constraints(table)}
            found |= {ix["name"] for ix in inspector.get_indexes(table)}
        return found
    finally:
        engine.dispose()


def migrate(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MODEL_REGISTRY, "--database-url", url, "migrate"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_empty_database_to_head_matches_the_models(database_url_factory: NewDatabase):
    url = database_url_factory()
    result = migrate(url)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"migrated the database from empty to {head_revision()}\n"
    assert query(url, "SELECT version_num FROM alembic_version")[0][0] == head_revision()
    assert schema_diff(url) == []
    # the naming convention of tables.py, on every database
    expected = {
        "pk_users",
        "pk_api_keys",
        "fk_api_keys_user_id_users",
        "uq_api_keys_key_hash",
        "ix_api_keys_user_id",
        "pk_models",
        "fk_models_user_id_users",
        "ix_models_user_id",
    }
    found = names(url)
    if url.startswith("sqlite"):
        found.discard(None)  # SQLite does not report primary key names
        expected -= {"pk_users", "pk_api_keys", "pk_models"}
    assert expected <= found, found

    again = migrate(url)
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"the database is up to date (revision {head_revision()})\n"


def test_downgrade_to_nothing_and_back(database_url_factory: NewDatabase):
    from alembic import command

    from modelregistry_server.storage.migrations import _migration_engine, alembic_config

    url = database_url_factory()
    upgrade(url)
    engine = _migration_engine(url)
    try:
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "base")
        assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
    assert upgrade(url).after == head_revision()
    assert schema_diff(url) == []


def test_concurrent_migrations_apply_once(database_url_factory: NewDatabase):
    url = database_url_factory()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(migrate, [url] * 4))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    outputs = sorted(r.stdout for r in results)
    assert outputs.count(f"migrated the database from empty to {head_revision()}\n") == 1
    assert query(url, "SELECT version_num FROM alembic_version") == [(head_revision(),)]
    assert schema_diff(url) == []


def test_a_database_made_before_migrations_is_adopted(database_url_factory: NewDatabase):
    url = database_url_factory()
    upgrade(url, "0001")  # the schema metadata.create_all made before Alembic ...
    engine = sa.create_engine(url)
    with engine.begin() as connection:  # ... which had no alembic_version
        connection.execute(sa.text("DROP TABLE alembic_version"))
    engine.dispose()
    result = migrate(url)
    assert result.returncode == 0, result.stderr
    assert query(url, "SELECT version_num FROM alembic_version") == [(head_revision(),)]
    assert schema_diff(url) == []


def test_models_stored_before_grant_rows_keep_their_grants(database_url_factory: NewDatabase):
    """Revision 0003 moves grants out of the models row: they, the search
    words and the counts come from the models already stored."""
    url = database_url_factory()
    upgrade(url, "0002")
    grants = [
        {"access_type": "group", "access_id": "devs", "permission": "read"},
        {"access_type": "user", "access_id": "*", "permission": "write"},
    ]
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO users VALUES ('admin', 'admin', true, 1)"))
        for model_id, active, model_grants in (("gpt-helper", True, grants), ("old", False, [])):
            connection.execute(
                sa.text(
                    "INSERT INTO models (id, user_id, base_model_id, name, params, meta,"
                    " access_grants, is_active, created_at, updated_at) VALUES (:id, 'admin',"
                    " 'gpt-4', 'Code Helper', '{}', '{}', :grants, :active, 1, 1)"
                ),
                {"id": model_id, "grants": json.dumps(model_grants), "active": active},
            )
    engine.dispose()
    assert upgrade(url).after == head_revision()
    assert query(
        url,
        "SELECT model_id, position, access_type, access_id, permission FROM model_grants"
        " ORDER BY model_id, position",
    ) == [
        ("gpt-helper", 0, "group", "devs", "read"),
        ("gpt-helper", 1, "user", "*", "write"),
    ]
    assert query(
        url, "SELECT word FROM model_words WHERE model_id = 'gpt-helper' ORDER BY word"
    ) == [("4",), ("code",), ("gpt",), ("helper",)]
    assert sorted(query(url, "SELECT is_active, models FROM model_counts")) == [
        (False, 1),
        (True, 1),
    ]
    assert schema_diff(url) == []


def test_models_stored_before_tag_rows_get_their_tags(database_url_factory: NewDatabase):
    """Revision 0007 reads the tags of the models already stored from their
    meta, as the server reads them (each once whatever its case)."""
    url = database_url_factory()
    upgrade(url, "0006")
    tags = {"tags": [{"name": "Vision"}, "code", {"name": "VISION"}, {"x": 1}]}
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO users VALUES ('admin', 'admin', true, 1)"))
        for model_id, meta in (("tagged", tags), ("untagged", {"tags": "code"})):
            connection.execute(
                sa.text(
                    "INSERT INTO models (id, user_id, base_model_id, name, params, meta,"
                    " is_active, created_at, updated_at) VALUES (:id, 'admin', NULL, 'M',"
                    " '{}', :meta, true, 1, 1)"
                ),
                {"id": model_id, "meta": json.dumps(meta)},
            )
    engine.dispose()
    assert upgrade(url).after == head_revision()
    assert query(url, "SELECT tag, model_id, name FROM model_tags ORDER BY tag") == [
        ("code", "tagged", "code"),
        ("vision", "tagged", "Vision"),
    ]
    assert schema_diff(url) == []


def store_two_models(connection: sa.Connection, *, words_with_created_at: bool) -> list[str]:
    """The admin, and the models "older" (created at 100) and "newer" (200),
    each with the words its id and "orca"; their ids."""
    connection.execute(sa.text("INSERT INTO users VALUES ('admin', 'admin', true, 1)"))
    for model_id, created_at in (("older", 100), ("newer", 200)):
        connection.execute(
            sa.text(
                "INSERT INTO models (id, user_id, base_model_id, name, params, meta,"
                " is_active, created_at, updated_at) VALUES (:id, 'admin', NULL, 'Orca',"
                " '{}', '{}', true, :at, 300)"
            ),
            {"id": model_id, "at": created_at},
        )
        for word in (model_id, "orca"):
            if words_with_created_at:
                connection.execute(
                    sa.text("INSERT INTO model_words VALUES (:word, :id, :at)"),
                    {"word": word, "id": model_id, "at": created_at},
                )
            else:
                connection.execute(
                    sa.text("INSERT INTO model_words (word, model_id) VALUES (:word, :id)"),
                    {"word": word, "id": model_id},
                )
    return ["older", "newer"]


def test_words_stored_before_0008_get_their_models_created_at(database_url_factory: NewDatabase):
    """Revision 0008 copies each model's created_at into its words' rows."""
    url = database_url_factory()
    upgrade(url, "0007")
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        store_two_models(connection, words_with_created_at=False)
    engine.dispose()
    assert upgrade(url).after == head_revision()
    assert query(
        url, "SELECT word, model_id, created_at FROM model_words ORDER BY word, model_id"
    ) == [
        ("newer", "newer", 200),
        ("older", "older", 100),
        ("orca", "newer", 200),
        ("orca", "older", 100),
    ]
    assert schema_diff(url) == []


def test_0009_keeps_every_child_row_and_keys_words_by_creation_time(
    database_url_factory: NewDatabase,
):
    """Revision 0009 rebuilds model_words, model_tags and model_grants on
    SQLite as tables stored in their key's order, and keys model_words by
    (word, created_at, model_id) on both databases; no row changes."""
    url = database_url_factory()
    upgrade(url, "0008")
    children = {
        "model_words": "SELECT word, model_id, created_at FROM model_words ORDER BY 1, 2",
        "model_tags": "SELECT tag, model_id, name FROM model_tags ORDER BY 1, 2",
        "model_grants": "SELECT model_id, position, access_type, access_id, permission"
        " FROM model_grants ORDER BY 1, 2",
    }
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        for model_id in store_two_models(connection, words_with_created_at=True):
            connection.execute(
                sa.text("INSERT INTO model_tags VALUES ('sea', :id, 'Sea')"), {"id": model_id}
            )
            for position, grantee in enumerate(("team", "*")):
                connection.execute(
                    sa.text("INSERT INTO model_grants VALUES (:id, :at, 'user', :who, 'read')"),
                    {"id": model_id, "at": position, "who": grantee},
                )
    engine.dispose()
    before = {table: query(url, sql) for table, sql in children.items()}
    assert all(before.values())
    assert upgrade(url).after == head_revision()
    assert {table: query(url, sql) for table, sql in children.items()} == before
    assert schema_diff(url) == []
    engine = sa.create_engine(url)
    try:
        key = sa.inspect(engine).get_pk_constraint("model_words")["constrained_columns"]
        indexes = {ix["name"] for ix in sa.inspect(engine).get_indexes("model_words")}
    finally:
        engine.dispose()
    assert key == ["word", "created_at", "model_id"]
    assert indexes == {"ix_model_words_model_id_word"}
    if url.startswith("sqlite"):
        tables = query(
            url,
            "SELECT name, sql LIKE '%WITHOUT ROWID%' FROM sqlite_master WHERE type = 'table'"
            " AND name IN ('model_words', 'model_tags', 'model_grants') ORDER BY name",
        )
        assert tables == [("model_grants", 1), ("model_tags", 1), ("model_words", 1)]
    # And back: the rows again, in tables keyed as 0008 made them.
    from alembic import command

    from modelregistry_server.storage.migrations import _migration_engine, alembic_config

    engine = _migration_engine(url)
    try:
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0008")
        key = sa.inspect(engine).get_pk_constraint("model_words")["constrained_columns"]
    finally:
        engine.dispose()
    assert {table: query(url, sql) for table, sql in children.items()} == before
    assert key == ["word", "model_id"]


def test_two_servers_starting_on_an_empty_database_make_one_admin(
    database_url_factory: NewDatabase,
):
    url = database_url_factory()
    with ThreadPoolExecutor(2) as pool:
        starting = [pool.submit(start_registry, url, admin_key=None) for _ in range(2)]
        registries: list[Registry] = [future.result() for future in starting]
    try:
        announced = ["Created user 'admin'" in "".join(r.output) for r in registries]
        assert announced.count(True) == 1
    finally:
        assert [r.stop() for r in registries] == [0, 0]
    assert query(url, "SELECT id FROM users") == [("admin",)]
    assert len(query(url, "SELECT id FROM api_keys")) == 1


def test_losing_the_admin_race_is_not_an_error(database_url_factory: NewDatabase):
    """The exact interleaving: both servers saw no users, the other one
    inserted first."""
    url = database_url_factory()
    upgrade(url)
    with open_accounts(url) as first, open_accounts(url) as second:
        second._users.count = lambda: 0  # it looked before the first one wrote
        assert first.bootstrap_admin(None) is not None
        assert second.bootstrap_admin(None) is None
    assert len(query(url, "SELECT id FROM api_keys")) == 1
