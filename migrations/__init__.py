"""Alembic migrations; `upgrade_database` applies the pending ones (at start-up and `migrate`).

Alembic is imported only inside `_alembic_warnings_only()`: importing it logs a "setup plugin …"
line per autogenerate plugin at INFO, and an upgrade adds "Context impl …", "Will assume … DDL"
and "Running upgrade …". At every start of the bot that is noise; its warnings and errors stay.
(The `alembic` command line configures its own logging from alembic.ini and is unaffected.)
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent

_alembic_log = logging.getLogger("alembic")
_quiet_lock = threading.Lock()
_quiet_depth = 0
_saved_level = logging.NOTSET


@contextmanager
def _alembic_warnings_only() -> Iterator[None]:
    """The `alembic` logger at WARNING (or above) inside; counted, so that upgrades in several
    threads at once give it back the level it had before the first one."""
    global _quiet_depth, _saved_level
    with _quiet_lock:
        if _quiet_depth == 0:
            _saved_level = _alembic_log.level
            _alembic_log.setLevel(max(logging.WARNING, _alembic_log.getEffectiveLevel()))
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                _alembic_log.setLevel(_saved_level)


def alembic_config(database_url: str) -> Config:
    with _alembic_warnings_only():
        from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Read by env.py instead of settings, so tests can point at any database.
    config.attributes["database_url"] = database_url
    return config


def upgrade_database_sync(database_url: str, revision: str = "head") -> None:
    with _alembic_warnings_only():
        from alembic import command

        command.upgrade(alembic_config(database_url), revision)


async def upgrade_database(database_url: str, revision: str = "head") -> None:
    """Apply pending migrations; env.py runs its own event loop, hence the thread."""
    await asyncio.to_thread(upgrade_database_sync, database_url, revision)
