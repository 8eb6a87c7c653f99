"""Alembic's environment: run by `upgrade` (and the other alembic commands)
with the connection it is given in config.attributes["connection"], inside
that connection's transaction."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

# Absolute: Alembic runs this file by path, not as part of the package.
from modelregistry_server.storage.tables import metadata  # type: ignore[import-not-found]


def run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things: batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None, "alembic needs sqlalchemy.url or a connection"
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as own:
        run(own)
    engine.dispose()
