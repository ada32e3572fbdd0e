"""The outbox sender: a real aiogram Bot against the Telegram emulator, over real HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.methods import SendMessage, TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.outbox import OutboxSender
from playground.telegram import TelegramEmulator
from storage import outbox, people
from storage.db import utcnow
from storage.models import Chat, OutboxMessage

TOKEN = "123456:TEST-token"
ALICE, BOB, CAROL = 101, 102, 103
GROUP = -100500

Sessions = async_sessionmaker[AsyncSession]


class SendLog(BaseRequestMiddleware):
    """When each sendMessage left the bot, by chat (monotonic seconds)."""

    def __init__(self) -> None:
        self.sends: list[tuple[float, int]] = []

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        if isinstance(method, SendMessage):
            self.sends.append((time.monotonic(), int(method.chat_id)))
        return await make_request(bot, method)

    def times(self, chat_id: int) -> list[float]:
        return [moment for moment, chat in self.sends if chat == chat_id]


@dataclass
class Rig:
    emulator: TelegramEmulator
    bot: Bot
    sessions: Sessions
    log: SendLog
    settings: Settings = field(default_factory=lambda: make_settings())

    def sender(self, **overrides: Any) -> OutboxSender:
        return OutboxSender(self.bot, self.sessions, self.settings, **overrides)

    async def enqueue(self, chat_id: int, text: str, markup: dict[str, Any] | None = None) -> None:
        async with self.sessions.begin() as session:
            await outbox.enqueue(session, chat_id, text, markup)

    async def outbox_is_empty(self) -> bool:
        return not await self.queue()

    async def queue(self) -> list[OutboxMessage]:
        async with self.sessions() as session:
            return list(await outbox.pending(session))

    def texts(self, chat_id: int) -> list[str]:
        return [message.text for message in self.emulator.messages(chat_id)]

    async def drain(self, sender: OutboxSender | None = None, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Run the sender until the outbox is empty."""
        task = asyncio.create_task((sender or self.sender(idle_wait=0.02)).run_forever())
        try:
            await eventually(self.outbox_is_empty, timeout)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float) -> None:  # noqa: ASYNC109
    """Wait until `check` passes (a database condition, so no event to wait on)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, f"{check.__name__} still false after {timeout} s"
        await asyncio.sleep(0.02)


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "bot_token": TOKEN,
        "panel_api_url": "sandbox",
        "outbox_global_per_second": 1000,
        "outbox_chat_interval": 0,
        "outbox_group_per_minute": 60000,
    }
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


@pytest.fixture
async def rig(sessions: Sessions) -> AsyncIterator[Rig]:
    emulator = TelegramEmulator(TOKEN)
    url = await emulator.start()
    for user_id in (ALICE, BOB, CAROL):
        emulator.user(user_id)
    emulator.add_group(GROUP, "Team")
    async with sessions.begin() as session:
        for user_id in (ALICE, BOB, CAROL):
            await people.remember_chat(session, user_id, "private", None)
    log = SendLog()
    api = AiohttpSession(api=TelegramAPIServer.from_base(url))
    api.middleware(log)
    bot = Bot(TOKEN, session=api, default=DefaultBotProperties(parse_mode=ParseMode.HTML))
    yield Rig(emulator, bot, sessions, log)
    await bot.session.close()
    await emulator.stop()


async def test_messages_are_sent_in_order_then_removed(rig: Rig) -> None:
    for n in range(5):
        await rig.enqueue(ALICE, f"<b>Update {n}</b>")
    await rig.enqueue(BOB, "Hello Bob")
    keyboard = {"inline_keyboard": [[{"text": "Open", "callback_data": "oa:show:1"}]]}
    await rig.enqueue(CAROL, "With a button", keyboard)

    await rig.drain()

    assert rig.texts(ALICE) == [f"Update {n}" for n in range(5)]
    assert rig.texts(BOB) == ["Hello Bob"]
    [with_button] = rig.emulator.messages(CAROL)
    assert with_button.reply_markup == keyboard
    assert await rig.queue() == []


async def test_drain_once_reports_what_it_did(rig: Rig) -> None:
    await rig.enqueue(ALICE, "one")
    await rig.enqueue(ALICE, "two")
    await rig.enqueue(BOB, "three")
    report = await rig.sender().drain_once()
    # One message per chat per drain, so a chat's messages keep their order.
    assert (report.claimed, report.sent) == (2, 2)
    assert [m.text for m in await rig.queue()] == ["two"]


async def test_one_chat_is_paced_while_the_others_are_not_held_up(rig: Rig) -> None:
    rig.settings = make_settings(outbox_chat_interval=0.3)
    await rig.enqueue(ALICE, "first")
    await rig.enqueue(ALICE, "second")
    await rig.enqueue(BOB, "to Bob")
    await rig.enqueue(CAROL, "to Carol")

    await rig.drain()

    first, second = rig.log.times(ALICE)
    assert second - first >= 0.3
    assert max(rig.log.times(BOB) + rig.log.times(CAROL)) < second
    assert rig.texts(ALICE) == ["first", "second"]


async def test_groups_are_paced_per_minute(rig: Rig) -> None:
    rig.settings = make_settings(outbox_chat_interval=0, outbox_group_per_minute=150)
    await rig.enqueue(GROUP, "one")
    await rig.enqueue(GROUP, "two")
    await rig.drain()
    first, second = rig.log.times(GROUP)
    assert second - first >= 60 / 150


async def test_a_chat_never_seen_gets_its_pacing_row(rig: Rig) -> None:
    rig.emulator.add_group(-100777, "Configured only")
    await rig.enqueue(-100777, "hello")
    await rig.drain()
    async with rig.sessions() as session:
        chat = await session.get(Chat, -100777)
        assert chat is not None and chat.next_send_at is not None


async def test_a_429_delays_the_message_and_loses_nothing(rig: Rig) -> None:
    rig.emulator.fail_next("sendMessage", error_code=429, retry_after=1)
    await rig.enqueue(ALICE, "flooded")
    await rig.enqueue(BOB, "later")
    sender = rig.sender(idle_wait=0.02)

    report = await sender.drain_once()
    assert report.postponed == 1
    [flooded] = [m for m in await rig.queue() if m.chat_id == ALICE]
    assert flooded.attempts == 0 and flooded.lease_owner is None

    await rig.drain(sender)
    assert rig.texts(ALICE) == ["flooded"]
    assert rig.texts(BOB) == ["later"]
    first_try, retry = rig.log.times(ALICE)
    assert retry - first_try >= 1.0  # retry_after was honoured


async def test_a_blocked_chat_is_marked_and_its_queue_dropped(rig: Rig) -> None:
    rig.emulator.block(ALICE)
    for n in range(3):
        await rig.enqueue(ALICE, f"update {n}")
    await rig.enqueue(BOB, "still delivered")

    report = await rig.sender().drain_once()

    assert report.blocked_chats == 1 and report.dropped == 3
    assert [m.chat_id for m in await rig.queue()] == []
    assert rig.texts(BOB) == ["still delivered"]
    assert len(rig.log.times(ALICE)) == 1  # one 403 was enough
    async with rig.sessions() as session:
        chat = await people.get_chat(session, ALICE)
        assert chat is not None and chat.blocked and chat.blocked_at is not None


async def test_chat_not_found_drops_the_message(rig: Rig) -> None:
    await rig.enqueue(555, "nobody here")
    await rig.enqueue(BOB, "hi")
    report = await rig.sender().drain_once()
    assert (report.sent, report.dropped) == (1, 1)
    assert await rig.queue() == []


async def test_a_transient_error_is_retried_later(rig: Rig) -> None:
    rig.emulator.fail_next("sendMessage", error_code=502)
    await rig.enqueue(ALICE, "eventually")
    sender = rig.sender(idle_wait=0.02, retry_base=0.1)

    report = await sender.drain_once()
    assert report.postponed == 1
    [waiting] = await rig.queue()
    assert waiting.attempts == 1

    await rig.drain(sender)
    assert rig.texts(ALICE) == ["eventually"]


async def test_a_message_that_keeps_failing_is_given_up(rig: Rig) -> None:
    rig.emulator.fail_next("sendMessage", error_code=500, count=3)
    await rig.enqueue(ALICE, "doomed")
    await rig.drain(rig.sender(idle_wait=0.02, retry_base=0.01, max_attempts=3))
    assert rig.texts(ALICE) == []
    assert len(rig.log.times(ALICE)) == 3


async def test_notify_wakes_the_sender_at_once(rig: Rig) -> None:
    sender = rig.sender(idle_wait=60)  # only notify() can wake it within the test
    task = asyncio.create_task(sender.run_forever())
    try:
        await asyncio.sleep(0.05)  # asleep on an empty outbox
        await rig.enqueue(ALICE, "wake up")
        sender.notify()
        assert await rig.emulator.wait_until(lambda: bool(rig.texts(ALICE)), 5)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_two_senders_deliver_each_message_once(rig: Rig) -> None:
    for n in range(10):
        for chat_id in (ALICE, BOB, CAROL):
            await rig.enqueue(chat_id, f"{chat_id}-{n}")
    first, second = rig.sender(batch_size=2), rig.sender(batch_size=2)
    async with asyncio.timeout(10):
        while await rig.queue():
            await asyncio.gather(first.drain_once(), second.drain_once())
    for chat_id in (ALICE, BOB, CAROL):
        assert rig.texts(chat_id) == [f"{chat_id}-{n}" for n in range(10)]


class StallingTelegram:
    """A Telegram peer whose first sendMessage answers only after `stall` seconds."""

    def __init__(self, stall: float) -> None:
        self.stall = stall
        self.sends: list[float] = []  # when each sendMessage arrived (monotonic)
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._serve)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _serve(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.sends.append(time.monotonic())
        if len(self.sends) == 1:
            await asyncio.sleep(self.stall)
        message = {
            "message_id": len(self.sends),
            "date": int(time.time()),
            "chat": {"id": int(str(form["chat_id"])), "type": "private"},
            "text": str(form["text"]),
        }
        return web.json_response({"ok": True, "result": message})


async def test_a_slow_send_ends_before_the_lease_so_no_second_sender_repeats_it(
    sessions: Sessions,
) -> None:
    """The request timeout stays inside the lease: a send that stalls past it gives up (and
    counts as "may have been delivered") before another instance may claim the row."""
    lease = 3.0
    peer = StallingTelegram(stall=lease * 2)
    url = await peer.start()
    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(url)))
    settings = make_settings()
    first = OutboxSender(bot, sessions, settings, lease_seconds=lease, retry_base=60)
    second = OutboxSender(bot, sessions, settings, lease_seconds=lease, retry_base=60)
    try:
        async with sessions.begin() as session:
            await outbox.enqueue(session, ALICE, "slow")
        stalled = asyncio.create_task(first.drain_once())
        await asyncio.sleep(lease + 0.3)  # the first lease has run out by now
        report = await second.drain_once()
        first_report = await asyncio.wait_for(stalled, lease * 3)
    finally:
        await bot.session.close()
        await peer.stop()
    assert len(peer.sends) == 1, "a second sender re-sent a message still being sent"
    assert report.claimed == 0
    assert first_report.postponed == 1  # timed out: retried later, not dropped
    async with sessions() as session:
        [waiting] = await outbox.pending(session)
    assert waiting.attempts == 1 and waiting.lease_owner is None


async def test_a_stopping_sender_gives_its_claimed_messages_back_at_once(
    sessions: Sessions,
) -> None:
    """Cancelled mid-send (the instance stops), the sender releases its leases: the next
    sender takes the message now, not when the lease would have run out."""
    peer = StallingTelegram(stall=30)
    url = await peer.start()
    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(url)))
    settings = make_settings()
    first = OutboxSender(bot, sessions, settings, lease_seconds=60)
    try:
        async with sessions.begin() as session:
            await outbox.enqueue(session, ALICE, "interrupted")
        sending = asyncio.create_task(first.drain_once())
        await eventually(lambda: asyncio.sleep(0, bool(peer.sends)), 10)
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sending
        async with sessions() as session:
            [waiting] = await outbox.pending(session)
        assert waiting.lease_owner is None and waiting.lease_until is None
        async with sessions.begin() as session:
            [taken] = await outbox.claim_due(
                session, "next-sender", now=utcnow(), lease_seconds=60, limit=1
            )
        assert taken.id == waiting.id
    finally:
        await bot.session.close()
        await peer.stop()
