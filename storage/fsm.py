"""aiogram FSM storage in the bot's database, so a half-filled order survives a restart."""

from __future__ import annotations

import json
from collections import OrderedDict
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
CACHED_KEYS = 50_000


class SqlStorage(BaseStorage):
    """One row per storage key: the state name and the data as JSON.

    With `cache=True` (one bot process owns the database, as with SQLite) the rows are also
    kept in memory: aiogram reads the state on every update, and those reads, and writes that
    change nothing (`state.clear()` with no state), then cost no database round trip. Writes
    always go to the database first, so a restart resumes where the user was.
    """

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        key_builder: KeyBuilder | None = None,
        *,
        cache: bool = False,
    ) -> None:
        self._sessions = session_factory
        self._keys = key_builder or DefaultKeyBuilder(with_bot_id=True, with_destiny=True)
        # Data is kept as JSON text: handing out a fresh dict per read is cheaper than a deep
        # copy, and no caller can change the cached value through a dict it was given.
        self._cache: OrderedDict[str, tuple[str | None, str]] | None = (
            OrderedDict() if cache else None
        )

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        name = state.state if isinstance(state, State) else state
        await self._write(key, state=name)

    async def get_state(self, key: StorageKey) -> str | None:
        return (await self._read(key))[0]

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._write(key, data=dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((await self._read(key))[1])
        return data

    async def close(self) -> None:
        """The engine belongs to the application, which disposes of it."""

    async def _read(self, key: StorageKey) -> tuple[str | None, str]:
        """The state and the data (as JSON text) of a key."""
        name = self._keys.build(key)
        if self._cache is not None and name in self._cache:
            self._cache.move_to_end(name)
            return self._cache[name]
        async with self._sessions() as session:
            result = await session.execute(select(FsmRecord).where(FsmRecord.key == name))
            record = result.scalar_one_or_none()
        row = (record.state, _dump(record.data or {})) if record else (None, _dump({}))
        self._remember(name, row)
        return row

    async def _write(self, key: StorageKey, **change: Any) -> None:
        name = self._keys.build(key)
        new_data = _dump(change["data"]) if "data" in change else None
        if self._cache is not None:
            state, data = await self._read(key)
            new = (change.get("state", state), new_data if new_data is not None else data)
            if new == (state, data):
                return  # nothing changes: no write
        values: dict[str, Any] = {"key": name, "state": None, "data": {}, "updated_at": utcnow()}
        values.update(change)
        async with self._sessions() as session, session.begin():
            await upsert(session, _TABLE, values, ["key"], [*change, "updated_at"])  # type: ignore[arg-type]
        if self._cache is not None:
            self._remember(name, new)

    def _remember(self, name: str, row: tuple[str | None, str]) -> None:
        if self._cache is None:
            return
        self._cache[name] = row
        self._cache.move_to_end(name)
        while len(self._cache) > CACHED_KEYS:
            self._cache.popitem(last=False)


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))
