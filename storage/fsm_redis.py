"""Conversations in Redis (the `redis` extra; imported only when FSM_STORAGE is a Redis URL):
aiogram's RedisStorage keys, with the member's lock, the read and the write in two round trips.

aiogram takes the lock (SET NX), reads the state, reads the data, writes each that changed
and releases the lock (a script): five or more round trips per update, each costing CPU in the
client. Here the lock is taken and the record read in one pipeline, and the changes written and
the lock released in one script, which writes only while the lock is still this update's.
The lock is redis-py's (same key, a random token, an expiry), so instances running aiogram's
own lock during an upgrade still exclude each other.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncGenerator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, Literal, cast

from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.redis import RedisStorage

from storage.fsm import Held, Record

log = logging.getLogger(__name__)

Part = Literal["lock", "state", "data"]

RETRY_SECONDS = 0.05  # a second update of the member waits for the first this often

# KEYS: lock, state, data. ARGV: token, expiry in ms. The record, or nothing if the lock is
# someone else's.
_TAKE_AND_READ = """
if not redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
return {redis.call('get', KEYS[2]) or false, redis.call('get', KEYS[3]) or false}
"""
# KEYS: lock, state, data. ARGV: token, then for the state and the data each an operation
# ("" keep, "del", "set"), a value and an expiry in ms (0: none).
_WRITE_AND_RELEASE = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
for i = 0, 1 do
  local op, value, ttl = ARGV[2 + i * 3], ARGV[3 + i * 3], tonumber(ARGV[4 + i * 3])
  if op == 'del' then redis.call('del', KEYS[2 + i])
  elseif op == 'set' and ttl > 0 then redis.call('set', KEYS[2 + i], value, 'PX', ttl)
  elseif op == 'set' then redis.call('set', KEYS[2 + i], value) end
end
redis.call('del', KEYS[1])
return 1
"""


class RedisConversations(RedisStorage):
    """The same keys, values and expiry as `RedisStorage` (a running bot's conversations carry
    over), plus the records `OncePerUpdate` reads and writes, and the member's lock."""

    def __init__(self, *args: Any, lock_seconds: float = 60, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock_ms = int(lock_seconds * 1000)
        self._take_and_read = self.redis.register_script(_TAKE_AND_READ)
        self._write_and_release = self.redis.register_script(_WRITE_AND_RELEASE)

    async def get_record(self, key: StorageKey) -> Record:
        state, data = await self.redis.mget(self._name(key, "state"), self._name(key, "data"))
        return _record(state, data, self)

    async def set_record(self, key: StorageKey, changes: Mapping[str, Any]) -> None:
        """Write the "state" and/or the "data" in `changes`, in one pipeline."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for part, (op, value, ttl) in self._operations(changes).items():
                if op == "del":
                    pipe.delete(self._name(key, part))
                elif op == "set":
                    pipe.set(self._name(key, part), value, px=ttl or None)
            await pipe.execute()

    @asynccontextmanager
    async def hold(self, key: StorageKey) -> AsyncGenerator[Held, None]:
        """The member's lock, with their record; what the update changed is written as the
        lock is released (not at all if it expired meanwhile: another update has the key)."""
        names = [self._name(key, "lock"), self._name(key, "state"), self._name(key, "data")]
        token = secrets.token_hex(16)
        while True:
            record = await self._take_and_read(keys=names, args=[token, self._lock_ms])
            if record is not None:
                break
            await asyncio.sleep(RETRY_SECONDS)
        state, data = record  # Lua's false arrives as None
        held = Held(*_record(state, data, self))
        try:
            yield held
        finally:
            operations = self._operations(held.changes)
            args: list[Any] = [token]
            for part in cast(tuple[Part, ...], ("state", "data")):
                args.extend(operations.get(part, ("", "", 0)))
            if not await self._write_and_release(keys=names, args=args):
                log.warning("a conversation lock expired before its update ended; not written")

    def _name(self, key: StorageKey, part: Part) -> str:
        return self.key_builder.build(key, part)

    def _operations(self, changes: Mapping[str, Any]) -> dict[Part, tuple[str, str, int]]:
        """aiogram's rules: an empty state or data is no key at all."""
        found: dict[Part, tuple[str, str, int]] = {}
        if "state" in changes:
            state = changes["state"]
            found["state"] = ("set", state, _ms(self.state_ttl)) if state else ("del", "", 0)
        if "data" in changes:
            data = changes["data"]
            text = self.json_dumps(data) if data else ""
            found["data"] = ("set", text, _ms(self.data_ttl)) if data else ("del", "", 0)
        return found


def _record(state: Any, data: Any, storage: RedisStorage) -> Record:
    if isinstance(state, bytes):
        state = state.decode("utf-8")
    loaded = storage.json_loads(data) if data is not None else {}
    return state, cast(dict[str, Any], loaded)


def _ms(ttl: int | timedelta | None) -> int:
    if ttl is None:
        return 0
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
    return int(seconds * 1000)
