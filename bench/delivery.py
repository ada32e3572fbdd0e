"""Delivery: draining the outbox through Telegram's limits, against the Telegram emulator.

The emulator enforces the broadcast limits (about 30 messages/s overall, 1/s per chat, 20/min
per group) with sliding windows and answers 429 with `retry_after` beyond them; a real
`aiogram.Bot` talks to it over HTTP, and the real `OutboxSender.run_forever()` drains a real,
migrated SQLite outbox. The figure is the drain time against the ideal time those limits allow.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from aiogram import Bot
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import Response, SendMessage, TelegramMethod
from aiogram.methods.base import TelegramType

from bench.measure import median
from bot.app import create_bot
from bot.config import Settings
from bot.outbox import OutboxSender
from migrations import upgrade_database
from playground.telegram import RateLimits, TelegramEmulator
from playground.telegram.recording import TOKEN
from storage import outbox
from storage.db import create_engine, create_session_factory

FIRST_CHAT = 5_000_000
FIRST_GROUP = -1_001_000_000_001
CHECK_EVERY = 0.05  # seconds between two looks at the outbox while it drains


@dataclass
class DeliveryResult:
    private_chats: int
    per_chat: int
    groups: int
    per_group: int
    limits: RateLimits
    bounds: dict[str, float]  # seconds each limit alone needs at least
    drain_runs: list[float] = field(default_factory=list)
    too_many_runs: list[int] = field(default_factory=list)  # 429s received, per run
    lost_runs: list[int] = field(default_factory=list)  # enqueued but never accepted
    duplicate_runs: list[int] = field(default_factory=list)  # accepted more than once
    timed_out: bool = False
    # What the 429s ran into, judged from the send times the bot saw (see SendLog), all runs.
    too_many_causes: Counter[str] = field(default_factory=Counter)
    peak_sends_per_second: int = 0  # most sendMessage requests started within one second

    @property
    def messages(self) -> int:
        return self.private_chats * self.per_chat + self.groups * self.per_group

    @property
    def ideal(self) -> float:
        return max(self.bounds.values())

    @property
    def drain(self) -> float:
        return median(self.drain_runs)

    @property
    def over_ideal(self) -> float:
        """How much longer than the ideal, as a fraction (0.05 = 5% over)."""
        return self.drain / self.ideal - 1 if self.ideal else float("nan")

    @property
    def repeats(self) -> int:
        return len(self.drain_runs)


@dataclass(frozen=True)
class Send:
    started: float
    chat_id: int
    accepted: bool


class SendLog(BaseRequestMiddleware):
    """Records every sendMessage the bot makes: when, to which chat, accepted or 429."""

    def __init__(self) -> None:
        self.sends: list[Send] = []

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        chat_id = method.chat_id if isinstance(method, SendMessage) else None
        if chat_id is None:
            return await make_request(bot, method)
        started = time.perf_counter()
        try:
            response = await make_request(bot, method)
        except TelegramRetryAfter:
            self.sends.append(Send(started, int(chat_id), accepted=False))
            raise
        self.sends.append(Send(started, int(chat_id), accepted=True))
        return response

    def peak_per_second(self) -> int:
        times = sorted(send.started for send in self.sends)
        peak, first = 0, 0
        for last, moment in enumerate(times):
            while times[first] <= moment - 1.0:
                first += 1
            peak = max(peak, last - first + 1)
        return peak

    def causes(self, limits: RateLimits) -> Counter[str]:
        """Which limit each 429 most likely hit: the chat's own pace, the group's minute, or
        the overall second (judged from the accepted sends before it)."""
        found: Counter[str] = Counter()
        accepted = [send for send in self.sends if send.accepted]
        for refused in (send for send in self.sends if not send.accepted):
            before = [s for s in accepted if s.started < refused.started]
            same_chat = [s for s in before if s.chat_id == refused.chat_id]
            if same_chat and refused.started - same_chat[-1].started < (
                1 / limits.per_chat_per_second
            ):
                found["per chat"] += 1
            elif refused.chat_id < 0 and (
                sum(1 for s in same_chat if s.started > refused.started - 60)
                >= limits.per_group_per_minute
            ):
                found["per group"] += 1
            elif (
                sum(1 for s in before if s.started > refused.started - 1.0)
                >= 0.9 * limits.global_per_second
            ):
                found["overall"] += 1
            else:
                found["unclear"] += 1
        return found


def ideal_bounds(
    private_chats: int, per_chat: int, groups: int, per_group: int, limits: RateLimits
) -> dict[str, float]:
    """The time each limit alone imposes; the ideal drain time is the largest of them."""
    total = private_chats * per_chat + groups * per_group
    bounds = {
        "overall": total / limits.global_per_second,
        "per chat": (max(per_chat, per_group if groups else 0) - 1) / limits.per_chat_per_second,
    }
    if groups and per_group:
        bounds["per group"] = per_group * 60 / limits.per_group_per_minute
    return bounds


def notification(number: int) -> str:
    return (
        f"✅ Order <b>#{23_500 + number}</b> (Instagram Followers [Real] #{number % 43}) is now "
        f"<b>Completed</b>. Remains: 0. Charge: 1.25 USD."
    )


def delivery_plan(private_chats: int, per_chat: int, groups: int, per_group: int) -> list[int]:
    """The chat of each message in enqueue order: the customers' notices round by round, the
    groups' spread evenly among them (as the poller writes them, completion after completion)."""
    plan = [FIRST_CHAT + c for _ in range(per_chat) for c in range(private_chats)]
    group_messages = [FIRST_GROUP - g for _ in range(per_group) for g in range(groups)]
    if group_messages:
        step = max(1, len(plan) // len(group_messages))
        for index, chat in enumerate(group_messages):
            plan.insert(min(len(plan), index * (step + 1)), chat)
    return plan


@dataclass
class Drain:
    seconds: float
    too_many: int
    lost: int
    duplicated: int
    timed_out: bool
    log: SendLog


async def drain_once(
    private_chats: int, per_chat: int, groups: int, per_group: int, limits: RateLimits
) -> Drain:
    """One full drain of a fresh outbox, through a fresh emulator."""
    emulator = TelegramEmulator(token=TOKEN, limits=limits)
    url = await emulator.start()
    for c in range(private_chats):
        emulator.user(FIRST_CHAT + c)
    for g in range(groups):
        emulator.add_group(FIRST_GROUP - g, f"Team {g + 1}")
    folder = tempfile.TemporaryDirectory(prefix="smm-bench-delivery-")
    database_url = f"sqlite+aiosqlite:///{Path(folder.name) / 'bot.db'}"
    await upgrade_database(database_url)
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        bot_token=TOKEN,
        telegram_api_url=url,
        panel_api_url="sandbox",
        database_url=database_url,
        outbox_global_per_second=limits.global_per_second,
        outbox_chat_interval=1 / limits.per_chat_per_second,
        outbox_group_per_minute=limits.per_group_per_minute,
    )
    bot = create_bot(settings)
    log = SendLog()
    bot.session.middleware(log)
    plan = delivery_plan(private_chats, per_chat, groups, per_group)
    sender_task: asyncio.Task[None] | None = None
    try:
        async with sessions.begin() as session:
            for number, chat_id in enumerate(plan):
                await outbox.enqueue(session, chat_id, notification(number), kind="order_status")
        sender = OutboxSender(bot, sessions, settings)
        bound = max(ideal_bounds(private_chats, per_chat, groups, per_group, limits).values())
        deadline = 3 * bound + 30
        started = time.perf_counter()
        sender_task = asyncio.create_task(sender.run_forever())
        timed_out = False
        while True:
            await asyncio.sleep(CHECK_EVERY)
            async with sessions() as session:
                if await outbox.queue_length(session) == 0:
                    break
            if time.perf_counter() - started > deadline:
                timed_out = True
                break
        drained = time.perf_counter() - started
    finally:
        if sender_task is not None:
            sender_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender_task
        await bot.session.close()
        await engine.dispose()
        await emulator.stop()
        folder.cleanup()
    wanted = Counter(plan)
    accepted = Counter(
        {chat_id: sum(1 for m in emulator.messages(chat_id) if m.from_bot) for chat_id in wanted}
    )
    lost = sum(max(0, n - accepted[chat_id]) for chat_id, n in wanted.items())
    duplicated = sum(max(0, accepted[chat_id] - n) for chat_id, n in wanted.items())
    return Drain(drained, emulator.stats.too_many_requests, lost, duplicated, timed_out, log)


async def bench_delivery(
    private_chats: int,
    per_chat: int,
    groups: int,
    per_group: int,
    repeats: int = 1,
    limits: RateLimits | None = None,
) -> DeliveryResult:
    limits = limits or RateLimits(
        global_per_second=30, per_chat_per_second=1, per_group_per_minute=20
    )
    result = DeliveryResult(
        private_chats=private_chats,
        per_chat=per_chat,
        groups=groups,
        per_group=per_group,
        limits=limits,
        bounds=ideal_bounds(private_chats, per_chat, groups, per_group, limits),
    )
    for _ in range(repeats):
        drain = await drain_once(private_chats, per_chat, groups, per_group, limits)
        result.drain_runs.append(drain.seconds)
        result.too_many_runs.append(drain.too_many)
        result.lost_runs.append(drain.lost)
        result.duplicate_runs.append(drain.duplicated)
        result.timed_out = result.timed_out or drain.timed_out
        result.too_many_causes.update(drain.log.causes(limits))
        result.peak_sends_per_second = max(
            result.peak_sends_per_second, drain.log.peak_per_second()
        )
    return result
