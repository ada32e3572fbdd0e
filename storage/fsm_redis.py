"""aiogram's Redis FSM storage, reading a key's state and data in one round trip and writing
them in one (the `redis` extra; imported only when FSM_STORAGE is a Redis URL)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.redis import RedisStorage


class RedisConversations(RedisStorage):
    """The same keys, values and expiry as `RedisStorage` (a running bot's conversations carry
    over), plus the two calls `OncePerUpdate` uses."""

    async def get_record(self, key: StorageKey) -> tuple[str | None, dict[str, Any]]:
        state, data = await self.redis.mget(
            self.key_builder.build(key, "state"), self.key_builder.build(key, "data")
        )
        if isinstance(state, bytes):
            state = state.decode("utf-8")
        loaded = self.json_loads(data) if data is not None else {}
        return state, cast(dict[str, Any], loaded)

    async def set_record(self, key: StorageKey, changes: Mapping[str, Any]) -> None:
        """Write the "state" and/or the "data" in `changes`, in one pipeline."""
        async with self.redis.pipeline(transaction=False) as pipe:
            if "state" in changes:
                name = self.key_builder.build(key, "state")
                _queue(pipe, name, changes["state"], self.state_ttl)
            if "data" in changes:
                text = self.json_dumps(changes["data"]) if changes["data"] else None
                _queue(pipe, self.key_builder.build(key, "data"), text, self.data_ttl)
            await pipe.execute()


def _queue(pipe: Any, name: str, value: str | None, ttl: Any) -> None:
    """aiogram's rule: an empty state or data is no key at all."""
    if value is None:
        pipe.delete(name)
    else:
        pipe.set(name, value, ex=ttl)
