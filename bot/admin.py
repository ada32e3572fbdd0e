"""What admins do, without Telegram: statistics, reconciling unknown orders, low-balance alerts.

`Stats` and `Reconciliation` are services: each method is one unit of work (a reconciliation
commits with the message that tells the order's chat).
"""

from __future__ import annotations

import enum
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import billing, notices
from bot.config import Settings
from bot.money import order_cost
from bot.notices import Translations
from bot.notify import Notifier
from bot.panel.client import PanelClient
from bot.panel.models import Balance
from storage import ledger, orders, outbox, polling
from storage.db import utcnow
from storage.models import LedgerKind, Order, SubmissionState

log = logging.getLogger(__name__)

LOW_BALANCE_FLAG = "low_balance_alerted"
LOW_BALANCE_ALERT = "low_balance"
RECONCILED = "reconciled"


# --- statistics ---------------------------------------------------------------------------------

Spend = dict[str, Decimal]  # currency → amount


@dataclass(frozen=True, slots=True)
class StatsReport:
    by_state: dict[str, int]
    by_status: dict[str, int]  # placed orders by the panel's status; "" = not checked yet
    spent_today: Spend  # since 00:00 UTC
    spent_week: Spend  # the last 7 × 24 hours
    spent_month: Spend  # the last 30 × 24 hours
    awaiting_reconciliation: int
    queued_messages: int  # outbox rows not yet accepted by Telegram
    reseller: ResellerReport | None = None  # BILLING=wallet only


@dataclass(frozen=True, slots=True)
class ResellerPeriod:
    """The shop's money over one period, in the shop currency unless said otherwise."""

    topups: Decimal  # Stars top-ups less Stars given back
    admin_credits: Decimal  # admins' credits less their debits
    revenue: Decimal  # order payments (and late payments) less order refunds
    panel_cost: Spend  # what the panel charged for the orders paid in the period (its currency)
    margin: Decimal  # revenue less the panel cost at EXCHANGE_RATE


@dataclass(frozen=True, slots=True)
class ResellerReport:
    currency: str
    today: ResellerPeriod
    week: ResellerPeriod
    month: ResellerPeriod
    owed: Decimal  # the sum of all wallets: what the owner owes the customers


class Stats:
    """Figures for admins: orders, spending, the queue, and the panel balance."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], panel: PanelClient, settings: Settings
    ) -> None:
        self._sessions = sessions
        self._panel = panel
        self._settings = settings

    async def collect(self, now: datetime | None = None) -> StatsReport:
        """Order counts and spending: what placed orders cost (`order_cost`), by when placed."""
        now = now or utcnow()
        day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        week_start = now - timedelta(days=7)
        async with self._sessions() as session:
            by_state = await orders.count_by_state(session)
            by_status = await orders.count_placed_by_status(session)
            placed = await orders.placed_since(session, now - timedelta(days=30))
            queued = await outbox.queue_length(session)
        today: Spend = defaultdict(Decimal)
        week: Spend = defaultdict(Decimal)
        month: Spend = defaultdict(Decimal)
        # Summed here, not in SQL: SQLite stores money as text, and its SUM would go through float.
        for placed_at, price, charge, currency in placed:
            cost = order_cost(price, charge)
            month[currency] += cost
            if placed_at >= week_start:
                week[currency] += cost
            if placed_at >= day_start:
                today[currency] += cost
        return StatsReport(
            by_state=by_state,
            by_status=by_status,
            spent_today=dict(today),
            spent_week=dict(week),
            spent_month=dict(month),
            awaiting_reconciliation=by_state.get(str(SubmissionState.UNKNOWN), 0),
            queued_messages=queued,
            reseller=await self._reseller(now) if self._settings.wallet_mode else None,
        )

    async def _reseller(self, now: datetime) -> ResellerReport:
        """The wallets' figures: by when each entry was booked (so a refund counts when it
        is given back, whenever its order was paid)."""
        currency = self._settings.shop_currency or ""
        day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        async with self._sessions() as session:
            today = await self._period(session, day_start, now, currency)
            week = await self._period(session, now - timedelta(days=7), now, currency)
            month = await self._period(session, now - timedelta(days=30), now, currency)
            owed = (await ledger.sum_of_wallets(session)).get(currency, Decimal(0))
        return ResellerReport(currency, today, week, month, owed)

    async def _period(
        self, session: AsyncSession, since: datetime, until: datetime, currency: str
    ) -> ResellerPeriod:
        sums = await ledger.sums_by_kind(session, since, until, currency)

        def total(*kinds: LedgerKind) -> Decimal:
            return sum((sums.get(kind, Decimal(0)) for kind in kinds), Decimal(0))

        # Entries are signed: payments are negative in the ledger, income here.
        revenue = -total(LedgerKind.CHARGE, LedgerKind.LATE_CHARGE, LedgerKind.REFUND)
        cost: Spend = defaultdict(Decimal)
        for price, charge, panel_currency in await ledger.charged_order_costs(
            session, since, until
        ):
            cost[panel_currency] += order_cost(price, charge)
        in_shop_currency = sum(cost.values(), Decimal(0)) * self._settings.exchange_rate
        return ResellerPeriod(
            topups=total(LedgerKind.TOPUP, LedgerKind.STARS_REFUND),
            admin_credits=total(LedgerKind.CREDIT, LedgerKind.DEBIT),
            revenue=revenue,
            panel_cost=dict(cost),
            margin=revenue - in_shop_currency,
        )

    async def balance(self) -> Balance:
        """The panel's balance (PanelError / PanelUnavailable for the caller to explain)."""
        balance = await self._panel.balance()
        if balance.currency:
            return balance
        return Balance(balance=balance.balance, currency=self._settings.currency)


# --- reconciliation of "unknown" orders -------------------------------------------------------


class Settlement(enum.StrEnum):
    DONE = "done"
    ALREADY_SETTLED = "already_settled"  # not unknown any more (another admin, another press)
    ID_IN_USE = "id_in_use"  # another order already has this panel id


class Reconciliation:
    """Settling orders whose `add` may or may not have reached the panel."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], settings: Settings, i18n: Translations
    ) -> None:
        self._sessions = sessions
        self._notifier = Notifier(settings, i18n)
        self._wallets = settings.wallet_mode

    async def unknown_orders(self, limit: int = 20) -> tuple[Sequence[Order], int]:
        """The oldest orders awaiting reconciliation, and how many there are in all."""
        state = str(SubmissionState.UNKNOWN)
        async with self._sessions() as session:
            total = await orders.count_in_state(session, state)
            return await orders.orders_in_state(session, state, limit=limit), total

    async def unsettled(self, order_id: int) -> Order | None:
        """The order if it still awaits reconciliation."""
        async with self._sessions() as session:
            order = await orders.get_order(session, order_id)
        return order if order is not None and order.state == SubmissionState.UNKNOWN else None

    async def mark_placed(
        self, order_id: int, panel_order_id: int, *, admin_id: int
    ) -> Settlement:
        """The admin found the order on the panel: record its id, start polling it now, and
        tell its chat — in one transaction."""
        async with self._sessions.begin() as session:
            order = await orders.get_order(session, order_id)
            if order is None or order.state != SubmissionState.UNKNOWN:
                return Settlement.ALREADY_SETTLED
            if await orders.order_with_panel_id(session, panel_order_id) is not None:
                return Settlement.ID_IN_USE
            try:
                # A savepoint: another admin may record the same panel id at this moment, and
                # the unique constraint's failure must not spoil the whole transaction.
                async with session.begin_nested():
                    moved = await orders.move_state(
                        session,
                        order_id,
                        expected=[SubmissionState.UNKNOWN],
                        to=SubmissionState.PLACED,
                        panel_order_id=panel_order_id,
                        # It went "unknown" when `add` was sent: that is when money was spent.
                        placed_at=order.placed_at or order.updated_at,
                        poll_active=True,
                        next_poll_at=utcnow(),
                        error=None,
                        decided_by=admin_id,
                    )
            except IntegrityError:
                return Settlement.ID_IN_USE
            if not moved:
                return Settlement.ALREADY_SETTLED
            await self._notifier.tell(
                session,
                [order.chat_id],
                lambda _: notices.order_confirmed_text(
                    _, order_id=order_id, panel_order_id=panel_order_id
                ),
                kind=RECONCILED,
            )
        log.info(
            "admin %d marked order %d placed as panel order %d", admin_id, order_id, panel_order_id
        )
        return Settlement.DONE

    async def mark_failed(self, order_id: int, *, admin_id: int) -> Settlement:
        """The admin found no such order on the panel: it failed, and its chat is told. In
        reseller mode the money it held goes back to the wallet in the same transaction (an
        order found placed keeps it)."""
        async with self._sessions.begin() as session:
            order = await orders.get_order(session, order_id)
            if order is None:
                return Settlement.ALREADY_SETTLED
            moved = await orders.move_state(
                session,
                order_id,
                expected=[SubmissionState.UNKNOWN],
                to=SubmissionState.FAILED,
                error="not found on the panel (checked by an admin)",
                decided_by=admin_id,
            )
            if not moved:
                return Settlement.ALREADY_SETTLED
            refund = await billing.refund_attempt(session, order) if self._wallets else None
            await self._notifier.tell(
                session,
                [order.chat_id],
                lambda _: _not_placed(order_id, refund, _),
                kind=RECONCILED,
            )
        log.info("admin %d marked order %d failed", admin_id, order_id)
        return Settlement.DONE


def _not_placed(order_id: int, refund: billing.Refund | None, _: notices.Translate) -> str:
    text = notices.order_not_placed_text(_, order_id=order_id)
    return text if refund is None else text + "\n" + notices.refund_line(refund, _)


# --- low balance --------------------------------------------------------------------------------


async def check_low_balance(
    sessions: async_sessionmaker[AsyncSession],
    panel: PanelClient,
    settings: Settings,
    i18n: Translations,
) -> int:
    """Alert every admin once when the balance falls below LOW_BALANCE_ALERT.

    A flag in the database remembers the alert across restarts; it is cleared once the balance
    is back above the threshold, so the next fall alerts again. Returns how many messages were
    written.
    """
    threshold = settings.low_balance_alert
    if threshold is None or not settings.admin_ids:
        return 0
    balance = await panel.balance()
    async with sessions.begin() as session:
        if balance.balance > threshold:
            await polling.lower_flag(session, LOW_BALANCE_FLAG)
            return 0
        if balance.balance == threshold or not await polling.raise_flag(
            session, LOW_BALANCE_FLAG, str(balance.balance)
        ):
            return 0
        currency = balance.currency or settings.currency
        written = await Notifier(settings, i18n).tell_admins(
            session,
            lambda _: notices.low_balance_text(
                _, balance=balance.balance, threshold=threshold, currency=currency
            ),
            kind=LOW_BALANCE_ALERT,
        )
    log.warning("panel balance %s is below the alert threshold %s", balance.balance, threshold)
    return written
