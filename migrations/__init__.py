"""Alembic migrations; `upgrade_database` applies the pending ones (at start-up and `migrate`).

Several instances may start at once on one PostgreSQL database: each upgrade holds a session
advisory lock (`MIGRATION_LOCK_KEY`) on the very connection that runs it, so one instance
migrates while the others wait, then find nothing left to do. SQLite needs no lock: one process
owns its file.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import create_engine

if TYPE_CHECKING:
    from alembic.config import Config


@contextlib.contextmanager
def _alembic_warnings_only() -> Iterator[None]:
    """Alembic's INFO lines ("setup plugin …" at import; "Context impl …", "Running upgrade …"
    at each upgrade) are noise at every start of the bot; its warnings and errors still show."""
    alembic_log = logging.getLogger("alembic")
    level = alembic_log.level
    alembic_log.setLevel(max(logging.WARNING, alembic_log.getEffectiveLevel()))
    try:
        yield
    finally:
        alembic_log.setLevel(level)


MIGRATIONS_DIR = Path(__file__).resolve().parent
# Any fixed 64-bit number, the same in every instance: "SMM_BOT" in ASCII.
MIGRATION_LOCK_KEY = 0x534D4D5F424F54

log = logging.getLogger(__name__)


def alembic_config(database_url: str) -> Config:
    with _alembic_warnings_only():
        from alembic.config import Config
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Read by env.py instead of settings, so tests can point at any database.
    config.attributes["database_url"] = database_url
    return config


@asynccontextmanager
async def migration_lock(connection: AsyncConnection) -> AsyncIterator[None]:
    """Hold the migrations' advisory lock on `connection` (PostgreSQL; nothing elsewhere).

    A session lock, not a transaction one: it outlives the commits in between and is released
    on the way out (or by the server, should the connection die first).
    """
    if connection.dialect.name != "postgresql":
        yield
        return
    await connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    await connection.commit()  # Alembic then runs its own transaction on this connection
    try:
        yield
    finally:
        try:
            if connection.in_transaction():
                await connection.rollback()
            await connection.execute(
                text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
            await connection.commit()
        except SQLAlchemyError as error:  # the connection is gone, and its lock with it
            log.warning("could not release the migration lock: %s", type(error).__name__)


def _upgrade_on(connection: Connection, config: Config, revision: str) -> None:
    config.attributes["connection"] = connection  # env.py migrates on it instead of its own
    with _alembic_warnings_only():
        from alembic import command

        command.upgrade(config, revision)


def script_heads() -> set[str]:
    """The head revisions of migrations/versions, from the `revision` and `down_revision` each
    script declares (what Alembic reads of them), without importing Alembic."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        declared = _declared(path)
        if isinstance(declared.get("revision"), str):
            revisions.add(declared["revision"])
            down = declared.get("down_revision")
            parents.update([down] if isinstance(down, str) else down or ())
    return revisions - parents


def _declared(path: Path) -> dict[str, Any]:
    """The literal values of a script's top-level `revision` and `down_revision`."""
    found: dict[str, Any] = {}
    for node in ast.parse(path.read_text(encoding="utf-8"), filename=str(path)).body:
        target: ast.expr
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
            found[target.id] = ast.literal_eval(value)
    return found


def _stored_revisions(connection: Connection) -> set[str]:
    if not inspect(connection).has_table("alembic_version"):
        return set()
    rows = connection.execute(text("SELECT version_num FROM alembic_version"))
    return {str(version) for (version,) in rows}


async def _at_head(connection: AsyncConnection) -> bool:
    heads = script_heads()
    stored = await connection.run_sync(_stored_revisions)
    await connection.rollback()  # the upgrade, if any, starts on a clean connection
    return bool(heads) and stored == heads


async def upgrade_database(database_url: str, revision: str = "head") -> None:
    """Apply pending migrations, one instance at a time.

    A database already at the scripts' head is left alone without importing Alembic (about
    11 MiB of a bot that has nothing to migrate, at nearly every start). One that is not, or
    whose revision the scripts do not know, goes to Alembic as before, which migrates it or
    says what is wrong."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            if revision == "head" and await _at_head(connection):
                return
            async with migration_lock(connection):
                await connection.run_sync(_upgrade_on, alembic_config(database_url), revision)
                await connection.commit()
    finally:
        await engine.dispose()


def upgrade_database_sync(database_url: str, revision: str = "head") -> None:
    """`upgrade_database` for callers without an event loop (the `migrate` command)."""
    asyncio.run(upgrade_database(database_url, revision))
