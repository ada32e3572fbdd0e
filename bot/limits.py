"""Rate limits that hold for every instance together: Telegram's overall and per-group limits and
the panel's requests per second.

A `Limiter` admits calls at one `Rate` per key (a key is one subject of that rate: "all", a
group's id) and can be paused for a key ("Telegram asks to wait"). `LocalLimiter` keeps its
state in this process (aiolimiter): right for one instance. `RedisLimiter` keeps it in Redis, so
every instance draws from one allowance: an instance alone gets the whole rate, three busy ones
share it, and a pause set by one holds for all. Redis' own clock times it, so the instances'
clocks do not matter.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Self

from aiolimiter import AsyncLimiter

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from bot.config import Settings

log = logging.getLogger(__name__)

# Telegram counts its overall limit over short windows, by when each send *arrives*: stay under
# it by enough that sends admitted on time but delayed differently on their way (a busy
# process, the network) still fit. At 95% the slack was one message (35 ms of jitter), and
# three loaded instances drew 429s from a 30/s window now and then.
TELEGRAM_RATE_MARGIN = 0.9
# At 90% of 30/s, a catch-up of a quarter interval admits at most 28 in any second: two
# messages (74 ms) of slack for the way to Telegram.
TELEGRAM_CATCH_UP = 0.25
OVERALL = "all"  # the key of a limit that has one subject
# The longest one Redis call of the limiter may take (a free pool connection included) before
# this instance stops waiting for Redis and limits itself alone.
REDIS_CALL_SECONDS = 5.0


@dataclass(frozen=True)
class Rate:
    """`per_second` on average; `burst` calls may go at once after a quiet spell.

    `catch_up` (a share of one interval, below 1) is how late a call may be without moving
    the schedule, so that a busy process waking a little late does not lose rate. It lets
    two calls come that much closer than one interval: with N calls admitted at most in any
    second at the exact rate, a catch-up c admits fewer than rate + 1 + c, so it is for a rate
    kept under its limit by a margin (Telegram's), and 0 for one that must hold exactly.
    """

    per_second: float
    burst: int = 1
    catch_up: float = 0.0

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1 or not 0 <= self.catch_up < 1:
            raise ValueError("a rate needs per_second > 0, burst >= 1, 0 <= catch_up < 1")


class Limiter(Protocol):
    async def acquire(self, key: str) -> None:
        """Return when one more call for `key` fits the rate (and no pause holds)."""

    async def pause(self, key: str, seconds: float) -> None:
        """Admit nothing for `key` for `seconds` (an existing longer pause stays)."""


class LocalLimiter:
    """One process's limiter: an aiolimiter bucket and a pause per key."""

    def __init__(self, rate: Rate) -> None:
        self.rate = rate
        self._buckets: dict[str, AsyncLimiter] = {}
        self._paused_until: dict[str, float] = {}  # loop time

    async def acquire(self, key: str) -> None:
        await self._wait_out_pause(key)
        await self._bucket(key).acquire()
        # A 429 may have arrived while this call waited for its turn.
        await self._wait_out_pause(key)

    async def pause(self, key: str, seconds: float) -> None:
        until = asyncio.get_running_loop().time() + seconds
        self._paused_until[key] = max(self._paused_until.get(key, 0.0), until)

    def _bucket(self, key: str) -> AsyncLimiter:
        bucket = self._buckets.get(key)
        if bucket is None:
            # A bucket of `burst` tokens refilled one every 1/rate s: with burst 1 the calls
            # are spaced evenly, which is what Telegram wants (a full second's worth at once
            # after a pause is answered with 429s).
            burst = self.rate.burst
            bucket = self._buckets[key] = AsyncLimiter(burst, burst / self.rate.per_second)
        return bucket

    async def _wait_out_pause(self, key: str) -> None:
        loop = asyncio.get_running_loop()
        # A loop, not one sleep: another 429 may lengthen the pause while this call sleeps.
        while (delay := self._paused_until.get(key, 0.0) - loop.time()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(delay)


# Admit one call of a key now or say how long to wait, by generic cell rate (GCRA): the key
# holds the theoretical arrival time (TAT) of the next call. A call may go `tolerance` before
# the TAT and moves it on by one interval from the TAT, or from its own arrival when that is
# later, by more than `catch_up` (a call a little late does not cost the rate). Admission is
# at the moment Redis runs this, so a caller that wakes late never sends two at once. A pause
# (a key that expires) admits nothing. Times in µs, from Redis' TIME.
# Returns {µs to wait (0: admitted), Redis' now}.
_ADMIT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local catch_up = tonumber(ARGV[3])
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then
  return {string.format('%d', paused * 1000), string.format('%d', now)}
end
local tat = tonumber(redis.call('GET', KEYS[1])) or 0
local allowed_at = tat - tolerance
if now < allowed_at then
  return {string.format('%d', allowed_at - now), string.format('%d', now)}
end
local next_tat = math.max(tat, now - catch_up) + interval
local keep_ms = math.ceil((next_tat - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX', string.format('%d', keep_ms))
return {'0', string.format('%d', now)}
"""

# Pause a key for ARGV[1] ms unless it is paused for longer already.
_PAUSE = """
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ms then
  redis.call('SET', KEYS[1], '1', 'PX', ms)
end
return 0
"""


class RedisClock:
    """Redis' clock in this event loop's time.

    The offset is the smallest seen lately between an answer's arrival and the Redis time it
    carries: the least delayed answer. So a caller told to wait wakes when Redis meant, not
    that long after however late the answer came. The minimum is taken over the last one or
    two windows, so drift between the clocks and a step of Redis' clock are followed.
    """

    WINDOW = 10.0  # seconds

    def __init__(self) -> None:
        self._current = math.inf
        self._previous = math.inf
        self._since: float | None = None

    def observe(self, *, redis_now: float, local_now: float) -> None:
        if self._since is None or local_now - self._since > self.WINDOW:
            self._previous, self._current, self._since = self._current, math.inf, local_now
        self._current = min(self._current, local_now - redis_now)

    def local(self, redis_time: float) -> float:
        return redis_time + min(self._current, self._previous)


class RedisLimiter:
    """A limiter every instance shares through Redis.

    Redis admits each call at the moment it asks, by its own clock, at most one per
    `1 / rate` (see `_ADMIT`): no instance has a share, whoever asks when the rate allows goes.
    Callers of one instance ask one at a time (in order); a caller told to wait sleeps until
    then and asks again, and when another instance took that turn it adds a little random
    delay, so that the closest instance to Redis does not win every turn. A 429 pause set by
    any instance holds for every caller of every instance. When Redis cannot be reached in
    time, calls fall back to a `LocalLimiter` of the same rate (this instance alone keeps the
    rate; a 429 is still honoured) rather than fail: delivery goes on, nothing is lost.
    """

    def __init__(self, redis: Redis, name: str, rate: Rate) -> None:
        from redis.exceptions import RedisError  # the `redis` extra

        self.rate = rate
        self._name = name
        self._interval = 1 / rate.per_second
        self._args = [
            math.ceil(1_000_000 / rate.per_second),
            (rate.burst - 1) * math.ceil(1_000_000 / rate.per_second),
            math.floor(rate.catch_up * 1_000_000 / rate.per_second),
        ]
        self._admit = redis.register_script(_ADMIT)
        self._pause = redis.register_script(_PAUSE)
        self._errors: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
        self._fallback = LocalLimiter(rate)
        self._degraded = False
        self._clock = RedisClock()
        self._turns: dict[str, asyncio.Lock] = {}

    def __repr__(self) -> str:
        return f"RedisLimiter({self._name!r}, {self.rate})"

    async def acquire(self, key: str) -> None:
        await self.admit(key)

    async def admit(self, key: str) -> float | None:
        """`acquire`, telling when Redis admitted the call by its clock (in seconds), or None
        when Redis could not be asked and the local fallback admitted it."""
        async with self._turns.setdefault(key, asyncio.Lock()):
            return await self._ask_until_admitted(key)

    async def _ask_until_admitted(self, key: str) -> float | None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                async with asyncio.timeout(REDIS_CALL_SECONDS):
                    wait_us, now_us = await self._admit(keys=self._keys(key), args=self._args)
            except self._errors as error:
                self._lost_redis(error)
                await self._fallback.acquire(key)
                return None
            self._found_redis()
            redis_now, wait = int(now_us) / 1e6, int(wait_us) / 1e6
            self._clock.observe(redis_now=redis_now, local_now=loop.time())
            if wait <= 0:
                return redis_now
            due = self._clock.local(redis_now + wait)
            if wait > self._interval / 2:
                # Another instance took the turn this call woke for (or a pause began): draw
                # lots for the next one rather than always lose it to a closer instance.
                due += random.uniform(0, self._interval / 4)
            await asyncio.sleep(due - loop.time())

    async def pause(self, key: str, seconds: float) -> None:
        await self._fallback.pause(key, seconds)  # this instance pauses even without Redis
        try:
            async with asyncio.timeout(REDIS_CALL_SECONDS):
                await self._pause(keys=[self._pause_key(key)], args=[math.ceil(seconds * 1000)])
        except self._errors as error:
            self._lost_redis(error)

    def _keys(self, key: str) -> list[str]:
        return [f"smm:limit:{{{self._name}:{key}}}", self._pause_key(key)]

    def _pause_key(self, key: str) -> str:
        # The braces keep both keys of one subject in one slot of a Redis Cluster.
        return f"smm:pause:{{{self._name}:{key}}}"

    def _lost_redis(self, error: BaseException) -> None:
        if not self._degraded:
            self._degraded = True
            log.warning(
                "limit %s: Redis unavailable (%s); limiting this instance alone",
                self._name,
                type(error).__name__,
            )

    def _found_redis(self) -> None:
        if self._degraded:
            self._degraded = False
            log.info("limit %s: shared through Redis again", self._name)


def telegram_rate(per_second: float) -> Rate:
    """The overall rate the outbox keeps for Telegram's `per_second`: a little under it."""
    return Rate(per_second * TELEGRAM_RATE_MARGIN, catch_up=TELEGRAM_CATCH_UP)


@dataclass(frozen=True)
class TelegramLimits:
    """What the outbox waits for before a send: a group's own limit, then the overall one.

    One instance needs no limiter per group: the chat's pacing in the database
    (`chats.next_send_at`) spaces a group's messages. Several instances share that pacing too,
    but each writes it by its own clock; the shared per-group limiter holds by Redis' clock.
    """

    overall: Limiter
    per_group: Limiter | None = None

    @classmethod
    def create(cls, settings: Settings, redis: Redis | None = None, *, bot_id: int = 0) -> Self:
        """Telegram's limits are per bot: the bot's id (public, not the token) names them."""
        overall = telegram_rate(settings.outbox_global_per_second)
        if redis is None:
            return cls(overall=LocalLimiter(overall))
        per_group = Rate(settings.outbox_group_per_minute / 60)
        return cls(
            overall=RedisLimiter(redis, f"telegram:{bot_id}:overall", overall),
            per_group=RedisLimiter(redis, f"telegram:{bot_id}:group", per_group),
        )

    async def take_turn(self, chat_id: int) -> None:
        """Wait until a message to `chat_id` fits every limit that is not the chat's pacing."""
        if chat_id < 0 and self.per_group is not None:
            await self.per_group.acquire(str(chat_id))
        await self.overall.acquire(OVERALL)

    async def pause(self, seconds: float) -> None:
        """Telegram answered 429: every send waits, on every instance, not only the chat's."""
        await self.overall.pause(OVERALL, seconds)


@dataclass(frozen=True)
class OneKey:
    """A limiter bound to one key: the shape `bot.panel.PanelClient` asks for."""

    limiter: Limiter
    key: str = OVERALL

    async def acquire(self) -> None:
        await self.limiter.acquire(self.key)


def panel_limiter(redis: Redis, api_url: str, api_key: str, max_rps: float) -> OneKey:
    """The panel's rate, shared by every instance using this account.

    A panel limits per key, so the name is a digest of the URL and the key: two accounts on
    one panel do not share, and the key itself never reaches Redis.
    """
    digest = hashlib.sha256(f"{api_url}\n{api_key}".encode()).hexdigest()[:16]
    return OneKey(RedisLimiter(redis, f"panel:{digest}", Rate(max_rps)))
