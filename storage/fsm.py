"""aiogram FSM storage in the bot's database, so a half-filled order survives a restart."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import (
    BaseStorage,
    DefaultKeyBuilder,
    KeyBuilder,
    StateType,
    StorageKey,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.db import utcnow
from storage.models import FsmRecord
from storage.upsert import upsert

_TABLE = FsmRecord.__table__


class SqlStorage(BaseStorage):
    """One row per storage key: the state name and the data as JSON."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        key_builder: KeyBuilder | None = None,
    ) -> None:
        self._sessions = session_factory
        self._keys = key_builder or DefaultKeyBuilder(with_bot_id=True, with_destiny=True)

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        name = state.state if isinstance(state, State) else state
        await self._write(key, {"state": name})

    async def get_state(self, key: StorageKey) -> str | None:
        record = await self._read(key)
        return record.state if record else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._write(key, {"data": dict(data)})

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        record = await self._read(key)
        return dict(record.data) if record and record.data else {}

    async def close(self) -> None:
        """The engine belongs to the application, which disposes of it."""

    async def _read(self, key: StorageKey) -> FsmRecord | None:
        async with self._sessions() as session:
            result = await session.execute(
                select(FsmRecord).where(FsmRecord.key == self._keys.build(key))
            )
            return result.scalar_one_or_none()

    async def _write(self, key: StorageKey, change: dict[str, Any]) -> None:
        values: dict[str, Any] = {
            "key": self._keys.build(key),
            "state": None,
            "data": {},
            "updated_at": utcnow(),
        }
        values.update(change)
        async with self._sessions() as session, session.begin():
            await upsert(session, _TABLE, values, ["key"], [*change, "updated_at"])  # type: ignore[arg-type]
