"""Admin business rules without Telegram: statistics, reconciliation, the low-balance alert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import admin
from bot.admin import Reconciliation, Settlement, Stats
from bot.config import Settings
from bot.i18n import create_i18n
from bot.ids import MAX_ID, parse_id
from bot.panel.errors import PanelUnavailable
from bot.panel.models import Balance
from storage import orders, outbox
from storage.models import Order, SubmissionState
from tests.factories import add_orders, make_settings, remember_customer

Sessions = async_sessionmaker[AsyncSession]
NOW = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)
CUSTOMER = 42
I18N = create_i18n("en")


async def add_order(
    session: AsyncSession,
    *,
    state: SubmissionState = SubmissionState.PLACED,
    price: str = "1.00",
    placed_at: datetime | None = NOW,
    status: str | None = None,
    panel_order_id: int | None = None,
    currency: str = "USD",
) -> Order:
    """One of the customer's orders; only a placed one keeps its `placed_at`."""
    await remember_customer(session, CUSTOMER)
    [order] = await add_orders(
        session,
        [panel_order_id],
        chat_id=CUSTOMER,
        price=Decimal(price),
        currency=currency,
        state=state,
        status=status,
        placed_at=placed_at if state == SubmissionState.PLACED else None,
    )
    return order


# --- statistics ---------------------------------------------------------------------------------


async def test_spending_is_summed_exactly_by_when_orders_were_placed(sessions: Sessions) -> None:
    async with sessions.begin() as session:
        await add_order(session, price="0.1", placed_at=NOW - timedelta(hours=1), status="Pending")
        await add_order(session, price="0.2", placed_at=NOW - timedelta(hours=2), status="Pending")
        await add_order(session, price="0.00001", placed_at=NOW.replace(hour=0, minute=1))
        await add_order(session, price="1.25", placed_at=NOW - timedelta(days=3))
        await add_order(session, price="10", placed_at=NOW - timedelta(days=20))
        await add_order(session, price="99", placed_at=NOW - timedelta(days=45))
        await add_order(session, price="2.5", placed_at=NOW - timedelta(days=2), currency="EUR")
        await add_order(session, state=SubmissionState.FAILED, price="500")
        await add_order(session, state=SubmissionState.UNKNOWN, price="7")
        await add_order(session, state=SubmissionState.UNKNOWN, price="8")

    stats = await Stats(sessions, FakePanel("0"), settings()).collect(NOW)  # type: ignore[arg-type]

    assert stats.spent_today == {"USD": Decimal("0.30001")}
    assert stats.spent_week == {"USD": Decimal("1.55001"), "EUR": Decimal("2.5")}
    assert stats.spent_month == {"USD": Decimal("11.55001"), "EUR": Decimal("2.5")}
    assert all(isinstance(v, Decimal) for v in stats.spent_month.values())
    assert stats.by_state == {"placed": 7, "failed": 1, "unknown": 2}
    assert stats.by_status == {"Pending": 2, "": 5}
    assert stats.awaiting_reconciliation == 2
    assert stats.queued_messages == 0


async def test_stats_of_an_empty_bot(sessions: Sessions) -> None:
    stats = await Stats(sessions, FakePanel("0"), settings()).collect(NOW)  # type: ignore[arg-type]
    assert stats.by_state == {} and stats.spent_month == {} and stats.awaiting_reconciliation == 0


# --- reconciliation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("23501", 23501),
        (" #23501 ", 23501),
        ("0", None),
        ("-5", None),
        ("12a", None),
        ("١٢٣", None),  # digits, but not ASCII ones
        ("", None),
        (None, None),
        (str(2**63), None),
        (str(MAX_ID - 1), MAX_ID - 1),
        (str(MAX_ID), None),
        ("9" * 5000, None),
    ],
)
def test_an_id_is_a_positive_whole_number(typed: str | None, expected: int | None) -> None:
    assert parse_id(typed) == expected


def reconciliation(sessions: Sessions) -> Reconciliation:
    return Reconciliation(sessions, settings(), I18N)


async def test_marking_an_unknown_order_placed_starts_polling_it(sessions: Sessions) -> None:
    async with sessions.begin() as session:
        order_id = (await add_order(session, state=SubmissionState.UNKNOWN)).id

    outcome = await reconciliation(sessions).mark_placed(order_id, 23501, admin_id=1)
    assert outcome is Settlement.DONE

    async with sessions() as session:
        order = await orders.get_order(session, order_id)
        assert order is not None
        assert order.state == SubmissionState.PLACED and order.panel_order_id == 23501
        assert order.poll_active and order.next_poll_at is not None
        assert order.placed_at is not None and order.decided_by == 1
        [notice] = await outbox.pending(session)
        assert notice.chat_id == CUSTOMER and "23501" in notice.text

    again = await reconciliation(sessions).mark_placed(order_id, 23502, admin_id=1)
    assert again is Settlement.ALREADY_SETTLED


async def test_a_panel_order_id_cannot_be_used_twice(sessions: Sessions) -> None:
    async with sessions.begin() as session:
        await add_order(session, panel_order_id=23501)
        order_id = (await add_order(session, state=SubmissionState.UNKNOWN)).id

    outcome = await reconciliation(sessions).mark_placed(order_id, 23501, admin_id=1)
    assert outcome is Settlement.ID_IN_USE
    async with sessions() as session:
        order = await orders.get_order(session, order_id)
        assert order is not None and order.state == SubmissionState.UNKNOWN


async def test_marking_an_unknown_order_failed_tells_its_chat(sessions: Sessions) -> None:
    async with sessions.begin() as session:
        order_id = (await add_order(session, state=SubmissionState.UNKNOWN)).id

    outcome = await reconciliation(sessions).mark_failed(order_id, admin_id=1)
    assert outcome is Settlement.DONE
    again = await reconciliation(sessions).mark_failed(order_id, admin_id=1)
    assert again is Settlement.ALREADY_SETTLED

    async with sessions() as session:
        order = await orders.get_order(session, order_id)
        assert order is not None and order.state == SubmissionState.FAILED
        assert len(await outbox.pending(session, CUSTOMER)) == 1


async def test_only_unknown_orders_are_listed_for_reconciliation(sessions: Sessions) -> None:
    async with sessions.begin() as session:
        await add_order(session)
        unknown = [(await add_order(session, state=SubmissionState.UNKNOWN)).id for _ in range(3)]
    found, total = await reconciliation(sessions).unknown_orders(limit=2)
    assert [order.id for order in found] == unknown[:2] and total == 3


# --- low balance --------------------------------------------------------------------------------


class FakePanel:
    def __init__(self, balance: str) -> None:
        self.balance_value = Decimal(balance)
        self.down = False

    async def balance(self) -> Balance:
        if self.down:
            raise PanelUnavailable("timeout", action="balance")
        return Balance(balance=self.balance_value, currency="USD")


# One admin, alerted when the panel's balance falls below 5.
settings = partial(make_settings, bot_token="1:x", admin_ids=[7], low_balance_alert=Decimal("5"))


async def check(sessions: Sessions, panel: FakePanel, config: Settings | None = None) -> int:
    return await admin.check_low_balance(
        sessions,
        panel,  # type: ignore[arg-type]
        config or settings(),
        I18N,
    )


async def test_the_threshold_itself_neither_alerts_nor_clears(sessions: Sessions) -> None:
    panel = FakePanel("5")
    assert await check(sessions, panel) == 0
    panel.balance_value = Decimal("4.99999")
    assert await check(sessions, panel) == 1
    panel.balance_value = Decimal("5")
    assert await check(sessions, panel) == 0  # not recovered *above* it yet
    panel.balance_value = Decimal("4")
    assert await check(sessions, panel) == 0
    panel.balance_value = Decimal("5.01")
    assert await check(sessions, panel) == 0
    panel.balance_value = Decimal("1")
    assert await check(sessions, panel) == 1


async def test_no_alert_without_a_threshold_or_admins(sessions: Sessions) -> None:
    panel = FakePanel("0")
    assert await check(sessions, panel, settings(low_balance_alert=None)) == 0
    assert await check(sessions, panel, settings(admin_ids=[])) == 0


async def test_an_unreachable_panel_raises_for_the_caller_to_log(sessions: Sessions) -> None:
    panel = FakePanel("0")
    panel.down = True
    with pytest.raises(PanelUnavailable):
        await check(sessions, panel)
