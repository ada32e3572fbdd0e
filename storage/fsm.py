"""aiogram FSM storage in the bot's database, so a half-filled order survives a restart."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol, cast

import orjson
from aiogram.fsm.state import State
from aiogram.fsm.storage.base import (
    BaseEventIsolation,
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
from storage.upsert import upsert_statement

log = logging.getLogger(__name__)

_TABLE = FsmRecord.__table__
CACHED_KEYS = 50_000
Row = tuple[str | None, str]  # the state and the data as JSON text
Record = tuple[str | None, dict[str, Any]]  # the state and the data
_EMPTY: Row = (None, "{}")
_ROW = select(_TABLE.c.state, _TABLE.c.data)
_ALL_ROWS = select(_TABLE.c.key, _TABLE.c.state, _TABLE.c.data).order_by(
    _TABLE.c.updated_at.desc()
)


class SqlStorage(BaseStorage):
    """One row per storage key: the state name and the data as JSON.

    With `cache=True` (one bot process owns the database, as with SQLite) the rows are also
    kept in memory: aiogram reads the state on every update, and those reads, and writes that
    change nothing (`state.clear()` with no state), then cost no database round trip.

    With `write_behind` seconds as well, a change reaches the database at most that long after
    it was made, together with every other key changed meanwhile, in one transaction and one
    statement, and at `close()`; without it every change is written before the call returns. A
    conversation's step is the one thing a crash may then lose (the user sends it again): the
    orders, drafts, ledger and outbox never pass through here.
    """

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        key_builder: KeyBuilder | None = None,
        *,
        cache: bool = False,
        write_behind: float | None = None,
    ) -> None:
        if write_behind is not None and not cache:
            raise ValueError("writing behind needs the cache: reads must see pending writes")
        self._sessions = session_factory
        self._keys = key_builder or DefaultKeyBuilder(with_bot_id=True, with_destiny=True)
        # Data is kept as JSON text: handing out a fresh dict per read is cheaper than a deep
        # copy, and no caller can change the cached value through a dict it was given.
        self._cache: OrderedDict[str, Row] | None = OrderedDict() if cache else None
        self._write_behind = write_behind
        self._whole: bool | None = None  # the cache holds every stored row (None: not loaded)
        self._load_lock = asyncio.Lock()
        self._pending: dict[str, Row] = {}  # written here, not yet in the database
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: asyncio.Task[None] | None = None

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        name = state.state if isinstance(state, State) else state
        await self._write(key, state=name)

    async def get_state(self, key: StorageKey) -> str | None:
        return (await self._read(key))[0]

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._write(key, data=dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        data: dict[str, Any] = orjson.loads((await self._read(key))[1])
        return data

    async def get_record(self, key: StorageKey) -> Record:
        state, data = await self._read(key)
        return state, orjson.loads(data)

    async def set_record(self, key: StorageKey, changes: Mapping[str, Any]) -> None:
        await self._write(key, **changes)

    async def close(self) -> None:
        """Write what is pending. The engine belongs to the application, which disposes of it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flushing is not None:
            await self._flushing
        await self.flush()

    async def flush(self) -> None:
        """Every pending change, in one transaction; kept pending (and tried again on the next
        change or at close) when the database refuses."""
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        try:
            await self._store(batch)
        except Exception:
            log.exception("could not write %d conversation states; trying again later", len(batch))
            # What changed since stays the newer value.
            self._pending = {**batch, **self._pending}

    async def _read(self, key: StorageKey) -> Row:
        name = self._keys.build(key)
        if name in self._pending:
            return self._pending[name]
        if self._cache is not None:
            if self._whole is None:
                await self._load_all()
            if name in self._cache:
                self._cache.move_to_end(name)
                return self._cache[name]
            if self._whole:
                return _EMPTY  # every stored key is in the cache: this one has no row
        async with self._sessions() as session:
            result = await session.execute(_ROW.where(_TABLE.c.key == name))
            record = result.one_or_none()
        row = (record.state, _dump(record.data or {})) if record else _EMPTY
        self._remember(name, row)
        return row

    async def _load_all(self) -> None:
        """The cache starts with every stored row when they fit (the usual case): a member's
        first update then reads nothing either."""
        async with self._load_lock:
            if self._whole is not None:
                return
            async with self._sessions() as session:
                result = await session.execute(_ALL_ROWS.limit(CACHED_KEYS + 1))
                rows = result.all()
            assert self._cache is not None
            for record in reversed(rows[:CACHED_KEYS]):  # the newest last: kept longest
                self._cache.setdefault(record.key, (record.state, _dump(record.data or {})))
            self._whole = len(rows) <= CACHED_KEYS

    async def _write(self, key: StorageKey, **change: Any) -> None:
        name = self._keys.build(key)
        new_data = _dump(change["data"]) if "data" in change else None
        if self._cache is None:
            await self._store_change(name, change)
            return
        state, data = old = await self._read(key)
        new = (change.get("state", state), new_data if new_data is not None else data)
        if new == old:
            return  # nothing changes: no write
        if self._write_behind is None:
            await self._store_change(name, change)
        else:
            self._pending[name] = new
            self._schedule_flush()
        self._remember(name, new)

    async def _store_change(self, name: str, change: dict[str, Any]) -> None:
        """One key's changed columns, now."""
        values: dict[str, Any] = {"key": name, "state": None, "data": {}, "updated_at": utcnow()}
        values.update(change)
        async with self._sessions.begin() as session:
            dialect = session.get_bind().dialect.name
            statement = upsert_statement(dialect, _TABLE, ["key"], [*change, "updated_at"])  # type: ignore[arg-type]
            await session.execute(statement, values)

    async def _store(self, rows: Mapping[str, Row]) -> None:
        """Whole rows for many keys: one statement, executed for each."""
        now = utcnow()
        values = [
            {"key": name, "state": state, "data": orjson.loads(data), "updated_at": now}
            for name, (state, data) in rows.items()
        ]
        async with self._sessions.begin() as session:
            dialect = session.get_bind().dialect.name
            statement = upsert_statement(dialect, _TABLE, ["key"], ["state", "data", "updated_at"])  # type: ignore[arg-type]
            await session.execute(statement, values)

    def _schedule_flush(self) -> None:
        if self._timer is not None or self._write_behind is None:
            return
        self._timer = asyncio.get_running_loop().call_later(self._write_behind, self._start_flush)

    def _start_flush(self) -> None:
        self._timer = None
        if self._flushing is not None:  # the last one still runs: it reschedules when done
            return
        self._flushing = asyncio.ensure_future(self.flush())
        self._flushing.add_done_callback(self._flushed)

    def _flushed(self, _task: asyncio.Task[None]) -> None:
        self._flushing = None
        if self._pending:  # changed meanwhile, or refused: within the next interval
            self._schedule_flush()

    def _remember(self, name: str, row: Row) -> None:
        if self._cache is None:
            return
        self._cache[name] = row
        self._cache.move_to_end(name)
        while len(self._cache) > CACHED_KEYS:
            self._cache.popitem(last=False)
            self._whole = False  # a key not in the cache may have a row now


def _dump(data: dict[str, Any]) -> str:
    # orjson: the same compact, key-sorted text as json.dumps, read and written on most updates.
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()


class Records(Protocol):
    """A storage that reads a key's state and data together and writes them together."""

    async def get_record(self, key: StorageKey) -> Record: ...

    async def set_record(self, key: StorageKey, changes: Mapping[str, Any]) -> None:
        """Write the "state" and/or the "data" in `changes`."""

    async def close(self) -> None: ...


class LockedRecords(Records, Protocol):
    """Records with their own lock per key that reads the record as it is taken and writes
    the changes as it is released (Redis: one round trip each)."""

    def hold(self, key: StorageKey) -> AbstractAsyncContextManager[Held]: ...


class Held:
    """One key's state and data while an update holds its lock: what the handlers see, and
    what they changed (written when the lock is released)."""

    __slots__ = ("changes", "data", "state")

    def __init__(self, state: str | None, data: dict[str, Any]) -> None:
        self.state = state
        self.data = _dump(data)  # as text: every read hands out a fresh dict
        self.changes: dict[str, Any] = {}


class OncePerUpdate(BaseStorage):
    """A shared storage (Redis, or a database several instances write) read once and written
    once per update: the handlers' many reads and writes of one conversation meet in memory.

    It works with its `isolation()`, the dispatcher's lock per key, which every instance takes
    before it touches a key: the key's state and data are read as the update begins (or when it
    first asks) and written back, if they changed, before the lock is released, so the next
    update of the member, on any instance, sees them. A key no update holds (none in our
    handlers) is read and written straight through.
    """

    def __init__(self, inner: Records) -> None:
        self._inner = inner
        self._held: dict[StorageKey, Held | None] = {}  # None: not read yet

    @property
    def inner(self) -> Records:
        return self._inner

    def isolation(self, inner: BaseEventIsolation) -> BaseEventIsolation:
        """The lock per key: `inner`, or the storage's own when it has one."""
        if hasattr(self._inner, "hold"):
            return _HoldingIsolation(cast(LockedRecords, self._inner), self)
        return _WritingBackIsolation(inner, self)

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        name = state.state if isinstance(state, State) else state
        entry = await self._entry(key)
        if entry is None:
            await self._inner.set_record(key, {"state": name})
        elif name != entry.state:
            entry.state = entry.changes["state"] = name

    async def get_state(self, key: StorageKey) -> str | None:
        entry = await self._entry(key)
        return (await self._inner.get_record(key))[0] if entry is None else entry.state

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        entry = await self._entry(key)
        if entry is None:
            await self._inner.set_record(key, {"data": dict(data)})
            return
        text = _dump(dict(data))
        if text != entry.data:
            entry.data = text
            entry.changes["data"] = orjson.loads(text)

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        entry = await self._entry(key)
        if entry is None:
            return (await self._inner.get_record(key))[1]
        data: dict[str, Any] = orjson.loads(entry.data)
        return data

    async def close(self) -> None:
        await self._inner.close()

    def take(self, key: StorageKey, held: Held | None = None) -> None:
        """An update holds the key now (`held`: its record, already read)."""
        self._held[key] = held

    def give_back(self, key: StorageKey) -> dict[str, Any]:
        """The update is over: what it changed, to be written before the lock goes."""
        held = self._held.pop(key, None)
        return held.changes if held is not None else {}

    async def _entry(self, key: StorageKey) -> Held | None:
        """The record of a key an update holds, read on first use (None: no update holds
        it)."""
        if key not in self._held:
            return None
        held = self._held[key]
        if held is None:
            held = self._held[key] = Held(*await self._inner.get_record(key))
        return held


class _WritingBackIsolation(BaseEventIsolation):
    """Another lock (in this process, or Redis's); the changes written while it is held."""

    def __init__(self, inner: BaseEventIsolation, storage: OncePerUpdate) -> None:
        self._inner = inner
        self._storage = storage

    @asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncGenerator[None, None]:
        async with self._inner.lock(key):
            self._storage.take(key)
            try:
                yield
            finally:
                changes = self._storage.give_back(key)
                if changes:
                    await self._storage.inner.set_record(key, changes)

    async def close(self) -> None:
        await self._inner.close()


class _HoldingIsolation(BaseEventIsolation):
    """The storage's own lock, which reads as it takes the key and writes as it lets go."""

    def __init__(self, records: LockedRecords, storage: OncePerUpdate) -> None:
        self._records = records
        self._storage = storage

    @asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncGenerator[None, None]:
        async with self._records.hold(key) as held:
            self._storage.take(key, held)
            try:
                yield
            finally:
                self._storage.give_back(key)

    async def close(self) -> None:
        """The storage closes its connections."""
