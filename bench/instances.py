"""Delivery by several instances: 1 and 3 outbox senders against one Telegram peer.

Each instance is a real `OutboxSender.run_forever()` with an owner id, a database engine, an
`aiogram.Bot` (one token: Telegram's limits are per bot) and a Redis client of its own; they
share one migrated SQLite outbox and one Redis, through which they share Telegram's overall and
per-group limits (`bot.limits`). The Telegram emulator enforces the limits with sliding windows
and answers 429 beyond them. Runs: one instance, three sharing the limits, and, for
comparison, three with limits of their own (what every instance did before the limits were
shared). The figures: messages per second, 429s, the most messages started in one second.

Redis is TEST_REDIS_URL (a scratch database, as for the tests: the runs write and delete a
few keys of their own there). Without it the shared runs are skipped and say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.delivery import FIRST_CHAT, FIRST_GROUP, SendLog, delivery_plan, notification
from bot.app import create_bot
from bot.config import Settings
from bot.limits import TelegramLimits
from bot.outbox import OutboxSender
from migrations import upgrade_database
from playground.telegram import RateLimits, TelegramEmulator
from playground.telegram.recording import TOKEN
from storage import outbox
from storage.db import create_engine, create_session_factory

if TYPE_CHECKING:
    from redis.asyncio import Redis

REDIS_ENV = "TEST_REDIS_URL"
CHECK_EVERY = 0.05  # seconds between two looks at the outbox while it drains


@dataclass(frozen=True)
class Workload:
    private_chats: int
    per_chat: int
    groups: int
    per_group: int

    @property
    def messages(self) -> int:
        return self.private_chats * self.per_chat + self.groups * self.per_group


@dataclass
class InstancesRun:
    instances: int
    shared: bool  # the limits went through Redis
    seconds: float
    too_many: int  # 429s the peer answered
    lost: int
    duplicated: int
    peak_per_second: int  # most sendMessage calls started within one second, all instances
    sent_by: list[int]  # messages each instance had accepted
    timed_out: bool

    def per_second(self, messages: int) -> float:
        return messages / self.seconds if self.seconds else float("nan")

    @property
    def label(self) -> str:
        if self.instances == 1:
            return "1 instance"
        return f"{self.instances} instances, " + ("limits shared" if self.shared else "own limits")


@dataclass
class InstancesResult:
    workload: Workload
    limits: RateLimits
    runs: list[InstancesRun] = field(default_factory=list)
    skipped: str | None = None  # why the shared runs did not run

    @property
    def messages(self) -> int:
        return self.workload.messages

    def run(self, instances: int, shared: bool = True) -> InstancesRun | None:
        found = [r for r in self.runs if r.instances == instances and r.shared == shared]
        return found[0] if found else None


async def bench_instances(
    workload: Workload, limits: RateLimits, redis_url: str | None = None
) -> InstancesResult:
    """1 and 3 instances sharing the limits through Redis, then 3 with limits of their own."""
    result = InstancesResult(workload, limits)
    redis_url = redis_url or os.environ.get(REDIS_ENV)
    if redis_url:
        for instances in (1, 3):
            result.runs.append(await drain_with(instances, workload, limits, redis_url))
    else:
        result.skipped = f"no Redis to share the limits through: {REDIS_ENV} is not set"
    result.runs.append(await drain_with(3, workload, limits, None))
    return result


async def drain_with(
    instances: int, workload: Workload, limits: RateLimits, redis_url: str | None
) -> InstancesRun:
    """One full drain of a fresh outbox by `instances` senders, through a fresh emulator."""
    emulator = TelegramEmulator(token=TOKEN, limits=limits)
    api = await emulator.start()
    for c in range(workload.private_chats):
        emulator.user(FIRST_CHAT + c)
    for g in range(workload.groups):
        emulator.add_group(FIRST_GROUP - g, f"Team {g + 1}")
    folder = tempfile.TemporaryDirectory(prefix="smm-bench-instances-")
    database_url = f"sqlite+aiosqlite:///{Path(folder.name) / 'bot.db'}"
    await upgrade_database(database_url)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        bot_token=TOKEN,
        telegram_api_url=api,
        panel_api_url="sandbox",
        database_url=database_url,
        outbox_global_per_second=limits.global_per_second,
        outbox_chat_interval=1 / limits.per_chat_per_second,
        outbox_group_per_minute=limits.per_group_per_minute,
    )
    plan = delivery_plan(
        workload.private_chats, workload.per_chat, workload.groups, workload.per_group
    )
    engines = [create_engine(database_url) for _ in range(instances)]
    bots = [create_bot(settings) for _ in range(instances)]
    logs = [SendLog() for _ in range(instances)]
    redis_clients = [_connect(redis_url) for _ in range(instances)] if redis_url else []
    tasks: list[asyncio.Task[None]] = []
    try:
        await _forget_limits(redis_clients, bots[0].id)
        async with create_session_factory(engines[0]).begin() as session:
            for number, chat_id in enumerate(plan):
                await outbox.enqueue(session, chat_id, notification(number), kind="order_status")
        senders = []
        for n, (engine, bot, log) in enumerate(zip(engines, bots, logs, strict=True)):
            bot.session.middleware(log)
            redis = redis_clients[n] if redis_clients else None
            senders.append(
                OutboxSender(
                    bot,
                    create_session_factory(engine),
                    settings,
                    owner=f"bench-instance-{n + 1}",
                    limits=TelegramLimits.create(settings, redis, bot_id=bot.id),
                )
            )
        # Generous: three instances with limits of their own spend long in 429 pauses.
        deadline = 3 * workload.messages / limits.global_per_second + 60
        started = time.perf_counter()
        tasks = [asyncio.create_task(sender.run_forever()) for sender in senders]
        timed_out = await _until_empty(create_session_factory(engines[0]), started + deadline)
        seconds = time.perf_counter() - started
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await _forget_limits(redis_clients, bots[0].id)
        for client in redis_clients:
            await client.aclose()
        for bot in bots:
            await bot.session.close()
        for engine in engines:
            await engine.dispose()
        await emulator.stop()
        folder.cleanup()
    wanted = Counter(plan)
    accepted = Counter(
        {chat_id: sum(1 for m in emulator.messages(chat_id) if m.from_bot) for chat_id in wanted}
    )
    merged = SendLog()
    merged.sends = sorted((send for log in logs for send in log.sends), key=lambda s: s.started)
    return InstancesRun(
        instances=instances,
        shared=redis_url is not None,
        seconds=seconds,
        too_many=emulator.stats.too_many_requests,
        lost=sum(max(0, n - accepted[chat_id]) for chat_id, n in wanted.items()),
        duplicated=sum(max(0, accepted[chat_id] - n) for chat_id, n in wanted.items()),
        peak_per_second=merged.peak_per_second(),
        sent_by=[sum(1 for send in log.sends if send.accepted) for log in logs],
        timed_out=timed_out,
    )


def _connect(url: str) -> Redis:
    from redis.asyncio import BlockingConnectionPool, Redis

    return Redis(connection_pool=BlockingConnectionPool.from_url(url, max_connections=16))


async def _forget_limits(clients: list[Redis], bot_id: int) -> None:
    """Start each run with no slot reserved and no pause left by the previous one."""
    if clients:
        async for key in clients[0].scan_iter(match=f"smm:*{{telegram:{bot_id}:*"):
            await clients[0].delete(key)


async def _until_empty(sessions: async_sessionmaker[AsyncSession], deadline: float) -> bool:
    """Wait until the outbox is empty; True when the deadline came first."""
    while True:
        await asyncio.sleep(CHECK_EVERY)
        async with sessions() as session:
            if await outbox.queue_length(session) == 0:
                return False
        if time.perf_counter() > deadline:
            return True
