"""Status planning: what a panel's status answer changes, and when to ask about an order again.

`record_status` stores one answer obtained outside the poller, as a poll would store it.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from bot import billing, notices
from bot.announcements import OrderChange, StatusAnnouncer
from bot.billing import InvalidRemains
from bot.config import Settings
from bot.notices import Translations
from bot.notify import NoticeButtons, Notifier
from bot.panel.models import (
    OrderStatus,
    OrderStatusResult,
    is_terminal_order_status,
    parse_order_status,
)
from storage import polling
from storage.db import utcnow
from storage.models import Order
from storage.polling import DueOrder

log = logging.getLogger(__name__)

STATUS_LENGTH = 32  # orders.status and refills.status columns
REFUNDING = (OrderStatus.CANCELED, OrderStatus.PARTIAL)
INVALID_STATUS_ALERT = "admin"


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """What to write for one order: its status, the numbers that moved, whether to keep polling."""

    status: str | None
    numbers: dict[str, Any]
    poll_active: bool


class StoredStatus(Protocol):
    """What an order holds of the panel's last answer (a `DueOrder` or a `PolledOrder`)."""

    @property
    def status(self) -> str | None: ...
    @property
    def remains(self) -> int | None: ...
    @property
    def start_count(self) -> int | None: ...
    @property
    def charge(self) -> Decimal | None: ...
    @property
    def currency(self) -> str: ...


def plan_update(order: StoredStatus, answer: OrderStatusResult) -> StatusUpdate | None:
    """What the panel's answer changes, or None when there is nothing to write."""
    status = str(answer.status)[:STATUS_LENGTH] if answer.status is not None else order.status
    # A number the panel left out changes nothing. (Spelled out: this runs for every order
    # polled.)
    numbers: dict[str, Any] = {}
    if (remains := answer.remains) is not None and remains != order.remains:
        numbers["remains"] = remains
    if (start_count := answer.start_count) is not None and start_count != order.start_count:
        numbers["start_count"] = start_count
    if (charge := answer.charge) is not None and charge != order.charge:
        numbers["charge"] = charge
    if (currency := answer.currency) is not None and currency != order.currency:
        numbers["currency"] = currency
    active = not is_terminal_order_status(status)
    if status == order.status and not numbers and active:
        return None
    return StatusUpdate(status, numbers, active)


def change_of(order: DueOrder, update: StatusUpdate) -> OrderChange | None:
    """The announcement an applied update calls for: only a new status is announced."""
    if update.status is None or update.status == order.status:
        return None
    return OrderChange(
        order=order,
        status=update.status,
        remains=update.numbers.get("remains", order.remains),
        charge=update.numbers.get("charge", order.charge),
        currency=update.numbers.get("currency", order.currency),
    )


async def settle_final_status(
    session: AsyncSession, settings: Settings, i18n: Translations, change: OrderChange
) -> OrderChange:
    """Reseller mode: book the refund a stored final status calls for, in the transaction that
    stored it (once per order, whichever instance stored it), and carry it to the announcement.

    A Partial whose `remains` is outside what the order asked makes the item invalid: nothing
    is booked, and the admins are told (once: only the status's compare-and-set winner gets
    here)."""
    order = change.order
    status = parse_order_status(change.status)
    if order.customer_currency is None or status not in REFUNDING:
        return change
    try:
        refund = await billing.refund_final_status(session, order, str(status), change.remains)
    except InvalidRemains as invalid:
        log.warning("order %d: %s; no refund booked", order.id, invalid)
        alert = functools.partial(
            notices.invalid_remains_alert, order.id, order.panel_order_id, change.remains
        )
        await Notifier(settings, i18n).tell_admins(session, alert, kind=INVALID_STATUS_ALERT)
        return change
    if refund is None:
        return change
    log.info("order %d: %s refunded (%s)", order.id, refund.amount, status)
    return dataclasses.replace(change, refund=refund)


def poll_interval_for(age: float, base: float, schedule: Sequence[tuple[float, float]]) -> float:
    """The interval of the largest age threshold passed (`schedule` sorted by age), else `base`."""
    interval = base
    for threshold, aged_interval in schedule:
        if age >= threshold:
            interval = aged_interval
    return interval


def next_poll_time(settings: Settings, since: datetime | None, now: datetime) -> datetime:
    """When to ask again about an order (or refill) created at `since`: older means later."""
    age = (now - since).total_seconds() if since is not None else 0.0
    interval = poll_interval_for(age, settings.poll_interval, settings.poll_aging_schedule)
    return now + timedelta(seconds=interval)


def is_missing_order(error: str | None) -> bool:
    return error is not None and "incorrect order id" in error.lower()


def is_missing_refill(error: str | None) -> bool:
    text = (error or "").lower()
    return "refill not found" in text or "incorrect refill id" in text


async def record_status(
    session: AsyncSession,
    settings: Settings,
    order: Order,
    answer: OrderStatusResult,
    *,
    i18n: Translations,
    buttons: NoticeButtons | None = None,
    announce_owner: bool = True,
) -> bool:
    """Store one order's status answer obtained outside the poller (the owner's refresh).

    The same compare-and-set and announcements as a poll, in the caller's transaction, so a
    completion found by a refresh still reaches the notification groups, and the poller will
    not announce it again. True if the status changed.
    """
    if answer.error is not None or order.panel_order_id is None:
        return False
    due = DueOrder.of(order)
    update = plan_update(due, answer)
    if update is None:
        return False
    stored = await polling.record_order_status(
        session,
        due,
        status=update.status,
        next_poll_at=next_poll_time(settings, due.placed_at, utcnow()),
        poll_active=update.poll_active,
        **update.numbers,
    )
    change = change_of(due, update) if stored else None
    if change is None:
        return False
    change = await settle_final_status(session, settings, i18n, change)
    announcer = StatusAnnouncer(settings, i18n, buttons)
    await announcer.orders(session, [change], include_owner=announce_owner)
    return True
