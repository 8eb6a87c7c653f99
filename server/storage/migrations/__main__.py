"""Developer tool: `python -m modelregistry_server.storage.migrations revision MESSAGE`
autogenerates a revision from the difference between tables.py and a scratch
SQLite database migrated to head."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command

from . import alembic_config, upgrade


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] != "revision":
        print(__doc__, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{Path(scratch) / 'scratch.db'}"
        upgrade(url)
        # Revisions are numbered 0001, 0002, ...: their order is readable.
        number = len(list((Path(__file__).parent / "versions").glob("[0-9]*.py"))) + 1
        command.revision(
            alembic_config(url=url),
            message=sys.argv[2],
            autogenerate=True,
            rev_id=f"{number:04d}",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
