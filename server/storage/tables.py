"""The schema. Access grants are a JSON column of the model row: they are
always written and read with their model, in the order sent, so one INSERT
stores a model whole and no join is needed to return it."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    MetaData,
    String,
    Table,
    Text,
)

# Named constraints, so that migrations and error messages are stable on
# every database.
metadata = MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ix": "ix_%(table_name)s_%(column_0_name)s",
    }
)

users = Table(
    "users",
    metadata,
    Column("id", String(256), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("can_create_models", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(256), ForeignKey("users.id"), nullable=False, index=True),
    # SHA-256 of the key, hex. Keys are 256-bit random strings, so a fast hash
    # is enough: there is nothing to brute-force.
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
)

models = Table(
    "models",
    metadata,
    Column("id", String(256), primary_key=True),
    Column("user_id", String(256), ForeignKey("users.id"), nullable=False, index=True),
    Column("base_model_id", String(256), nullable=True),
    Column("name", Text, nullable=False),
    Column("params", JSON, nullable=False),
    Column("meta", JSON, nullable=False),
    Column("access_grants", JSON, nullable=False),
    Column("is_active", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("commit_message", Text, nullable=True),
)
