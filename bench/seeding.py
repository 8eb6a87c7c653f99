"""The benchmark's stored models, written straight into the SQLite file as
the server's own writes would leave them: rows of `models`, their grants
(`model_grants`, in position order), their words (`model_words`, split by
the server's own `words_of`), their first versions (`model_versions`, with
`models.version_id` naming them) and the kept totals (`model_counts`), plus the
users, the reader's API key, groups and group members they refer to.

Models are numbered 0 .. total-1, and everything about model n follows
from n, so a model is the same whichever run or phase stores it:

  - created_at spreads the models over the time before the run, 30 s apart
    (1,000,000 models: about a year); the oldest is n = 0;
  - its name is "<Topic> <Role>", 100 topics and 10 roles picked by a hash
    of n, so each topic word is in about 1% of the names (SEARCH_WORD is one
    of them); its id is "<topic>-<role>-<n>" and its base model one of 8;
  - 1 in 20 is inactive.

The fixture, the database the "empty" reads run on, is FIXTURE models
spread evenly over 0 .. total-1. READER, a user (not an admin) in the
group READER_GROUP, may read READABLE of them and nothing else: a third
through a grant to READER_GROUP, a third through a grant to every user
(`user` / `*`), a third their own. The rest of the models, and all that
`seed_rest` adds, belong to the admin and other owners, with grants to
other users and groups; so READER reads the same few hundred models among
a thousand or a million, interleaved with the others in every order."""

from __future__ import annotations

import hashlib
import json
import queue
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from modelregistry_server.domain.access import EVERYONE
from modelregistry_server.domain.listing import words_of

ADMIN = "admin"
READER = "bench-reader"
READER_KEY = "mr-bench-reader-key-0123456789abcdefghijklmnopqrstuvwxyz"
READER_KEY_ID = "key_benchreader"
READER_GROUP = "bench-readers"
OWNERS = tuple(f"owner-{i}" for i in range(10))
TEAMS = tuple(f"team-{i:02d}" for i in range(20))
SHARED_GROUP = "developers"  # the group the bench's creates grant read to

FIXTURE = 1_000
READABLE_SHARES = 3  # of every 10 fixture models: group grant, `*` grant, owned
SECONDS_APART = 30

TOPICS = (
    "Accounting Aerospace Agronomy Algebra Anatomy Anthropology Archaeology Architecture"
    " Astronomy Auditing Banking Biochemistry Biology Botany Calculus Cardiology Carpentry"
    " Cartography Chemistry Chess Cinema Climate Compliance Cooking Cryptography Cycling"
    " Dentistry Dermatology Design Diplomacy Ecology Economics Electronics Embroidery"
    " Epidemiology Ethics Falconry Fashion Finance Fishing Folklore Forestry"
    " Gardening Genetics Geography Geology Geometry Glassblowing Grammar Haiku"
    " History Horology Hydrology Immunology Insurance Jazz Journalism Knitting Law"
    " Linguistics Logistics Marketing Masonry Meteorology Microbiology Mining Mycology"
    " Navigation Neurology Nutrition Oceanography Oncology Opera Optics Origami Painting"
    " Pediatrics Perfumery Pharmacy Philosophy Photography Physics Plumbing Poetry"
    " Pottery Psychology Radiology Robotics Rowing Sailing Sculpture Seismology Sommelier"
    " Statistics Surgery Taxation Tailoring Theology Topology Zoology"
).split()
ROLES = "Assistant Tutor Analyst Helper Expert Writer Coach Reviewer Planner Guide".split()
BASES = (
    "gpt-4o",
    "gpt-4o-mini",
    "llama-3.1-70b",
    "mistral-large",
    "claude-3-5-sonnet",
    "qwen2.5-72b",
    "gemma-2-27b",
    "deepseek-r1",
)
# The text search's query: a topic, so in about 1% of the names.
SEARCH_WORD = "sommelier"

PARAMS = {"temperature": 0.7, "max_tokens": 2000, "top_p": 1.0}
META = {
    "description": "benchmark",
    "capabilities": {"vision": True},
    "profile_image_url": "/static/favicon.png",
}
BATCH = 50_000  # models an executemany

assert len(TOPICS) == 100 and len(set(TOPICS)) == 100
# The query matches by prefix: no other word of a name or base model may start with it.
assert [w for w in words_of(*TOPICS, *ROLES, *BASES) if w.startswith(SEARCH_WORD)] == [SEARCH_WORD]


def _json(value: object) -> str:
    # As the server stores JSON (storage/database.py).
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


PARAMS_JSON = _json(PARAMS)
META_JSON = _json(META)


def _mix(n: int) -> int:
    """n's bits mixed (MurmurHash3's finalizer): neighbours and evenly
    spread numbers alike get unrelated topics, owners and grants."""
    n &= 0xFFFFFFFF
    n = ((n ^ (n >> 16)) * 0x85EBCA6B) & 0xFFFFFFFF
    n = ((n ^ (n >> 13)) * 0xC2B2AE35) & 0xFFFFFFFF
    return n ^ (n >> 16)


def model_id(n: int) -> str:
    h = _mix(n)
    return f"{TOPICS[h % 100].lower()}-{ROLES[h // 100 % 10].lower()}-{n:07d}"


def fixture_numbers(total: int) -> list[int]:
    """The fixture's models: FIXTURE of them (all when total is smaller),
    evenly spread over 0 .. total-1."""
    count = min(FIXTURE, total)
    return [k * total // count for k in range(count)]


def readable(total: int) -> dict[str, list[str]]:
    """The ids READER may read, by how: "group", "everyone", "own"."""
    found: dict[str, list[str]] = {"group": [], "everyone": [], "own": []}
    for k, n in enumerate(fixture_numbers(total)):
        how = _reader_share(k)
        if how is not None:
            found[how].append(model_id(n))
    return found


def _reader_share(k: int) -> str | None:
    return ("group", "everyone", "own", None)[min(k % 10, READABLE_SHARES)]


def version_id(n: int) -> str:
    """Model n's first version: an id of the server's shape, made from n."""
    return str(uuid.UUID(int=n + 1))


def _version(row: tuple, grants: list[tuple[str, str, str]]) -> tuple:
    """The model_versions row of a model row made by _model: its first."""
    snapshot = {
        "name": row[3],
        "base_model_id": row[2],
        "params": PARAMS,
        "meta": META,
        "is_active": row[6],
        "access_grants": [
            {"access_type": t, "access_id": i, "permission": p} for t, i, p in grants
        ],
    }
    # id, model_id, number, parent_id, user_id, commit_message, created_at, snapshot
    return (row[9], row[0], 1, None, row[1], None, row[7], _json(snapshot))


def _model(n: int, reader_share: str | None, oldest: int) -> tuple[tuple, list[tuple]]:
    """Model n's row and its grant rows (without model ids)."""
    h = _mix(n)
    topic, role = TOPICS[h % 100], ROLES[h // 100 % 10]
    owner = (ADMIN, *OWNERS)[h // 1000 % 11]
    team = TEAMS[h // 11000 % 20]
    grants: list[tuple[str, str, str]]
    match reader_share:
        case "group":
            owner = OWNERS[h // 1000 % 10]
            permission = "write" if h // 200 % 5 == 0 else "read"
            grants = [("group", team, "read"), ("group", READER_GROUP, permission)]
        case "everyone":
            owner = OWNERS[h // 1000 % 10]
            grants = [("user", EVERYONE, "read")]
        case "own":
            owner = READER
            grants = [("group", team, "read")] if h % 2 else []
        case _:
            grants = [
                [("group", team, "read")],
                [("user", OWNERS[h // 7 % 10], "read"), ("group", SHARED_GROUP, "write")],
                [],
                [("group", SHARED_GROUP, "read")],
            ][h // 300 % 4]
    created = oldest + n * SECONDS_APART
    row = (
        model_id(n),
        owner,
        BASES[h // 20 % 8],
        f"{topic} {role}",
        PARAMS_JSON,
        META_JSON,
        h // 40 % 20 != 0,  # 1 in 20 inactive
        created,
        created,
        version_id(n),
    )
    return row, grants


def seed_people(db: sqlite3.Connection, now: int) -> None:
    """Users, the reader's key, groups and members; kept if already there."""
    with db:
        db.executemany(
            "INSERT OR IGNORE INTO users (id, role, can_create_models, created_at)"
            " VALUES (?, 'user', ?, ?)",
            [(READER, False, now), *((owner, True, now) for owner in OWNERS)],
        )
        db.execute(
            "INSERT OR IGNORE INTO api_keys (id, user_id, key_hash, created_at)"
            " VALUES (?, ?, ?, ?)",
            (READER_KEY_ID, READER, hashlib.sha256(READER_KEY.encode()).hexdigest(), now),
        )
        db.executemany(
            "INSERT OR IGNORE INTO groups (id, name, created_at) VALUES (?, ?, ?)",
            [(g, g.replace("-", " ").title(), now) for g in (READER_GROUP, SHARED_GROUP, *TEAMS)],
        )
        members = [(READER_GROUP, READER)]
        members += [(SHARED_GROUP, owner) for owner in OWNERS]
        members += [(team, OWNERS[i % 10]) for i, team in enumerate(TEAMS)]
        db.executemany(
            "INSERT OR IGNORE INTO group_members (group_id, user_id) VALUES (?, ?)", members
        )


def seed_fixture(db: sqlite3.Connection, total: int, now: int) -> int:
    """The fixture's models (fixture_numbers(total)); how many were stored."""
    numbers = fixture_numbers(total)
    shares = {n: _reader_share(k) for k, n in enumerate(numbers)}
    return _store(db, numbers, shares, oldest=now - total * SECONDS_APART)


def seed_rest(db: sqlite3.Connection, total: int, now: int, count: int) -> int:
    """`count` more models: those of 0 .. total-1 that are not the fixture's,
    oldest first (`now` as given to seed_fixture). None is READER's to read."""
    fixture = set(fixture_numbers(total))
    numbers = islice((n for n in range(total) if n not in fixture), max(count, 0))
    return _store(db, numbers, {}, oldest=now - total * SECONDS_APART, rebuild_indexes=True)


def _store(
    db: sqlite3.Connection,
    numbers: Iterable[int],
    shares: dict[int, str | None],
    oldest: int,
    *,
    rebuild_indexes: bool = False,
) -> int:
    """Models `numbers`, whole (rows, grants, words, counts), in one
    transaction. With rebuild_indexes, the tables' secondary indexes are
    dropped first and made again at the end, from their own definitions,
    inside the same transaction: building an index from sorted rows is
    several times faster than growing it a row at a time. Batches are made
    on a thread while the previous one is inserted (sqlite3 lets go of the
    GIL while SQLite works)."""
    db.isolation_level = None  # transactions as written below
    db.execute("PRAGMA synchronous=OFF")  # a benchmark's scratch file: no fsyncs
    db.execute("PRAGMA cache_size=-524288")  # 512 MiB: the indexes stay in memory
    batches: queue.Queue[_Batch | BaseException | None] = queue.Queue(maxsize=2)

    def make() -> None:
        try:
            for chunk in _chunks(iter(numbers), BATCH):
                batches.put(_batch(chunk, shares, oldest))
            batches.put(None)
        except BaseException as error:  # handed to the inserting thread
            batches.put(error)

    threading.Thread(target=make, daemon=True).start()
    stored = 0
    db.execute("BEGIN IMMEDIATE")
    try:
        indexes = _secondary_indexes(db) if rebuild_indexes else []
        for name, _ in indexes:
            db.execute(f'DROP INDEX "{name}"')
        while (batch := batches.get()) is not None:
            if isinstance(batch, BaseException):
                raise batch
            db.executemany(
                "INSERT INTO models (id, user_id, base_model_id, name, params, meta,"
                " is_active, created_at, updated_at, version_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                batch.models,
            )
            db.executemany(
                "INSERT INTO model_versions (id, model_id, number, parent_id, user_id,"
                " commit_message, created_at, snapshot) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                batch.versions,
            )
            db.executemany(
                "INSERT INTO model_grants (model_id, position, access_type, access_id,"
                " permission) VALUES (?, ?, ?, ?, ?)",
                batch.grants,
            )
            db.executemany(
                "INSERT INTO model_words (word, model_id, created_at) VALUES (?, ?, ?)",
                batch.words,
            )
            for is_active, delta in batch.counts.items():
                changed = db.execute(
                    "UPDATE model_counts SET models = models + ? WHERE is_active = ?",
                    (delta, is_active),
                ).rowcount
                if changed != 1:
                    raise RuntimeError(f"model_counts has no row for is_active={is_active}")
            stored += len(batch.models)
        for _, definition in indexes:
            db.execute(definition)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    settle(db)
    return stored


def settle(db: sqlite3.Connection) -> None:
    """The seeding's pages into the database file and onto the disk now,
    outside the timing: else the server's first write after seeding copies
    the whole seeding (gigabytes at 1,000,000) from the write-ahead log, and
    the disk writes it back while timed runs fsync their commits. With
    synchronous=FULL the checkpoint syncs the database file."""
    db.execute("PRAGMA synchronous=FULL")
    for _ in range(60):
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if not busy:
            return
        time.sleep(0.5)  # a reader of the server's still holds an old snapshot
    raise RuntimeError("the seeding's write-ahead log could not be checkpointed")


@dataclass
class _Batch:
    models: list[tuple[Any, ...]]
    grants: list[tuple[Any, ...]]
    words: list[tuple[str, str, int]]  # (word, model id, created_at), in the index's order
    counts: Counter[bool]
    versions: list[tuple[Any, ...]]


def _batch(numbers: list[int], shares: dict[int, str | None], oldest: int) -> _Batch:
    batch = _Batch([], [], [], Counter(), [])
    models_of: dict[str, list[tuple[int, str]]] = {}  # word -> (created_at, model id)
    for n in numbers:
        row, grants = _model(n, shares.get(n), oldest)
        batch.models.append(row)
        batch.versions.append(_version(row, grants))
        batch.counts[row[6]] += 1
        batch.grants += [(row[0], position, *grant) for position, grant in enumerate(grants)]
        for word in words_of(row[0], row[3], row[2]):
            models_of.setdefault(word, []).append((row[7], row[0]))
    # In model_words' key order (word, created_at, model_id): inserts land next to each other.
    batch.words = [
        (word, model_id, at)
        for word in sorted(models_of)
        for at, model_id in sorted(models_of[word])
    ]
    return batch


def _secondary_indexes(db: sqlite3.Connection) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of the model tables' own indexes (not
    those of their primary keys, which cannot be dropped)."""
    return db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        " AND tbl_name IN ('models', 'model_grants', 'model_words', 'model_versions')"
        " ORDER BY name"
    ).fetchall()


def _chunks(numbers: Iterator[int], size: int) -> Iterator[list[int]]:
    while chunk := list(islice(numbers, size)):
        yield chunk


def check_counts(db: sqlite3.Connection) -> dict[bool, int]:
    """The models stored per is_active; RuntimeError unless model_counts
    holds the same totals."""
    actual = dict.fromkeys((True, False), 0)
    for is_active, count in db.execute("SELECT is_active, count(*) FROM models GROUP BY 1"):
        actual[bool(is_active)] = count
    kept = {bool(a): c for a, c in db.execute("SELECT is_active, models FROM model_counts")}
    if kept != actual:
        raise RuntimeError(f"model_counts holds {kept}, the models are {actual}")
    return actual


def stored(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT coalesce(sum(models), 0) FROM model_counts").fetchone()[0])
