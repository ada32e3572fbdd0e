"""Alembic environment: the caller's connection (`upgrade_database`), or an async engine of its
own with the URL from the caller or from the bot's settings (the `alembic` command line)."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from migrations import migration_lock
from storage.db import create_engine
from storage.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _database_url() -> str:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if url:
        return str(url)
    import os

    from bot.config import DEFAULT_DATABASE_URL

    return os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = create_engine(_database_url())
    try:
        async with engine.connect() as connection, migration_lock(connection):
            await connection.run_sync(_configure)
            await connection.commit()
    finally:
        await engine.dispose()


def _run_offline() -> None:
    context.configure(
        url=_database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
elif isinstance(shared := config.attributes.get("connection"), Connection):
    # `upgrade_database`: its connection already holds the migration lock.
    _configure(shared)
else:
    # The `alembic` command line: a connection of our own, locked the same way.
    asyncio.run(_run_online())
