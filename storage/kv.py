"""A tiny durable key-value store for facts that must survive a restart."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import utcnow
from storage.models import KeyValue
from storage.upsert import upsert


async def get_value(session: AsyncSession, key: str) -> str | None:
    row = await session.get(KeyValue, key)
    return row.value if row else None


async def set_value(session: AsyncSession, key: str, value: str) -> None:
    await upsert(
        session,
        KeyValue.__table__,  # type: ignore[arg-type]
        {"key": key, "value": value, "updated_at": utcnow()},
        ["key"],
        ["value", "updated_at"],
    )
