"""Webhook mode: updates posted with Telegram's secret token reach the same dispatcher."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.types import Chat, Message
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.app import create_bot, create_dispatcher, create_services
from bot.config import load_settings
from bot.ordering import DECISION
from bot.people import ACCESS_NOTICE
from bot.runner import ANSWER_WITHIN, WEBHOOK_PATH, UpdateHandler, create_webhook_app
from handlers.callbacks import Approval
from playground.sandbox import SandboxPanel
from playground.telegram import TelegramEmulator
from playground.telegram.recording import BOT_USER
from storage import outbox, people
from storage.models import Order, OutboxMessage, SubmissionState
from tests.rig import ADMIN, ALICE, BOB, Rig, last_menu, sent_messages
from tests.test_handlers_summary import summary_of

TOKEN = "424242:WEBHOOK"
SECRET = "s3cret"
SECRET_HEADER = {"X-Telegram-Bot-Api-Secret-Token": SECRET}


def start_update(update_id: int, user_id: int) -> dict[str, object]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1_700_000_000,
            "chat": {"id": user_id, "type": "private", "first_name": "Web"},
            "from": {"id": user_id, "is_bot": False, "first_name": "Web"},
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }


async def test_webhook_checks_the_secret_and_answers(tmp_path: Path) -> None:
    emulator = TelegramEmulator(token=TOKEN)
    telegram_url = await emulator.start()
    emulator.user(5150, first_name="Web")  # the chat exists on the Telegram side
    sandbox = SandboxPanel()
    panel_url = await sandbox.start()
    settings = load_settings(
        bot_token=TOKEN,
        telegram_api_url=telegram_url,
        panel_api_url=panel_url,
        panel_api_key=sandbox.api_key,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'w.db'}",
    )
    services = await create_services(settings)
    bot = create_bot(settings)
    app = create_webhook_app(bot, create_dispatcher(services), secret="s3cret")
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        refused = await client.post(WEBHOOK_PATH, json=start_update(1, 5150))
        assert refused.status == 401
        accepted = await client.post(
            WEBHOOK_PATH,
            json=start_update(2, 5150),
            headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret"},
        )
        assert accepted.status == 200
        await emulator.wait_until(
            lambda: any("Hello, Web" in m.text for m in emulator.messages(5150)), 10
        )
    finally:
        await client.close()
        await services.close()
        await bot.session.close()
        await sandbox.stop()
        await emulator.stop()


# --- answered only once handled, at most UPDATE_CONCURRENCY at once ----------------------------


def bare_handler(
    dispatcher: Dispatcher, *, concurrency: int, answer_within: float = ANSWER_WITHIN
) -> web.Application:
    app = web.Application()
    handler = UpdateHandler(
        dispatcher,
        Bot(TOKEN),  # never called: the handlers below answer nothing
        secret_token=SECRET,
        concurrency=concurrency,
        answer_within=answer_within,
    )
    handler.register(app, path=WEBHOOK_PATH)
    return app


class Gate:
    """A message handler that waits until the test opens the gate, counting who is inside."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.inside = 0
        self.most_inside = 0
        self.entered: list[int] = []
        self.handled: list[int] = []
        self.someone_waits = asyncio.Event()

    async def enter(self, message: Message) -> None:
        self.entered.append(message.message_id)
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        self.someone_waits.set()
        try:
            await self.open.wait()
        finally:
            self.inside -= 1
        self.handled.append(message.message_id)


def gated_dispatcher(gate: Gate) -> Dispatcher:
    dispatcher = Dispatcher()
    dispatcher.message.register(gate.enter)
    return dispatcher


async def post(client: TestClient, update: dict[str, object]) -> int:
    answer = await client.post(WEBHOOK_PATH, json=update, headers=SECRET_HEADER)
    return answer.status


async def test_telegram_is_answered_only_after_the_update_was_handled() -> None:
    gate = Gate()
    client = TestClient(TestServer(bare_handler(gated_dispatcher(gate), concurrency=4)))
    await client.start_server()
    try:
        answering = asyncio.create_task(post(client, start_update(1, 5150)))
        await gate.someone_waits.wait()
        await asyncio.sleep(0.05)  # time enough for an early answer, were there one
        assert not answering.done()
        gate.open.set()
        assert await answering == 200
        assert gate.handled == [1]
    finally:
        await client.close()


async def test_no_more_updates_are_handled_at_once_than_the_concurrency() -> None:
    gate = Gate()
    client = TestClient(TestServer(bare_handler(gated_dispatcher(gate), concurrency=2)))
    await client.start_server()
    try:
        posts = [asyncio.create_task(post(client, start_update(n, 5150 + n))) for n in range(5)]
        while len(gate.entered) < 2:
            await gate.someone_waits.wait()
            gate.someone_waits.clear()
        await asyncio.sleep(0.05)  # a third would have entered by now, were there room
        assert len(gate.entered) == 2
        gate.open.set()
        assert await asyncio.gather(*posts) == [200] * 5
    finally:
        await client.close()
    assert sorted(gate.handled) == [0, 1, 2, 3, 4]
    assert gate.most_inside == 2


async def test_an_update_that_finds_no_free_slot_in_time_is_left_for_telegram_to_resend() -> None:
    """Within the answer bound: the one that waited for a slot is refused unhandled (503, so
    Telegram sends it again); the one still running is acknowledged and finishes after."""
    gate = Gate()
    app = bare_handler(gated_dispatcher(gate), concurrency=1, answer_within=0.3)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        running = asyncio.create_task(post(client, start_update(1, 5150)))
        await gate.someone_waits.wait()
        assert await post(client, start_update(2, 5151)) == 503
        assert await running == 200  # acknowledged past the bound, still in its handler
        assert gate.handled == []
        gate.open.set()
    finally:
        await client.close()  # lets the update in hand finish first
    assert gate.entered == [1] and gate.handled == [1]


async def test_an_update_whose_handler_fails_is_left_for_telegram_to_resend() -> None:
    dispatcher = Dispatcher()

    async def broken(message: Message) -> None:
        raise RuntimeError("bug")

    dispatcher.message.register(broken)
    client = TestClient(TestServer(bare_handler(dispatcher, concurrency=1)))
    await client.start_server()
    try:
        assert await post(client, start_update(1, 5150)) == 500
    finally:
        await client.close()


# --- the same update delivered twice: one effect ----------------------------------------------


@dataclass
class WebhookRig(Rig):
    """The in-process rig, its updates posted to the webhook (`deliveries` times each, as
    Telegram does when it did not get the first answer)."""

    client: TestClient | None = None
    deliveries: int = 1

    async def _feed(self, fields: dict[str, Any]) -> list[Any]:
        assert self.client is not None
        before = len(self.session.requests)
        raw = {"update_id": next(self._ids), **fields}
        body = json.dumps(raw, default=_wire)
        for _ in range(self.deliveries):
            answer = await self.client.post(
                WEBHOOK_PATH,
                data=body,
                headers={**SECRET_HEADER, "Content-Type": "application/json"},
            )
            assert answer.status == 200
        return self.session.requests[before:]

    def adds(self) -> int:
        sandbox = self.services.sandbox
        assert sandbox is not None
        return sandbox.actions().count("add")

    async def orders(self) -> list[Order]:
        async with self.services.sessions() as session:
            return list((await session.execute(select(Order).order_by(Order.id))).scalars())

    async def queued(self, chat_id: int) -> list[OutboxMessage]:
        async with self.services.sessions() as session:
            return list(await outbox.pending(session, chat_id))


def _wire(value: object) -> object:
    if isinstance(value, datetime):
        return int(value.timestamp())
    raise TypeError(type(value).__name__)


StartRig = Callable[..., Awaitable[WebhookRig]]


@pytest.fixture
async def webhook_rig(tmp_path: Path) -> AsyncIterator[StartRig]:
    started: list[WebhookRig] = []

    async def start(**overrides: Any) -> WebhookRig:
        rig = await WebhookRig.start(tmp_path, **overrides)
        assert isinstance(rig, WebhookRig)
        app = web.Application()  # no setup_application: no poller, no outbox sender
        handler = UpdateHandler(rig.dispatcher, rig.bot, secret_token=SECRET, concurrency=8)
        handler.register(app, path=WEBHOOK_PATH)
        rig.client = TestClient(TestServer(app))
        await rig.client.start_server()
        started.append(rig)
        return rig

    yield start
    for rig in started:
        if rig.client is not None:
            await rig.client.close()
        await rig.stop()


async def test_a_confirm_delivered_twice_places_one_order(webhook_rig: StartRig) -> None:
    rig = await webhook_rig()
    summary = await summary_of(rig)
    rig.deliveries = 2
    answers = await rig.press(ALICE, summary, "Confirm")
    assert rig.adds() == 1
    [order] = await rig.orders()
    assert order.state == SubmissionState.PLACED
    shown = " ".join(message.text or "" for message in sent_messages(answers))
    assert shown.count(f"Order ID: <b>{order.panel_order_id}</b>") == 1


async def test_an_approval_delivered_twice_places_the_order_once(webhook_rig: StartRig) -> None:
    rig = await webhook_rig(max_order_price="0.01")
    summary = await summary_of(rig)
    await rig.press(ALICE, summary, "Confirm")
    [waiting] = await rig.orders()
    assert waiting.state == SubmissionState.AWAITING_APPROVAL and rig.adds() == 0
    request = Message(
        message_id=9001,
        date=datetime.now(UTC),
        chat=Chat(id=ADMIN, type="private"),
        from_user=BOT_USER,
        text="approve?",
    )
    rig.deliveries = 2
    answers = await rig.press_data(ADMIN, request, Approval(approve=True, order=waiting.id).pack())
    assert rig.adds() == 1
    [order] = await rig.orders()
    assert order.state == SubmissionState.PLACED
    screens = [message.text or "" for message in sent_messages(answers)]
    assert any("Approved by" in text for text in screens)
    assert any("Already decided" in text for text in screens)  # the second delivery
    decisions = [m for m in await rig.queued(ALICE) if m.kind == DECISION]
    assert len(decisions) == 1  # the customer is told once


async def test_allow_delivered_twice_allows_once(webhook_rig: StartRig) -> None:
    rig = await webhook_rig()
    rig.deliveries = 2
    answers = await rig.send(ADMIN, "/allow 4242")
    assert len(sent_messages(answers)) == 2  # each delivery is answered; nothing else repeats
    async with rig.services.sessions() as session:
        user = await people.get_user(session, 4242)
    assert user is not None and user.access is True


async def test_allow_delivered_twice_tells_the_user_once(webhook_rig: StartRig) -> None:
    rig = await webhook_rig()
    rig.deliveries = 2
    await rig.send(ADMIN, "/allow 4242")
    notices = [m for m in await rig.queued(4242) if m.kind == ACCESS_NOTICE]
    assert len(notices) == 1


async def test_an_access_request_delivered_twice_reaches_the_admins_once(
    webhook_rig: StartRig,
) -> None:
    rig = await webhook_rig(allowed_user_ids=[])
    refusal = last_menu(await rig.send(BOB, "/order"))
    rig.deliveries = 2
    await rig.press(BOB, refusal, "Ask for access")
    requests = [m for m in await rig.queued(ADMIN) if m.kind == ACCESS_NOTICE]
    assert len(requests) == 1
