"""Before serving: pending migrations, then, on an empty database, the admin
user. Both are safe when several servers start at once."""

from __future__ import annotations

from .app import open_accounts
from .domain.accounts import IssuedKey
from .lifecycle import say
from .storage.migrations import upgrade


def prepare_database(database_url: str, admin_key: str | None) -> None:
    migrated = upgrade(database_url)
    if migrated.changed:
        say(f"Database migrated from {migrated.before or 'empty'} to {migrated.after}")
    with open_accounts(database_url) as accounts:
        issued = accounts.bootstrap_admin(admin_key)
    if issued is not None:
        _announce_admin_key(issued, chosen=admin_key is not None)


def _announce_admin_key(issued: IssuedKey, *, chosen: bool) -> None:
    if chosen:
        say("Created user 'admin' with the key from MODEL_REGISTRY_ADMIN_KEY")
        return
    say("Created user 'admin'. Its API key, shown this once (store it now):")
    say(f"  {issued.key}")
