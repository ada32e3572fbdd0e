"""Limits shared by every instance through Redis (`bot.limits`), and Redis under a burst.

Each "instance" is a limiter with a Redis client and pool of its own, as separate processes
would have. The windows are counted in the slots the limiter admitted, by Redis' clock (what
`RedisLimiter.admit` returns), so a busy test machine cannot blur them. Needs TEST_REDIS_URL.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiogram.methods import SendMessage
from aiohttp import web
from redis.asyncio import BlockingConnectionPool, Redis

from bot.app import create_bot
from bot.config import Settings, load_settings
from bot.limits import (
    OVERALL,
    OneKey,
    Rate,
    RedisLimiter,
    TelegramLimits,
    panel_limiter,
    telegram_rate,
)
from bot.outbox import OutboxSender
from bot.panel.client import PanelClient
from migrations import upgrade_database
from playground.telegram import RateLimits, TelegramEmulator
from storage import outbox
from storage.db import create_engine, create_session_factory

REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
pytestmark = pytest.mark.skipif(
    not REDIS_URL, reason="TEST_REDIS_URL is not set (CI sets it when Redis answers)"
)
TOKEN = "123456:LIMITS-token"
PANEL_KEY = "panel-key-that-must-stay-out-of-redis"
TELEGRAM = telegram_rate(30)  # the outbox's overall rate at OUTBOX_GLOBAL_PER_SECOND=30

Instances = Callable[..., Awaitable[list[Redis]]]


async def _connect(pool_size: int = 10, url: str = REDIS_URL) -> Redis:
    pool = BlockingConnectionPool.from_url(url, max_connections=pool_size, timeout=20)
    return Redis(connection_pool=pool)


@pytest.fixture
async def instances() -> AsyncIterator[Instances]:
    """`await instances(3)`: that many Redis clients, as three processes would hold."""
    opened: list[Redis] = []

    async def connect(count: int, pool_size: int = 10) -> list[Redis]:
        clients = [await _connect(pool_size) for _ in range(count)]
        opened.extend(clients)
        return clients

    yield connect
    if opened:
        async for key in opened[0].scan_iter(match="smm:*"):
            await opened[0].delete(key)
    for client in opened:
        await client.aclose()


def unique(name: str) -> str:
    return f"test-{name}-{uuid.uuid4().hex[:8]}"


def most_in_a_second(moments: list[float]) -> int:
    """The most moments in any sliding window (t - 1 s, t], as Telegram's peer counts."""
    ordered = sorted(moments)
    return max(
        (i + 1 - bisect.bisect_right(ordered, moment - 1.0) for i, moment in enumerate(ordered)),
        default=0,
    )


async def keep_admitting(
    limiter: RedisLimiter, seconds: float, workers: int, key: str = OVERALL
) -> list[float]:
    """`workers` callers that take turns for `seconds`; the slots they were admitted at."""
    admitted: list[float] = []
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds

    async def worker() -> None:
        while loop.time() < until:
            slot = await limiter.admit(key)
            assert slot is not None, "Redis answered: no fallback expected"
            admitted.append(slot)

    await asyncio.gather(*(worker() for _ in range(workers)))
    return admitted


# --- the shared rate ---------------------------------------------------------------------------


async def test_three_busy_instances_never_exceed_the_rate_together(instances: Instances) -> None:
    name, rate = unique("busy"), TELEGRAM
    limiters = [RedisLimiter(redis, name, rate) for redis in await instances(3)]

    runs = await asyncio.gather(*(keep_admitting(limiter, 3.0, workers=8) for limiter in limiters))

    everything = [slot for run in runs for slot in run]
    assert len(everything) > 2 * 30  # long enough for the windows to mean something
    # Admitted by Redis' clock: two under Telegram's 30, so sends that reach it with different
    # delays (a loaded instance, the network) still fit its window.
    assert most_in_a_second(everything) <= 28
    assert all(runs), "every instance got turns: none is starved"


async def test_one_busy_instance_beside_two_idle_gets_the_whole_rate(
    instances: Instances,
) -> None:
    """Not a split: the busy one reaches (nearly) everything the limit admits."""
    name, rate = unique("drain"), TELEGRAM
    busy, *idle = (RedisLimiter(redis, name, rate) for redis in await instances(3))

    async def now_and_then(limiter: RedisLimiter) -> list[float]:
        slots = []
        for _ in range(3):  # an idle instance still sends a message once in a while
            slots.append(await limiter.admit(OVERALL))
            await asyncio.sleep(1.0)
        return [slot for slot in slots if slot is not None]

    # Many workers keep slots reserved ahead, so a stalled test process loses none of them.
    drained, *others = await asyncio.gather(
        keep_admitting(busy, 3.0, workers=16), *(now_and_then(limiter) for limiter in idle)
    )

    first, last = min(drained), max(drained)
    assert last - first >= 2.0  # measured over seconds, not a burst
    could_admit = (last - first) * rate.per_second + 1
    assert len(drained) >= 0.8 * could_admit  # a split in three would give a third
    assert most_in_a_second(drained + [slot for run in others for slot in run]) <= 30


async def test_a_pause_set_by_one_instance_holds_for_the_others(instances: Instances) -> None:
    """Telegram answered one instance 429: nobody sends until the pause ends, not even the
    calls that were already waiting for their turn."""
    name, rate, pause = unique("pause"), Rate(2), 1.5
    first_redis, *_ = clients = await instances(3)
    pausing, waiting, arriving = (RedisLimiter(redis, name, rate) for redis in clients)
    assert await waiting.admit(OVERALL) is not None  # the next slot is now half a second away
    queued = [asyncio.create_task(waiting.admit(OVERALL)) for _ in range(3)]
    await asyncio.sleep(0.05)  # they have reserved their slots

    seconds, micros = await first_redis.time()
    paused_at = seconds + micros / 1e6
    await pausing.pause(OVERALL, pause)
    seconds, micros = await first_redis.time()
    pause_set_by = seconds + micros / 1e6
    late = await arriving.admit(OVERALL)
    slots = await asyncio.gather(*queued)

    pause_ends = paused_at + pause - 0.002  # Redis keeps expiries in whole milliseconds
    admitted = [slot for slot in [*slots, late] if slot is not None]
    assert len(admitted) == 4
    for slot in admitted:
        assert not pause_set_by < slot < pause_ends, (slot - paused_at, pause_set_by - paused_at)
    assert late is not None and late >= pause_ends
    assert most_in_a_second(admitted) <= 2


async def test_a_pause_is_honoured_without_redis_too() -> None:
    """Redis unreachable: this instance still honours its own 429 and keeps sending."""
    limiter = RedisLimiter(await _connect(url="redis://127.0.0.1:1/0"), unique("down"), Rate(1000))
    loop = asyncio.get_running_loop()
    await limiter.pause(OVERALL, 0.2)
    started = loop.time()
    assert await limiter.admit(OVERALL) is None  # admitted by the local fallback
    assert loop.time() - started >= 0.15


# --- the panel ----------------------------------------------------------------------------------


class RecordedKey:
    """`panel_limiter`'s limiter, noting the slot of every call it admits."""

    def __init__(self, shared: OneKey, slots: list[float]) -> None:
        assert isinstance(shared.limiter, RedisLimiter)
        self._limiter, self._key, self._slots = shared.limiter, shared.key, slots

    async def acquire(self) -> None:
        slot = await self._limiter.admit(self._key)
        assert slot is not None
        self._slots.append(slot)


async def test_two_panel_clients_stay_within_the_rate_together(instances: Instances) -> None:
    answered: list[str] = []

    async def balance(request: web.Request) -> web.Response:
        answered.append((await request.post())["action"])  # type: ignore[arg-type]
        return web.json_response({"balance": "10.5", "currency": "USD"})

    app = web.Application()
    app.router.add_post("/api/v2", balance)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}/api/v2"
    slots: list[float] = []
    clients = [
        PanelClient(
            url,
            PANEL_KEY,
            max_rps=5,
            limiter=RecordedKey(panel_limiter(redis, url, PANEL_KEY, 5), slots),
        )
        for redis in await instances(2)
    ]
    try:
        await asyncio.gather(*(client.balance() for client in clients for _ in range(12)))
        names = [key async for key in (await instances(1))[0].scan_iter(match="smm:*")]
    finally:
        for client in clients:
            await client.close()
        await runner.cleanup()

    assert len(answered) == len(slots) == 24  # every call went through the shared limiter
    assert most_in_a_second(slots) <= 5  # PANEL_MAX_RPS for both together
    assert names and not any(PANEL_KEY.encode() in name for name in names)


# --- a connection shortage loses nothing ---------------------------------------------------------


async def test_a_pool_of_one_connection_admits_every_caller(
    instances: Instances, caplog: pytest.LogCaptureFixture
) -> None:
    (redis,) = await instances(1, pool_size=1)
    limiter = RedisLimiter(redis, unique("pool"), Rate(2000, burst=50))

    with caplog.at_level(logging.WARNING, logger="bot.limits"):
        slots = await asyncio.gather(*(limiter.admit(OVERALL) for _ in range(200)))

    assert None not in slots  # each waited for the connection: none fell back, none failed
    assert not caplog.records


async def test_three_senders_on_tiny_pools_deliver_every_message_once(
    instances: Instances, tmp_path: Path
) -> None:
    emulator = TelegramEmulator(
        token=TOKEN,
        limits=RateLimits(
            global_per_second=500, per_chat_per_second=50, per_group_per_minute=3000
        ),
    )
    api = await emulator.start()
    chats = [7000 + n for n in range(40)] + [-100_900 - n for n in range(4)]
    for chat in chats:
        if chat > 0:
            emulator.user(chat)
        else:
            emulator.add_group(chat, f"Team {chat}")
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    await upgrade_database(database_url)
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    settings = sender_settings(api, database_url)
    bots = [create_bot(settings) for _ in range(3)]
    redis_clients = await instances(3, pool_size=1)
    async with sessions.begin() as session:
        for round_ in range(2):
            for chat in chats:
                await outbox.enqueue(session, chat, f"notice {round_} for {chat}")
    senders = [
        OutboxSender(
            bot,
            sessions,
            settings,
            owner=f"instance-{n}",
            idle_wait=0.02,
            limits=TelegramLimits.create(settings, redis, bot_id=bot.id),
        )
        for n, (bot, redis) in enumerate(zip(bots, redis_clients, strict=True))
    ]
    tasks = [asyncio.create_task(sender.run_forever()) for sender in senders]
    try:
        await until_empty(sessions, timeout=30)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for bot in bots:
            await bot.session.close()
        await engine.dispose()
        await emulator.stop()

    for chat in chats:
        assert [m.text for m in emulator.messages(chat) if m.from_bot] == [
            f"notice 0 for {chat}",
            f"notice 1 for {chat}",
        ]


def sender_settings(api: str, database_url: str) -> Settings:
    return load_settings(
        bot_token=TOKEN,
        telegram_api_url=api,
        panel_api_url="sandbox",
        database_url=database_url,
        outbox_global_per_second=400,
        outbox_chat_interval=0.05,
        outbox_group_per_minute=1200,
    )


async def until_empty(sessions: Any, timeout: float) -> None:  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        async with sessions() as session:
            if await outbox.queue_length(session) == 0:
                return
        assert loop.time() < deadline, "the outbox did not drain"
        await asyncio.sleep(0.05)


async def test_a_burst_of_updates_on_a_small_redis_pool_gets_no_apology(make_rig: Any) -> None:
    """Issue 14, item 4: 150 updates at once with FSM state in Redis and a pool of 2
    connections. Every caller waits for a connection; nobody gets "something went wrong"."""
    people = list(range(5001, 5151))
    rig = await make_rig(
        fsm_storage=REDIS_URL, redis_pool_size=2, allowed_user_ids=people, update_concurrency=150
    )
    try:
        answers = await asyncio.gather(*(rig.send(person, "/order") for person in people))
    finally:
        redis = await _connect()
        async for key in redis.scan_iter(match=f"fsm:{rig.bot.id}:*"):
            await redis.delete(key)
        await redis.aclose()

    sent = [method for method in rig.session.requests if isinstance(method, SendMessage)]
    assert not [method.text for method in sent if "went wrong" in method.text]
    assert all(answers)
    assert {method.chat_id for method in sent} == set(people)  # everyone got an answer


async def test_the_instances_benchmark_runs_and_loses_nothing() -> None:
    """`python -m bench --only instances` at a tiny size: every run drains, none loses."""
    from bench import report
    from bench.instances import Workload, bench_instances

    limits = RateLimits(global_per_second=500, per_chat_per_second=50, per_group_per_minute=3000)
    result = await bench_instances(Workload(6, 2, 1, 2), limits, redis_url=REDIS_URL)

    assert [(run.instances, run.shared) for run in result.runs] == [
        (1, True),
        (3, True),
        (3, False),
    ]
    assert all(run.lost == run.duplicated == 0 and not run.timed_out for run in result.runs)
    assert all(sum(run.sent_by) >= result.messages for run in result.runs)
    assert "## 6. Delivery by several instances" in "\n".join(report.instances_section(result))
