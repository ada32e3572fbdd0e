"""The status poller against the sandbox panel over real HTTP and a migrated database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.i18n import create_i18n
from bot.outbox import OutboxSender
from bot.panel.client import PanelClient
from bot.panel.models import OrderStatusResult
from bot.poller import Poller
from bot.status import poll_interval_for, record_status
from playground.sandbox import SandboxPanel
from playground.telegram import TelegramEmulator
from storage import kv, orders, outbox, people
from storage.db import create_engine, create_session_factory, utcnow
from storage.models import Order, OutboxMessage, Refill, SubmissionState
from tests.factories import FAST_OUTBOX, add_orders, make_settings, remember_customer
from tests.test_outbox import eventually

OWNER = 100  # the customer: a private chat, chat id == user id
TEAM = -100200  # NOTIFY_CHAT_IDS
OPS = -100300  # a group that chose /notify_here
STEP = 10.0  # sandbox seconds per stage: Pending → In progress → Completed
TOKEN = "123456:TEST-token"

Sessions = async_sessionmaker[AsyncSession]


# How these tests poll: every 0.05 s at first, slower with age as by default, with notify chats.
POLLING: dict[str, Any] = {
    "bot_token": TOKEN,
    "poll_interval": 0.05,
    "poll_aging": "6h=300,24h=900,72h=3600",
    "notify_chat_ids": [TEAM, OWNER],  # the ordering chat must not get a second copy
    **FAST_OUTBOX,
}


@dataclass
class Rig:
    sandbox: SandboxPanel
    panel: PanelClient
    sessions: Sessions
    settings: Settings

    def poller(self, **overrides: Any) -> Poller:
        arguments: dict[str, Any] = {
            "settings": self.settings,
            "sessions": self.sessions,
            "panel": self.panel,
            "i18n": create_i18n("en"),
        }
        return Poller(**{**arguments, **overrides})

    def panel_order(self, quantity: int = 1000) -> int:
        """An order placed on the sandbox directly (no HTTP: the setup is not under test)."""
        answer = self.sandbox.handle(
            {
                "key": self.sandbox.api_key,
                "action": "add",
                "service": "1448",
                "link": "https://instagram.com/someone",
                "quantity": str(quantity),
            }
        )
        return int(answer["order"])


@pytest.fixture
async def rig(sessions: Sessions) -> AsyncIterator[Rig]:
    sandbox = SandboxPanel(
        partial_every=0, reject_every=0, step_seconds=STEP, balance=Decimal("10000")
    )
    url = await sandbox.start()
    sandbox.speed_up(0)  # simulated time moves only when a test advances it
    panel = PanelClient(url, sandbox.api_key, max_rps=1000, retries=0)
    settings = make_settings(**POLLING)
    async with sessions.begin() as session:
        await people.remember_chat(session, OPS, "supergroup", "Ops")
        await people.set_chat_notify(session, OPS, True)
    yield Rig(sandbox, panel, sessions, settings)
    await panel.close()
    await sandbox.stop()


async def add_due_orders(
    sessions: Sessions,
    panel_ids: Sequence[int],
    *,
    chat_id: int = OWNER,
    placed_at: datetime | None = None,
    status: str = "Pending",
) -> list[int]:
    """Placed orders as the ordering code records them, due for polling now."""
    now = utcnow()
    async with sessions.begin() as session:
        await remember_customer(session, chat_id, abs(chat_id))
        rows = await add_orders(
            session,
            panel_ids,
            chat_id=chat_id,
            user_id=abs(chat_id),
            service_name="Mga Tagasubaybay <sa> Instagram",
            status=status,
            poll_active=True,
            next_poll_at=now,
            placed_at=placed_at or now,
        )
        return [row.id for row in rows]


async def queued(sessions: Sessions) -> list[OutboxMessage]:
    async with sessions() as session:
        return list(await outbox.pending(session))


async def load(sessions: Sessions, order_id: int) -> Order:
    async with sessions() as session:
        order = await orders.get_order(session, order_id)
        assert order is not None
        return order


async def make_due(sessions: Sessions) -> None:
    """Skip the wait until the next poll (the interval is not what these tests are about)."""
    async with sessions.begin() as session:
        await session.execute(update(Order).values(next_poll_at=utcnow()))
        await session.execute(update(Refill).values(next_poll_at=utcnow()))


# --- status changes and their messages ----------------------------------------------------------


async def test_status_change_writes_one_message_for_the_ordering_chat(rig: Rig) -> None:
    panel_id = rig.panel_order()
    [order_id] = await add_due_orders(rig.sessions, [panel_id])
    poller = rig.poller()

    report = await poller.poll_once()  # still Pending: nothing to say
    assert (report.orders_polled, report.changes, report.messages) == (1, 0, 0)
    assert await queued(rig.sessions) == []

    rig.sandbox.advance(STEP * 1.5)
    await make_due(rig.sessions)
    report = await poller.poll_once()
    assert (report.changes, report.messages) == (1, 1)
    [message] = await queued(rig.sessions)
    assert message.chat_id == OWNER
    assert str(panel_id) in message.text and "In progress" in message.text
    assert "&lt;sa&gt;" in message.text  # the service name is escaped
    order = await load(rig.sessions, order_id)
    assert order.status == "In progress" and order.poll_active
    assert order.start_count is not None and order.remains is not None
    assert order.lease_owner is None and order.lease_until is None


async def test_completion_is_also_sent_to_every_notify_chat_once(rig: Rig) -> None:
    panel_id = rig.panel_order()
    [order_id] = await add_due_orders(rig.sessions, [panel_id])
    rig.sandbox.advance(STEP * 3)

    report = await rig.poller().poll_once()

    messages = await queued(rig.sessions)
    assert sorted(m.chat_id for m in messages) == sorted([OWNER, TEAM, OPS])
    assert report.messages == 3
    for message in messages:
        assert str(panel_id) in message.text and "Completed" in message.text
        assert "0.90 USD" in message.text  # the charge, through format_money
    order = await load(rig.sessions, order_id)
    assert order.status == "Completed" and not order.poll_active
    assert order.charge == Decimal("0.90") and order.remains == 0

    await make_due(rig.sessions)
    assert (await rig.poller().poll_once()).orders_polled == 0  # terminal: no longer polled


async def test_blocked_chats_are_not_written_to(rig: Rig) -> None:
    async with rig.sessions.begin() as session:
        await people.mark_chat_blocked(session, OPS)
    await add_due_orders(rig.sessions, [rig.panel_order()])
    rig.sandbox.advance(STEP * 3)
    await rig.poller().poll_once()
    assert sorted(m.chat_id for m in await queued(rig.sessions)) == sorted([OWNER, TEAM])


async def test_status_and_messages_are_one_transaction(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    panel_id = rig.panel_order()
    [order_id] = await add_due_orders(rig.sessions, [panel_id])
    rig.sandbox.advance(STEP * 3)
    real_enqueue = outbox.enqueue
    calls = 0

    async def enqueue_then_fail(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls >= 2:  # every write after the first message fails, the retries' too
            raise RuntimeError("the database went away half way")
        await real_enqueue(*args, **kwargs)

    monkeypatch.setattr(outbox, "enqueue", enqueue_then_fail)
    await rig.poller().poll_once()
    assert calls >= 3  # the batch, then the order alone: both rolled back
    assert await queued(rig.sessions) == []
    assert (await load(rig.sessions, order_id)).status == "Pending"  # rolled back with them

    monkeypatch.setattr(outbox, "enqueue", real_enqueue)
    await make_due(rig.sessions)
    await rig.poller().poll_once()
    assert len(await queued(rig.sessions)) == 3
    assert (await load(rig.sessions, order_id)).status == "Completed"


async def test_messages_are_in_each_chats_language(rig: Rig) -> None:
    await add_due_orders(rig.sessions, [rig.panel_order()])
    async with rig.sessions.begin() as session:
        await people.set_user_language(session, OWNER, "fil")
    rig.sandbox.advance(STEP * 3)

    await rig.poller().poll_once()

    texts = {m.chat_id: m.text for m in await queued(rig.sessions)}
    # Filipino, with the panel's own word kept beside the translation.
    assert "Serbisyo" in texts[OWNER] and "Tapos na (Completed)" in texts[OWNER]
    # Groups get the default language.
    assert "Service" in texts[TEAM] and "Order #23501: Completed" in texts[TEAM]


# --- batching, missing orders, aging ------------------------------------------------------------


async def test_250_due_orders_take_three_status_calls(rig: Rig) -> None:
    panel_ids = [rig.panel_order() for _ in range(250)]
    await add_due_orders(rig.sessions, panel_ids)
    rig.sandbox.request_log.clear()

    report = await rig.poller().poll_once()

    assert rig.sandbox.actions().count("status") == 3
    assert (report.orders_polled, report.panel_calls) == (250, 3)
    asked = [set(r.params["orders"].split(",")) for r in rig.sandbox.request_log]
    assert set().union(*asked) == {str(i) for i in panel_ids}


async def test_incorrect_order_id_marks_the_order_missing_and_stops_polling(rig: Rig) -> None:
    [order_id] = await add_due_orders(rig.sessions, [999_999])

    report = await rig.poller().poll_once()

    assert report.missing == 1
    order = await load(rig.sessions, order_id)
    assert order.panel_missing and not order.poll_active
    await make_due(rig.sessions)
    rig.sandbox.request_log.clear()
    assert (await rig.poller().poll_once()).orders_polled == 0
    assert "status" not in rig.sandbox.actions()


def test_poll_interval_grows_with_the_orders_age() -> None:
    schedule = [(6 * 3600.0, 300.0), (24 * 3600.0, 900.0), (72 * 3600.0, 3600.0)]
    assert poll_interval_for(0, 60, schedule) == 60
    assert poll_interval_for(6 * 3600 - 1, 60, schedule) == 60
    assert poll_interval_for(6 * 3600, 60, schedule) == 300
    assert poll_interval_for(30 * 3600, 60, schedule) == 900
    assert poll_interval_for(100 * 3600, 60, schedule) == 3600


async def test_older_orders_are_polled_less_often(rig: Rig) -> None:
    now = utcnow()
    ages = {"new": timedelta(0), "7h": timedelta(hours=7), "30h": timedelta(hours=30)}
    ids = {
        name: (await add_due_orders(rig.sessions, [rig.panel_order()], placed_at=now - age))[0]
        for name, age in ages.items()
    }
    await rig.poller().poll_once()
    waits = {}
    for name, order_id in ids.items():
        order = await load(rig.sessions, order_id)
        assert order.next_poll_at is not None
        waits[name] = (order.next_poll_at - now).total_seconds()
    assert 0 < waits["new"] < 60
    assert 300 <= waits["7h"] < 360
    assert 900 <= waits["30h"] < 960


# --- panel outages and restarts -----------------------------------------------------------------


async def test_a_failed_status_call_backs_off_then_the_update_arrives(rig: Rig) -> None:
    [order_id] = await add_due_orders(rig.sessions, [rig.panel_order()])
    rig.sandbox.advance(STEP * 3)
    rig.sandbox.fail_next_http("status", 502)
    poller = rig.poller()

    report = await poller.poll_once()

    assert report.panel_failed and report.changes == 0
    order = await load(rig.sessions, order_id)
    assert order.status == "Pending" and order.lease_owner is None  # handed back at once
    interval = rig.settings.poll_interval
    assert [poller.wait_after(n) for n in range(6)] == pytest.approx(
        [interval, interval, 2 * interval, 4 * interval, 8 * interval, 10 * interval]
    )
    report = await poller.poll_once()
    assert not report.panel_failed and report.changes == 1
    assert len(await queued(rig.sessions)) == 3


async def test_the_loop_survives_a_panel_outage(rig: Rig) -> None:
    await add_due_orders(rig.sessions, [rig.panel_order()])
    rig.sandbox.advance(STEP * 3)
    url = rig.panel.api_url
    port = int(url.split(":")[-1].split("/")[0])
    await rig.sandbox.stop()  # connection refused from now on
    task = asyncio.create_task(rig.poller().run_forever())
    try:
        await asyncio.sleep(0.3)  # a few failed cycles, backing off
        assert await queued(rig.sessions) == []
        assert await rig.sandbox.start(port=port) == url
        rig.sandbox.speed_up(0)

        async def all_three_written() -> bool:
            return len(await queued(rig.sessions)) == 3

        await eventually(all_three_written, 5)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_restart_between_the_change_and_its_delivery_delivers_once(
    rig: Rig, database_url: str
) -> None:
    panel_id = rig.panel_order()
    await add_due_orders(rig.sessions, [panel_id])
    rig.sandbox.advance(STEP * 3)
    await rig.poller().poll_once()  # the change and its messages are stored; nothing sent yet

    # A new process: new engine, new poller, new sender.
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    emulator = TelegramEmulator(TOKEN)
    bot = Bot(
        TOKEN,
        session=AiohttpSession(api=TelegramAPIServer.from_base(await emulator.start())),
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )
    try:
        emulator.user(OWNER)
        emulator.add_group(TEAM, "Team")
        emulator.add_group(OPS, "Ops")
        await make_due(sessions)
        poller = Poller(
            settings=rig.settings, sessions=sessions, panel=rig.panel, i18n=create_i18n("en")
        )
        assert (await poller.poll_once()).messages == 0  # already stored: not repeated
        sender = OutboxSender(bot, sessions, rig.settings)
        while (await sender.drain_once()).claimed:
            pass
        for chat_id in (OWNER, TEAM, OPS):
            [message] = emulator.messages(chat_id)
            assert str(panel_id) in message.text and "Completed" in message.text
        assert await queued(sessions) == []
    finally:
        await bot.session.close()
        await emulator.stop()
        await engine.dispose()


async def test_two_pollers_announce_each_change_once(rig: Rig) -> None:
    panel_ids = [rig.panel_order() for _ in range(30)]
    await add_due_orders(rig.sessions, panel_ids)
    rig.sandbox.advance(STEP * 3)
    first, second = rig.poller(claim_size=7), rig.poller(claim_size=7)

    reports = await asyncio.gather(first.poll_once(), second.poll_once())

    assert sum(r.orders_polled for r in reports) == 30
    owner_messages = [m for m in await queued(rig.sessions) if m.chat_id == OWNER]
    assert len(owner_messages) == 30


async def test_an_owners_refresh_is_not_announced_again_by_the_poller(rig: Rig) -> None:
    panel_id = rig.panel_order()
    [order_id] = await add_due_orders(rig.sessions, [panel_id])
    rig.sandbox.advance(STEP * 3)
    answer = OrderStatusResult(order=panel_id, status="Completed", charge="0.9", remains=0)

    async with rig.sessions.begin() as session:
        order = await orders.get_order(session, order_id)
        assert order is not None
        changed = await record_status(
            session, rig.settings, order, answer, i18n=create_i18n("en"), announce_owner=False
        )
    assert changed
    assert sorted(m.chat_id for m in await queued(rig.sessions)) == sorted([TEAM, OPS])
    await make_due(rig.sessions)
    assert (await rig.poller().poll_once()).orders_polled == 0  # completed: nothing left to do


# --- refills and the balance --------------------------------------------------------------------


async def test_a_refill_status_change_is_announced_to_the_ordering_chat(rig: Rig) -> None:
    panel_id = rig.panel_order()
    [order_id] = await add_due_orders(rig.sessions, [panel_id], status="Completed")
    rig.sandbox.advance(STEP * 3)
    asked = {"key": rig.sandbox.api_key, "action": "refill", "order": str(panel_id)}
    panel_refill_id = int(rig.sandbox.handle(asked)["refill"])
    async with rig.sessions.begin() as session:
        refill = await orders.add_refill(session, order_id, panel_refill_id, utcnow())
    poller = rig.poller()
    await poller.poll_once()
    assert await queued(rig.sessions) == []  # still Pending

    rig.sandbox.advance(STEP * 3)
    await make_due(rig.sessions)
    report = await poller.poll_once()

    assert report.refills_polled == 1 and report.changes == 1
    [message] = await queued(rig.sessions)
    assert message.chat_id == OWNER and message.kind == "refill_status"
    assert str(panel_refill_id) in message.text and str(panel_id) in message.text
    assert "Completed" in message.text
    async with rig.sessions() as session:
        stored = await session.get(Refill, refill.id)
        assert stored is not None
        assert stored.status == "Completed" and not stored.poll_active


async def test_low_balance_alerts_each_admin_once_until_it_recovers(rig: Rig) -> None:
    rig.settings = make_settings(**POLLING, admin_ids=[7, 8], low_balance_alert=Decimal("50"))

    def poller() -> Poller:
        return rig.poller(balance_every=0)

    assert (await poller().poll_once()).messages == 0  # 10000 is fine
    rig.sandbox.set_balance(Decimal("12.5"))
    report = await poller().poll_once()
    assert report.low_balance_alert and report.messages == 2
    alerts = await queued(rig.sessions)
    assert sorted(m.chat_id for m in alerts) == [7, 8]
    assert all("12.50 USD" in m.text and "50.00 USD" in m.text for m in alerts)

    assert (await poller().poll_once()).messages == 0  # remembered, even by a new process
    rig.sandbox.set_balance(Decimal("60"))
    assert (await poller().poll_once()).messages == 0
    async with rig.sessions() as session:
        assert await kv.get_value(session, "low_balance_alerted") is None
    rig.sandbox.set_balance(Decimal("3"))
    assert (await poller().poll_once()).messages == 2  # a new fall: a new alert


class NumbersOnlyPanel:
    """A panel whose orders stay In progress while their remains go down."""

    def __init__(self, remains: int) -> None:
        self.remains = remains

    async def statuses(self, orders: Iterable[int]) -> dict[int, OrderStatusResult]:
        return {
            order: OrderStatusResult(
                order=order,
                status="In progress",
                charge=Decimal("0.90"),
                start_count=10,
                remains=self.remains,
                currency="USD",
            )
            for order in orders
        }

    async def refill_statuses(self, refills: Iterable[int]) -> dict[int, object]:
        return {}


async def test_moving_numbers_are_stored_in_one_batch_without_messages(rig: Rig) -> None:
    order_ids = await add_due_orders(rig.sessions, [1, 2, 3], status="In progress")
    panel = NumbersOnlyPanel(remains=400)
    poller = rig.poller(panel=panel)
    report = await poller.poll_once()
    assert (report.orders_polled, report.messages) == (3, 0)
    for order_id in order_ids:
        order = await load(rig.sessions, order_id)
        assert (order.remains, order.start_count, order.charge) == (400, 10, Decimal("0.90"))
        assert order.status == "In progress" and order.poll_active
        assert order.lease_owner is None and order.next_poll_at is not None
    panel.remains = 100
    await make_due(rig.sessions)
    await poller.poll_once()
    assert (await load(rig.sessions, order_ids[0])).remains == 100
    assert await queued(rig.sessions) == []


async def test_a_submission_interrupted_by_a_crash_becomes_unknown(rig: Rig) -> None:
    [stuck, fresh] = await add_due_orders(rig.sessions, [901, 902])
    long_ago = utcnow() - timedelta(hours=1)
    async with rig.sessions.begin() as session:
        await session.execute(
            update(Order)
            .where(Order.id == stuck)
            .values(state=SubmissionState.SUBMITTING, updated_at=long_ago)
        )
        await session.execute(
            update(Order).where(Order.id == fresh).values(state=SubmissionState.SUBMITTING)
        )
    await rig.poller().poll_once()
    assert (await load(rig.sessions, stuck)).state == SubmissionState.UNKNOWN
    assert (await load(rig.sessions, fresh)).state == SubmissionState.SUBMITTING  # still in flight


class HostileStatuses:
    """A panel whose status answers carry a number no column can hold, for one order only."""

    def __init__(self, bad: int) -> None:
        self.bad = bad

    async def statuses(self, orders: Iterable[int]) -> dict[int, OrderStatusResult]:
        # Built without validation: the parse refuses such a number (tests/test_panel_hostile).
        return {
            order: OrderStatusResult.model_construct(
                order=order,
                error=None,
                start_count=None,
                status="Completed",
                remains=10**20 if order == self.bad else 0,
                charge=Decimal("0.90"),
                currency="USD",
            )
            for order in orders
        }

    async def refill_statuses(self, refills: Iterable[int]) -> dict[int, object]:
        return {}


async def test_one_answer_the_database_cannot_hold_costs_only_its_own_order(rig: Rig) -> None:
    """The parse normally refuses such a number; the write is isolated all the same."""
    order_ids = await add_due_orders(rig.sessions, [7001, 7002, 7003])
    poller = rig.poller(panel=HostileStatuses(bad=7002))
    started = utcnow()
    report = await poller.poll_once()
    assert not report.panel_failed
    healthy = [await load(rig.sessions, order_id) for order_id in (order_ids[0], order_ids[2])]
    assert all(order.status == "Completed" and not order.poll_active for order in healthy)
    stuck = await load(rig.sessions, order_ids[1])
    assert stuck.status == "Pending" and stuck.lease_owner is None
    # Due again a poll interval later, not at once (no hot loop on a bad answer).
    assert stuck.next_poll_at is not None and stuck.next_poll_at > started
    assert len([m for m in await queued(rig.sessions) if m.chat_id == OWNER]) == 2


async def test_a_slow_status_call_keeps_its_orders_past_the_first_lease(rig: Rig) -> None:
    """The poller renews its leases while it waits for the panel: another poller finds nothing
    to take even after the first lease term, and the change is announced once."""
    [order_id] = await add_due_orders(rig.sessions, [rig.panel_order()])
    rig.sandbox.advance(STEP * 3)
    rig.sandbox.delay_next("status", 3.0)
    lease = 0.6
    slow, other = rig.poller(lease_seconds=lease), rig.poller(lease_seconds=lease)

    polling_slowly = asyncio.create_task(slow.poll_once())
    await asyncio.sleep(lease * 2)  # the first lease term is over; the call is not
    meanwhile = await other.poll_once()
    report = await polling_slowly

    assert meanwhile.orders_polled == 0
    assert report.orders_polled == 1 and report.changes == 1
    order = await load(rig.sessions, order_id)
    assert order.status == "Completed" and order.lease_owner is None
