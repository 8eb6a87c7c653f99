"""The schema.

A model's access grants are rows of model_grants, in the order sent, so that
"the models shared with me" is an index lookup by grantee. model_words is the
text search's inverted index (each word of a model's id, name and
base_model_id, as domain/listing.py splits text), model_versions every
state each model has been in, and model_counts keeps how
many models are active and inactive, so totals over every model cost no scan.
Text that is sorted or searched by range is compared as bytes (collation "C"
on PostgreSQL, SQLite's default), so both databases order alike."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    literal_column,
)


def _bytewise(length: int | None = None) -> Text | String:
    """Text ordered by its bytes on every database."""
    plain = Text() if length is None else String(length)
    collated = Text(collation="C") if length is None else String(length, collation="C")
    return plain.with_variant(collated, "postgresql")


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
    Column("id", _bytewise(256), primary_key=True),
    Column("user_id", String(256), ForeignKey("users.id"), nullable=False),
    Column("base_model_id", String(256), nullable=True),
    Column("name", _bytewise(), nullable=False),
    Column("params", JSON, nullable=False),
    Column("meta", JSON, nullable=False),
    Column("is_active", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("commit_message", Text, nullable=True),
    # The model_versions row this state is (null only in rows older than
    # versions, until migration 0004 gave each its first version).
    Column("version_id", String(36), nullable=True),
    # The orders ListModels pages by (keyset: sort value, then id); names by
    # NAME_KEY (below).
    Index("ix_models_created_at_id", "created_at", "id"),
    Index("ix_models_updated_at_id", "updated_at", "id"),
    # Pages found by id (a search's matches, a reader's grants) read their
    # sort keys and versions from this index, not from each model's row.
    Index("ix_models_id_keys", "id", "created_at", "updated_at", "version_id"),
    # A user's models (a reader's own, an owner's list): their ids from the index alone.
    Index("ix_models_user_id", "user_id", "id"),
)

# Names sort by their first 256 characters: a B-tree entry on PostgreSQL holds
# at most about 2.7 kB, and a name has no length limit.
NAME_KEY = func.substr(models.c.name, literal_column("1"), literal_column("256"))
Index("ix_models_name_id", NAME_KEY, models.c.id)

model_grants = Table(
    "model_grants",
    metadata,
    Column(
        "model_id", _bytewise(256), ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("position", Integer, primary_key=True),  # order as sent
    Column("access_type", String(16), nullable=False),
    Column("access_id", String(256), nullable=False),
    Column("permission", String(8), nullable=False),
    # "Which models does this grantee have a grant on?"
    Index("ix_model_grants_grantee", "access_type", "access_id", "model_id"),
    # SQLite: the rows are stored in their key's B-tree (migration 0009).
    sqlite_with_rowid=False,
)

model_words = Table(
    "model_words",
    metadata,
    Column("word", _bytewise(256), primary_key=True),  # prefix search: a range of this key
    # The model's (never changes): one word's models, newest first, are a
    # range of the key, read without reading each model.
    Column("created_at", BigInteger, primary_key=True),
    Column(
        "model_id", _bytewise(256), ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    ),
    # A model's words: to replace them, and to check one has a word (covering).
    Index("ix_model_words_model_id_word", "model_id", "word"),
    # SQLite: the rows are stored in their key's B-tree (migration 0009).
    sqlite_with_rowid=False,
)

# A model's tags (meta.tags): `tag` is the key they are matched by
# (domain.listing.tag_key), `name` the tag as first written.
model_tags = Table(
    "model_tags",
    metadata,
    Column("tag", _bytewise(256), primary_key=True),  # "which models have this tag?"
    Column(
        "model_id", _bytewise(256), ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("name", String(256), nullable=False),
    # A model's tags: to replace them, and to check one has a tag (covering).
    Index("ix_model_tags_model_id_tag", "model_id", "tag"),
    # SQLite: the rows are stored in their key's B-tree (migration 0009).
    sqlite_with_rowid=False,
)

# Every state a model has been in, newest with the highest number. A version
# is written in the transaction that writes the model, and never changed;
# deleting the model deletes its versions.
model_versions = Table(
    "model_versions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("model_id", _bytewise(256), ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("number", BigInteger, nullable=False),  # 1, 2, ... per model
    Column("parent_id", String(36), nullable=True),
    Column("user_id", String(256), nullable=False),  # who wrote it
    Column("commit_message", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    # name, base_model_id, params, meta, is_active, access_grants
    Column("snapshot", JSON, nullable=False),
    # History newest first, and the next number: a range of this key.
    Index("ix_model_versions_model_id_number", "model_id", "number", unique=True),
)

model_counts = Table(
    "model_counts",
    metadata,
    Column("is_active", Boolean, primary_key=True),
    Column("models", BigInteger, nullable=False),
)

groups = Table(
    "groups",
    metadata,
    Column("id", String(256), primary_key=True),
    Column("name", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

group_members = Table(
    "group_members",
    metadata,
    Column("group_id", String(256), ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", String(256), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_group_members_user_id", "user_id", "group_id"),  # "my groups"
)
