"""INSERT … ON CONFLICT for the two databases we run on (SQLite and PostgreSQL).

The statements carry no values (those come as parameters at execution), so each shape is
built once: building one, with its `excluded` columns, cost more than running it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert


@lru_cache(maxsize=128)
def _statement(
    dialect: str, table: Table, keys: tuple[str, ...], update: tuple[str, ...]
) -> Insert:
    # Imported on first use: the PostgreSQL dialect package (all its drivers) is 4 MiB that a
    # bot on SQLite never needs.
    package = "postgresql" if dialect == "postgresql" else "sqlite"
    module = importlib.import_module(f"sqlalchemy.dialects.{package}")
    statement: Any = module.insert(table)  # either dialect's Insert, with on_conflict_*
    if not update:
        result: Insert = statement.on_conflict_do_nothing(index_elements=list(keys))
    else:
        changes = {name: statement.excluded[name] for name in update}
        result = statement.on_conflict_do_update(index_elements=list(keys), set_=changes)
    return result


def upsert_statement(
    dialect: str, table: Table, keys: Iterable[str], update: Iterable[str]
) -> Insert:
    """The statement for `session.execute(statement, values)`: insert, or on a conflict of
    `keys` update the `update` columns (nothing when empty)."""
    return _statement(dialect, table, tuple(keys), tuple(update))


async def upsert(
    session: AsyncSession,
    table: Table,
    values: Mapping[str, Any],
    keys: Iterable[str],
    update: Iterable[str],
) -> None:
    """Insert a row, or update the `update` columns of the row with the same `keys`."""
    dialect = session.get_bind().dialect.name
    await session.execute(upsert_statement(dialect, table, keys, update), dict(values))
