"""INSERT … ON CONFLICT DO UPDATE for the two databases we run on (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert


def upsert_statement(
    dialect: str,
    table: Table,
    values: Mapping[str, Any],
    keys: Iterable[str],
    update: Iterable[str],
) -> Insert:
    module = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(table).values(**values)
    changes = {name: statement.excluded[name] for name in update}
    if not changes:
        result: Insert = statement.on_conflict_do_nothing(index_elements=list(keys))
    else:
        result = statement.on_conflict_do_update(index_elements=list(keys), set_=changes)
    return result


async def upsert(
    session: AsyncSession,
    table: Table,
    values: Mapping[str, Any],
    keys: Iterable[str],
    update: Iterable[str],
) -> None:
    """Insert a row, or update the `update` columns of the row with the same `keys`."""
    dialect = session.get_bind().dialect.name
    await session.execute(upsert_statement(dialect, table, values, keys, update))
