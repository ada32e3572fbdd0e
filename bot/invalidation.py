"""Tells every instance's caches what one instance changed: tiny events through Redis pub/sub.

An event is `{"kind": …, "id": …, "from": <instance>}`; each cache registers what to do with
its kinds (usually: forget that entry, so the next read goes to the database). Without Redis
(one instance) there is nobody to tell and publishing does nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

log = logging.getLogger(__name__)

CHANNEL = "smm-bot:caches"
# The kinds of event, and what their id is.
USER_CHANGED = "user"  # a user's access or language (id: the user)
CHAT_BLOCKED = "chat_blocked"  # a chat blocked the bot (id: the chat)
CHAT_CLEARED = "chat_cleared"  # a blocked chat wrote again: the mark is gone (id: the chat)
CATALOG_CHANGED = "catalog"  # the panel's services changed (id: 0)

PUBLISH_TIMEOUT = 2.0  # a change is committed already: a slow Redis must not hold its answer
IDLE_PING = 15.0  # an idle subscription is pinged, so a dead connection is noticed
FIRST_RETRY = 0.5
LAST_RETRY = 30.0

Apply = Callable[[int], None]
Reset = Callable[[], None]


class Invalidation:
    """A small bus: `publish(kind, id)` here, and `run_forever()` applies everyone's events to
    the caches registered with `on(kind, apply)`.

    Whenever the subscription is (re)established, every cache registered with `on_reset` is
    cleared: events sent while this instance was not listening are lost with the connection.
    """

    def __init__(
        self,
        redis: Redis | None,
        *,
        channel: str = CHANNEL,
        idle_ping: float = IDLE_PING,
    ) -> None:
        self._redis = redis
        self.channel = channel
        self._idle_ping = idle_ping
        self.instance = uuid.uuid4().hex[:12]
        self._appliers: dict[str, list[Apply]] = {}
        self._resets: list[Reset] = []
        self._pending: set[asyncio.Task[None]] = set()
        self._listening = asyncio.Event()

    @property
    def shared(self) -> bool:
        """True when other instances may be listening (Redis is configured)."""
        return self._redis is not None

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    def on(self, kind: str, apply: Apply) -> None:
        self._appliers.setdefault(kind, []).append(apply)

    def on_reset(self, reset: Reset) -> None:
        self._resets.append(reset)

    async def publish(self, kind: str, item_id: int = 0) -> None:
        """Tell the other instances; a failure is logged, never raised (the change itself is
        stored; the other caches then hold it until their TTL, as with no Redis at all)."""
        if self._redis is None:
            return
        event = json.dumps({"kind": kind, "id": item_id, "from": self.instance})
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                await self._redis.publish(self.channel, event)
        except Exception as error:  # Redis down or slow: the caches' TTL is the fallback
            log.warning("could not publish %s %s: %s", kind, item_id, type(error).__name__)

    def publish_soon(self, kind: str, item_id: int = 0) -> None:
        """`publish` from code that cannot wait (a synchronous callback in the event loop)."""
        if self._redis is None:
            return
        task = asyncio.get_running_loop().create_task(self.publish(kind, item_id))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for the events `publish_soon` has not sent yet."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def wait_listening(self, seconds: float) -> bool:
        """Wait (up to `seconds`) until the subscription is up; False if it is not."""
        try:
            async with asyncio.timeout(seconds):
                await self._listening.wait()
        except TimeoutError:
            return False
        return True

    async def run_forever(self) -> None:
        """Listen and apply, reconnecting with a growing pause when Redis goes away."""
        if self._redis is None:
            return
        pause = FIRST_RETRY
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    await self._listen(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # connection lost, Redis restarting, a bad reply
                log.warning(
                    "cache invalidation lost Redis (%s); retrying in %.1f s",
                    type(error).__name__,
                    pause,
                )
            if self._listening.is_set():
                pause = FIRST_RETRY  # it was up: start the backoff again
            self._listening.clear()
            self._reset()  # changes made while nobody listened are unknown here
            await asyncio.sleep(pause)
            pause = min(pause * 2, LAST_RETRY)

    async def _listen(self, pubsub: PubSub) -> None:
        unanswered_ping = False
        while True:
            message = await pubsub.get_message(timeout=self._idle_ping)
            if message is None:
                if unanswered_ping:
                    raise ConnectionError("Redis did not answer a ping")
                await pubsub.ping()
                unanswered_ping = True
                continue
            unanswered_ping = False
            kind = message.get("type")
            if kind == "subscribe":
                # The first subscription, or redis-py's own resubscription after reconnecting.
                self._reset()
                self._listening.set()
            elif kind == "message":
                self._apply(message.get("data"))

    def _apply(self, data: Any) -> None:
        try:
            event = json.loads(data)
            kind, item_id, sender = str(event["kind"]), int(event["id"]), event.get("from")
        except (TypeError, ValueError, KeyError):
            log.warning("ignored a malformed cache event")
            return
        if sender == self.instance:
            return  # this instance applied its own change already
        for apply in self._appliers.get(kind, ()):
            try:
                apply(item_id)
            except Exception:  # one cache's bug must not stop the others hearing of changes
                log.exception("applying %s %s failed", kind, item_id)

    def _reset(self) -> None:
        for reset in self._resets:
            try:
                reset()
            except Exception:
                log.exception("clearing a cache failed")
