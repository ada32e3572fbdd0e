"""Alembic migrations; `upgrade_database` applies the pending ones (at start-up and `migrate`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Read by env.py instead of settings, so tests can point at any database.
    config.attributes["database_url"] = database_url
    return config


def upgrade_database_sync(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


async def upgrade_database(database_url: str, revision: str = "head") -> None:
    """Apply pending migrations; env.py runs its own event loop, hence the thread."""
    await asyncio.to_thread(upgrade_database_sync, database_url, revision)
