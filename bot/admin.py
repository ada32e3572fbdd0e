"""What admins do, without Telegram: statistics, reconciling unknown orders, low-balance alerts."""

from __future__ import annotations

import enum
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from bot import notices
from bot.config import Settings
from bot.notices import Translations
from bot.panel.client import PanelClient
from storage import orders, outbox, polling
from storage.db import utcnow
from storage.models import Order, SubmissionState

log = logging.getLogger(__name__)

LOW_BALANCE_FLAG = "low_balance_alerted"
LOW_BALANCE_ALERT = "low_balance"
RECONCILED = "reconciled"
MAX_PANEL_ORDER_ID = 2**63 - 1  # orders.panel_order_id is a BIGINT


# --- statistics ---------------------------------------------------------------------------------

Spend = dict[str, Decimal]  # currency → amount


@dataclass(frozen=True, slots=True)
class Stats:
    by_state: dict[str, int]
    by_status: dict[str, int]  # placed orders by the panel's status; "" = not checked yet
    spent_today: Spend  # since 00:00 UTC
    spent_week: Spend  # the last 7 × 24 hours
    spent_month: Spend  # the last 30 × 24 hours
    awaiting_reconciliation: int
    queued_messages: int  # outbox rows not yet accepted by Telegram


async def collect_stats(session: AsyncSession, now: datetime | None = None) -> Stats:
    """Order counts and spending: the sum of the prices of placed orders, by when placed."""
    now = now or utcnow()
    by_state = await _count_by(session, Order.state)
    by_status = await _count_by(session, Order.status, Order.state == str(SubmissionState.PLACED))
    month_start = now - timedelta(days=30)
    week_start = now - timedelta(days=7)
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    rows = await session.execute(
        select(Order.placed_at, Order.price, Order.currency).where(
            Order.state == str(SubmissionState.PLACED), Order.placed_at >= month_start
        )
    )
    today: Spend = defaultdict(Decimal)
    week: Spend = defaultdict(Decimal)
    month: Spend = defaultdict(Decimal)
    # Summed here, not in SQL: SQLite stores money as text, and its SUM would go through float.
    for placed_at, price, currency in rows:
        if placed_at is None:  # excluded by the query; for the type checker
            continue
        month[currency] += price
        if placed_at >= week_start:
            week[currency] += price
        if placed_at >= day_start:
            today[currency] += price
    return Stats(
        by_state=by_state,
        by_status=by_status,
        spent_today=dict(today),
        spent_week=dict(week),
        spent_month=dict(month),
        awaiting_reconciliation=by_state.get(str(SubmissionState.UNKNOWN), 0),
        queued_messages=await outbox.queue_length(session),
    )


async def _count_by(
    session: AsyncSession, column: InstrumentedAttribute[Any], *where: ColumnElement[bool]
) -> dict[str, int]:
    rows = await session.execute(
        select(column, func.count()).select_from(Order).where(*where).group_by(column)
    )
    return {str(value or ""): int(count) for value, count in rows}


# --- reconciliation of "unknown" orders -------------------------------------------------------


class Reconciliation(enum.StrEnum):
    DONE = "done"
    ALREADY_SETTLED = "already_settled"  # not unknown any more (another admin, another press)
    ID_IN_USE = "id_in_use"  # another order already has this panel id


def parse_panel_order_id(text: str | None) -> int | None:
    """A panel order id typed by an admin: a positive whole number, else None."""
    candidate = (text or "").strip().lstrip("#")
    if not candidate.isascii() or not candidate.isdigit():
        return None
    number = int(candidate)
    return number if 0 < number <= MAX_PANEL_ORDER_ID else None


async def unknown_orders(session: AsyncSession, limit: int = 20) -> tuple[Sequence[Order], int]:
    """The oldest orders awaiting reconciliation, and how many there are in all."""
    state = str(SubmissionState.UNKNOWN)
    total = await session.scalar(
        select(func.count()).select_from(Order).where(Order.state == state)
    )
    return await orders.orders_in_state(session, state, limit=limit), int(total or 0)


async def order_with_panel_id(session: AsyncSession, panel_order_id: int) -> int | None:
    """The local id of the order recorded with this panel id, if any."""
    return await session.scalar(select(Order.id).where(Order.panel_order_id == panel_order_id))


async def mark_placed(
    session: AsyncSession,
    order_id: int,
    panel_order_id: int,
    *,
    admin_id: int,
    i18n: Translations,
    default_language: str,
) -> Reconciliation:
    """The admin found the order on the panel: record its id and start polling it now."""
    order = await orders.get_order(session, order_id)
    if order is None or order.state != SubmissionState.UNKNOWN:
        return Reconciliation.ALREADY_SETTLED
    if await order_with_panel_id(session, panel_order_id) is not None:
        return Reconciliation.ID_IN_USE
    now = utcnow()
    try:
        moved = await orders.move_state(
            session,
            order_id,
            expected=[SubmissionState.UNKNOWN],
            to=SubmissionState.PLACED,
            panel_order_id=panel_order_id,
            # The order went "unknown" when `add` was sent: that is when the money was spent.
            placed_at=order.placed_at or order.updated_at,
            poll_active=True,
            next_poll_at=now,
            error=None,
            decided_by=admin_id,
        )
    except IntegrityError:
        # Another admin recorded the same panel id a moment ago (the unique constraint caught
        # it); the failed statement spoiled the transaction, so start a clean one.
        await session.rollback()
        return Reconciliation.ID_IN_USE
    if not moved:
        return Reconciliation.ALREADY_SETTLED
    _ = await _chat_translator(session, order.chat_id, i18n, default_language)
    text = notices.order_confirmed_text(_, order_id=order_id, panel_order_id=panel_order_id)
    await outbox.enqueue(session, order.chat_id, text, kind=RECONCILED)
    log.info(
        "admin %d marked order %d placed as panel order %d", admin_id, order_id, panel_order_id
    )
    return Reconciliation.DONE


async def mark_failed(
    session: AsyncSession,
    order_id: int,
    *,
    admin_id: int,
    i18n: Translations,
    default_language: str,
) -> Reconciliation:
    """The admin found no such order on the panel: it failed, and its chat is told."""
    order = await orders.get_order(session, order_id)
    if order is None:
        return Reconciliation.ALREADY_SETTLED
    moved = await orders.move_state(
        session,
        order_id,
        expected=[SubmissionState.UNKNOWN],
        to=SubmissionState.FAILED,
        error="not found on the panel (checked by an admin)",
        decided_by=admin_id,
    )
    if not moved:
        return Reconciliation.ALREADY_SETTLED
    _ = await _chat_translator(session, order.chat_id, i18n, default_language)
    text = notices.order_not_placed_text(_, order_id=order_id)
    await outbox.enqueue(session, order.chat_id, text, kind=RECONCILED)
    log.info("admin %d marked order %d failed", admin_id, order_id)
    return Reconciliation.DONE


async def _chat_translator(
    session: AsyncSession, chat_id: int, i18n: Translations, default_language: str
) -> notices.Translate:
    recipient = (await outbox.recipients(session, [chat_id]))[chat_id]
    return notices.translator(i18n, notices.recipient_language(recipient, default_language))


# --- low balance --------------------------------------------------------------------------------


async def check_low_balance(
    sessions: async_sessionmaker[AsyncSession],
    panel: PanelClient,
    settings: Settings,
    i18n: Translations,
) -> int:
    """Alert every admin once when the balance falls below LOW_BALANCE_ALERT.

    A kv flag remembers the alert across restarts; it is cleared once the balance is back above
    the threshold, so the next fall alerts again. Returns how many messages were written.
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
        admins = await outbox.recipients(session, settings.admin_ids)
        written = 0
        for admin in admins.values():
            if admin.blocked:
                continue
            language = notices.recipient_language(admin, settings.default_language)
            text = notices.low_balance_text(
                notices.translator(i18n, language),
                balance=balance.balance,
                threshold=threshold,
                currency=currency,
            )
            await outbox.enqueue(session, admin.chat_id, text, kind=LOW_BALANCE_ALERT)
            written += 1
    log.warning("panel balance %s is below the alert threshold %s", balance.balance, threshold)
    return written
