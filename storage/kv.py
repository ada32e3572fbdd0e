"""A tiny durable key-value store for facts that must survive a restart."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import KeyValue


async def get_value(session: AsyncSession, key: str) -> str | None:
    row = await session.get(KeyValue, key)
    return row.value if row else None
