"""Background polling of order and refill statuses (DESIGN, data flow step 3).

Each cycle leases the due orders in the database, asks the panel about them 100 ids per call,
and stores every change together with the outbox rows announcing it, in one transaction. Nothing
lives only in memory: after a crash or a restart the next cycle picks up where this one stopped.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import os
import secrets
import socket
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import notices
from bot.admin import check_low_balance
from bot.config import Settings
from bot.notices import Translations
from bot.panel.client import BATCH_SIZE, PanelClient
from bot.panel.errors import PanelError, PanelUnavailable
from bot.panel.models import (
    OrderStatusResult,
    RefillStatusResult,
    is_terminal_order_status,
    is_terminal_refill_status,
    parse_order_status,
)
from storage import orders, outbox, polling
from storage.db import utcnow
from storage.models import Order
from storage.polling import DueOrder, DueRefill

log = logging.getLogger(__name__)

CLAIM_SIZE = 500  # orders leased per round trip: five panel calls
LEASES_PER_INTERVAL = 3  # a lease outlives a few cycles, so a crashed poller's work comes back
MIN_LEASE_SECONDS = 30.0  # …but never less than a slow panel call (retries included)
MAX_BACKOFF_FACTOR = 10
BALANCE_CHECK_SECONDS = 60.0
SUBMISSION_GRACE = 60.0  # seconds past the panel timeout before a stuck `submitting` is unknown
STATUS_LENGTH = 32  # orders.status and refills.status columns

ORDER_UPDATE = "order_status"
GROUP_NOTICE = "order_notice"
REFILL_UPDATE = "refill_status"

Clock = Callable[[], datetime]
T = TypeVar("T")


@dataclass
class PollReport:
    """What one cycle did, for logs, tests and benchmarks."""

    orders_polled: int = 0
    refills_polled: int = 0
    panel_calls: int = 0
    changes: int = 0
    messages: int = 0
    missing: int = 0
    panel_failed: bool = False
    low_balance_alert: bool = False


# --- deciding what an answer changes ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """What to write for one order: its status, the numbers that moved, whether to keep polling."""

    status: str | None
    numbers: dict[str, Any]
    poll_active: bool


@dataclass(frozen=True, slots=True)
class OrderChange:
    """A status change that was stored, waiting to be announced."""

    order: DueOrder
    status: str
    remains: int | None
    charge: Decimal | None
    currency: str


def plan_update(order: DueOrder, answer: OrderStatusResult) -> StatusUpdate | None:
    """What the panel's answer changes, or None when there is nothing to write."""
    status = str(answer.status)[:STATUS_LENGTH] if answer.status is not None else order.status
    fresh = {
        "remains": answer.remains,
        "start_count": answer.start_count,
        "charge": answer.charge,
        "currency": answer.currency,
    }
    # A number the panel left out changes nothing.
    numbers = {
        name: value
        for name, value in fresh.items()
        if value is not None and value != getattr(order, name)
    }
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


def process_owner_id() -> str:
    """Who holds a lease: host, pid and a random part (pids repeat across containers)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


# --- announcing ---------------------------------------------------------------------------------


class StatusAnnouncer:
    """Writes the outbox rows for stored changes, each in its recipient's language."""

    def __init__(self, settings: Settings, i18n: Translations) -> None:
        self._settings = settings
        self._i18n = i18n
        self._notify_on = {str(parse_order_status(word)) for word in settings.notify_on}

    async def orders(
        self, session: AsyncSession, changes: Sequence[OrderChange], *, include_owner: bool = True
    ) -> int:
        """One row for the ordering chat, plus one per subscribed chat for a NOTIFY_ON status.

        Subscribed chats are NOTIFY_CHAT_IDS and the /notify_here groups, each once, never the
        ordering chat a second time. Returns how many rows were written.
        """
        if not changes:
            return 0
        subscribers: list[int] = []
        if any(change.status in self._notify_on for change in changes):
            subscribers = await outbox.subscribed_chats(session, self._settings.notify_chat_ids)
        owners = [change.order.chat_id for change in changes]
        facts = await outbox.recipients(session, owners + subscribers)
        written = 0
        for change in changes:
            owner = change.order.chat_id
            targets = [(owner, ORDER_UPDATE)] if include_owner and not facts[owner].blocked else []
            if change.status in self._notify_on:
                targets += [(chat, GROUP_NOTICE) for chat in subscribers if chat != owner]
            for chat_id, kind in targets:
                text = notices.order_update_text(
                    self._translate(facts[chat_id]),
                    panel_order_id=change.order.panel_order_id,
                    service_name=change.order.service_name,
                    status=change.status,
                    remains=change.remains,
                    charge=change.charge,
                    currency=change.currency,
                )
                await outbox.enqueue(session, chat_id, text, kind=kind)
                written += 1
        return written

    async def refills(
        self, session: AsyncSession, changed: Sequence[tuple[DueRefill, str]]
    ) -> int:
        """One row per refill status change, for the chat that ordered the refilled order."""
        facts = await outbox.recipients(session, [refill.chat_id for refill, _ in changed])
        written = 0
        for refill, status in changed:
            if facts[refill.chat_id].blocked:
                continue
            text = notices.refill_update_text(
                self._translate(facts[refill.chat_id]),
                panel_refill_id=refill.panel_refill_id,
                panel_order_id=refill.panel_order_id,
                service_name=refill.service_name,
                status=status,
            )
            await outbox.enqueue(session, refill.chat_id, text, kind=REFILL_UPDATE)
            written += 1
        return written

    def _translate(self, recipient: outbox.Recipient) -> notices.Translate:
        language = notices.recipient_language(recipient, self._settings.default_language)
        return notices.translator(self._i18n, language)


@functools.cache
def _default_i18n(default_language: str) -> Translations:
    from bot.i18n import create_i18n

    return create_i18n(default_language)


async def record_status(
    session: AsyncSession,
    settings: Settings,
    order: Order,
    answer: OrderStatusResult,
    *,
    i18n: Translations | None = None,
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
    announcer = StatusAnnouncer(settings, i18n or _default_i18n(settings.default_language))
    await announcer.orders(session, [change], include_owner=announce_owner)
    return True


# --- the poller ---------------------------------------------------------------------------------


@dataclass
class _Batch:
    """How a batch of order answers splits into database writes."""

    changes: list[OrderChange] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)
    unchanged: dict[datetime, list[int]] = field(default_factory=lambda: defaultdict(list))
    quiet: list[dict[str, Any]] = field(default_factory=list)  # numbers moved, status did not


def _quiet_row(order: DueOrder, update: StatusUpdate, next_poll_at: datetime) -> dict[str, Any]:
    """Parameters of storage.polling.record_quiet_updates for one order."""
    numbers = update.numbers
    return {
        "order_id": order.id,
        "old_status": order.status,
        "new_remains": numbers.get("remains", order.remains),
        "new_start_count": numbers.get("start_count", order.start_count),
        "new_charge": numbers.get("charge", order.charge),
        "new_currency": numbers.get("currency", order.currency),
        "new_next_poll_at": next_poll_at,
    }


class Poller:
    """Polls due orders and refills; `run_forever` is the background job, `poll_once` one cycle."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        panel: PanelClient,
        i18n: Translations,
        owner: str | None = None,
        on_enqueued: Callable[[], None] | None = None,
        claim_size: int = CLAIM_SIZE,
        lease_seconds: float | None = None,
        balance_every: float | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._panel = panel
        self._i18n = i18n
        self._announcer = StatusAnnouncer(settings, i18n)
        self.owner = owner or process_owner_id()
        self._on_enqueued = on_enqueued
        self._claim_size = claim_size
        interval = settings.poll_interval
        self._lease = timedelta(
            seconds=lease_seconds or max(LEASES_PER_INTERVAL * interval, MIN_LEASE_SECONDS)
        )
        self._balance_every = (
            balance_every if balance_every is not None else max(interval, BALANCE_CHECK_SECONDS)
        )
        self._balance_checked_at: float | None = None
        self._clock = clock
        self._cycle = asyncio.Lock()

    # --- the loop -----------------------------------------------------------------------------

    async def run_forever(self) -> None:
        """Poll every POLL_INTERVAL; after failures wait 1, 2, 4… intervals (at most 10)."""
        failures = 0
        while True:
            try:
                report = await self.poll_once()
                failed = report.panel_failed
            except Exception:  # a database hiccup must not end polling for good
                log.exception("poll cycle failed")
                failed = True
            failures = failures + 1 if failed else 0
            await asyncio.sleep(self.wait_after(failures))

    def wait_after(self, failures: int) -> float:
        """Seconds to wait before the next cycle, after `failures` failed cycles in a row."""
        interval = self._settings.poll_interval
        if failures == 0:
            return interval
        return min(interval * 2.0 ** (failures - 1), MAX_BACKOFF_FACTOR * interval)

    async def poll_once(self) -> PollReport:
        """One cycle: every due order and refill, then (now and then) the panel balance."""
        async with self._cycle:
            report = PollReport()
            await self._settle_interrupted_submissions()
            try:
                await self._poll_orders(report)
                await self._poll_refills(report)
            except (PanelUnavailable, PanelError) as error:
                report.panel_failed = True
                log.warning("status poll failed, backing off: %s", error)
            if not report.panel_failed:
                alerts = await self._check_balance()
                report.low_balance_alert = alerts > 0
                report.messages += alerts
            if report.messages and self._on_enqueued is not None:
                self._on_enqueued()
            if report.orders_polled or report.refills_polled:
                log.debug("poll cycle: %s", report)
            return report

    async def _settle_interrupted_submissions(self) -> None:
        """A crash during `add` leaves a draft in `submitting`; past any timeout it is unknown."""
        grace = timedelta(seconds=SUBMISSION_GRACE + 2 * self._settings.panel_timeout)
        async with self._sessions.begin() as session:
            interrupted = await orders.mark_interrupted_submissions_unknown(
                session, self._clock() - grace
            )
        for order_id in interrupted:
            log.warning("order %d was interrupted during add: marked unknown", order_id)

    # --- orders -------------------------------------------------------------------------------

    async def _poll_orders(self, report: PollReport) -> None:
        while True:
            batch = await self._claim(polling.claim_due_orders)
            if not batch:
                return
            report.orders_polled += len(batch)
            report.panel_calls += math.ceil(len(batch) / BATCH_SIZE)
            try:
                answers = await self._panel.statuses(order.panel_order_id for order in batch)
            except BaseException:
                await self._give_back(polling.release_orders, (order.id for order in batch))
                raise
            await self._store_orders(batch, answers, report)
            if len(batch) < self._claim_size:
                return

    async def _store_orders(
        self,
        batch: Sequence[DueOrder],
        answers: dict[int, OrderStatusResult],
        report: PollReport,
    ) -> None:
        """Write every answer of the batch, and the announcements, in one transaction."""
        now = self._clock()
        outcome = _Batch()
        async with self._sessions.begin() as session:
            for order in batch:
                answer = answers.get(order.panel_order_id)
                await self._store_order(session, order, answer, now, outcome)
            await polling.record_quiet_updates(session, outcome.quiet)
            await polling.mark_orders_missing(session, outcome.missing, self.owner)
            await polling.reschedule_orders(session, outcome.unchanged, self.owner)
            # A lost compare-and-set leaves our lease behind; hand it back.
            await polling.release_orders(session, (order.id for order in batch), self.owner)
            report.messages += await self._announcer.orders(session, outcome.changes)
        report.changes += len(outcome.changes)
        report.missing += len(outcome.missing)
        for order_id in outcome.missing:
            log.warning("order %d: the panel does not know it; polling stopped", order_id)

    async def _store_order(
        self,
        session: AsyncSession,
        order: DueOrder,
        answer: OrderStatusResult | None,
        now: datetime,
        outcome: _Batch,
    ) -> None:
        next_poll_at = next_poll_time(self._settings, order.placed_at, now)
        if answer is not None and is_missing_order(answer.error):
            outcome.missing.append(order.id)
            return
        # An item the panel could not answer (or a chunk that failed) is asked again next time.
        update = (
            plan_update(order, answer) if answer is not None and answer.error is None else None
        )
        if update is None:
            outcome.unchanged[next_poll_at].append(order.id)
            return
        if update.status == order.status and update.poll_active and order.status is not None:
            # Only numbers moved: nothing to announce, so it joins one batched statement.
            outcome.quiet.append(_quiet_row(order, update, next_poll_at))
            return
        stored = await polling.record_order_status(
            session,
            order,
            status=update.status,
            next_poll_at=next_poll_at,
            poll_active=update.poll_active,
            **update.numbers,
        )
        change = change_of(order, update) if stored else None
        if change is not None:
            outcome.changes.append(change)

    # --- refills ------------------------------------------------------------------------------

    async def _poll_refills(self, report: PollReport) -> None:
        while True:
            batch = await self._claim(polling.claim_due_refills)
            if not batch:
                return
            report.refills_polled += len(batch)
            report.panel_calls += math.ceil(len(batch) / BATCH_SIZE)
            try:
                answers = await self._panel.refill_statuses(r.panel_refill_id for r in batch)
            except BaseException:
                await self._give_back(polling.release_refills, (r.id for r in batch))
                raise
            await self._store_refills(batch, answers, report)
            if len(batch) < self._claim_size:
                return

    async def _store_refills(
        self,
        batch: Sequence[DueRefill],
        answers: dict[int, RefillStatusResult],
        report: PollReport,
    ) -> None:
        now = self._clock()
        gone: list[int] = []
        unchanged: dict[datetime, list[int]] = defaultdict(list)
        changed: list[tuple[DueRefill, str]] = []
        async with self._sessions.begin() as session:
            for refill in batch:
                answer = answers.get(refill.panel_refill_id)
                next_poll_at = next_poll_time(self._settings, refill.created_at, now)
                if answer is not None and is_missing_refill(answer.error):
                    gone.append(refill.id)
                    continue
                status = str(answer.status)[:STATUS_LENGTH] if answer and answer.status else None
                if status is None or status == refill.status:
                    unchanged[next_poll_at].append(refill.id)
                    continue
                if await polling.record_refill_status(
                    session,
                    refill,
                    status=status,
                    next_poll_at=next_poll_at,
                    poll_active=not is_terminal_refill_status(status),
                ):
                    changed.append((refill, status))
            await polling.stop_refills(session, gone, self.owner)
            await polling.reschedule_refills(session, unchanged, self.owner)
            await polling.release_refills(session, (r.id for r in batch), self.owner)
            report.messages += await self._announcer.refills(session, changed)
        report.changes += len(changed)

    # --- shared -------------------------------------------------------------------------------

    async def _claim(self, claim: Callable[..., Awaitable[list[T]]]) -> list[T]:
        now = self._clock()
        async with self._sessions.begin() as session:
            return await claim(
                session, self.owner, now=now, lease_until=now + self._lease, limit=self._claim_size
            )

    async def _give_back(
        self, release: Callable[..., Awaitable[None]], ids: Iterable[int]
    ) -> None:
        """Return the leases after a failed call, so the rows are due again after the backoff."""
        try:
            async with self._sessions.begin() as session:
                await release(session, list(ids), self.owner)
        except Exception:  # the leases expire on their own; the panel error matters more
            log.warning("could not release leases; they will expire", exc_info=True)

    async def _check_balance(self) -> int:
        """The low-balance alert, at most every `balance_every` seconds; panel errors are logged.

        How many alert messages were written (one per admin, once per fall below the threshold).
        """
        if self._settings.low_balance_alert is None or not self._settings.admin_ids:
            return 0
        moment = time.monotonic()
        last = self._balance_checked_at
        if last is not None and moment - last < self._balance_every:
            return 0
        self._balance_checked_at = moment
        try:
            return await check_low_balance(self._sessions, self._panel, self._settings, self._i18n)
        except (PanelUnavailable, PanelError) as error:
            log.warning("balance check failed: %s", error)
            return 0
