"""The background job that polls due orders and refills, 100 ids per panel call.

Each cycle also settles interrupted submissions and, now and then, checks the panel balance.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.admin import check_low_balance
from bot.announcements import OrderChange, StatusAnnouncer
from bot.config import Settings
from bot.leases import LeaseKeeper, process_owner_id
from bot.notices import Translations
from bot.notify import NoticeButtons, Notifier
from bot.ordering import give_up_interrupted_submissions
from bot.panel.client import BATCH_SIZE, PanelClient, add_deadline
from bot.panel.errors import PanelError, PanelUnavailable
from bot.panel.models import OrderStatusResult, RefillStatusResult, is_terminal_refill_status
from bot.status import (
    STATUS_LENGTH,
    StatusUpdate,
    change_of,
    is_missing_order,
    is_missing_refill,
    next_poll_time,
    plan_update,
    settle_final_status,
)
from storage import polling
from storage.db import utcnow
from storage.polling import DueRefill, OrderAnswer, PolledOrder

log = logging.getLogger(__name__)

# Orders leased per round trip: five panel calls. Each batch costs two transactions and a few
# statements whatever its size (1000 saves about 3 µs per order polled and costs 1 MiB of peak).
CLAIM_SIZE = 500
MAX_BACKOFF_FACTOR = 10
BALANCE_CHECK_SECONDS = 60.0
SUBMISSION_GRACE = 60.0  # seconds past `add`'s deadline before a stuck `submitting` is unknown

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


@dataclass
class _Batch:
    """How a batch of order answers splits into database writes."""

    answers: list[polling.OrderAnswer] = field(default_factory=list)  # status or numbers moved
    moved: list[tuple[PolledOrder, StatusUpdate]] = field(default_factory=list)  # new status
    missing: list[int] = field(default_factory=list)
    unchanged: dict[datetime, list[int]] = field(default_factory=lambda: defaultdict(list))


def _answer_row(order: PolledOrder, update: StatusUpdate, next_poll_at: datetime) -> OrderAnswer:
    """What storage.polling.record_answers writes for one order whose answer changes it."""
    numbers = update.numbers
    return OrderAnswer(
        order_id=order.id,
        old_status=order.status,
        status=update.status,
        remains=numbers.get("remains"),
        start_count=numbers.get("start_count"),
        charge=numbers.get("charge"),
        currency=numbers.get("currency"),
        next_poll_at=next_poll_at,
        poll_active=update.poll_active,
    )


class Poller:
    """Polls due orders and refills; `run_forever` is the background job, `poll_once` one cycle."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        panel: PanelClient,
        i18n: Translations,
        buttons: NoticeButtons | None = None,
        owner: str | None = None,
        on_enqueued: Callable[[], None] | None = None,
        on_cycle: Callable[[float], None] | None = None,
        claim_size: int = CLAIM_SIZE,
        lease_seconds: float | None = None,
        balance_every: float | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._panel = panel
        self._i18n = i18n
        self._announcer = StatusAnnouncer(settings, i18n, buttons)
        self.owner = owner or process_owner_id()
        self._on_enqueued = on_enqueued
        self._on_cycle = on_cycle  # told the seconds each completed cycle took
        self._claim_size = claim_size
        interval = settings.poll_interval
        # Short, and renewed during the status call: a killed poller's orders wait at most
        # this long for another instance.
        self._lease_seconds = lease_seconds or settings.poll_lease_seconds
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
            started = time.perf_counter()
            report = PollReport()
            report.messages += await self._settle_interrupted_submissions()
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
            if self._on_cycle is not None:
                self._on_cycle(time.perf_counter() - started)
            return report

    async def _settle_interrupted_submissions(self) -> int:
        """A crash during `add` leaves a draft in `submitting`; past the longest an `add` can
        take (its queue included), it is unknown. How many orders that gave up (each wrote
        messages for the sender to deliver)."""
        # Never before the longest an `add` can take, its queue included: past that bound the
        # client has given up on it itself (PanelUnavailable or OrderOutcomeUnknown).
        grace = timedelta(seconds=SUBMISSION_GRACE + add_deadline(self._settings.panel_timeout))
        notifier = Notifier(self._settings, self._i18n)
        given_up = await give_up_interrupted_submissions(
            self._sessions, notifier, self._clock() - grace
        )
        return len(given_up)

    # --- orders -------------------------------------------------------------------------------

    async def _poll_orders(self, report: PollReport) -> None:
        while True:
            batch, taken_at = await self._claim(polling.claim_due_orders)
            if not batch:
                return
            report.orders_polled += len(batch)
            report.panel_calls += math.ceil(len(batch) / BATCH_SIZE)
            ids = [order.id for order in batch]
            try:
                # Renewed only during the call: the writes that follow release the leases,
                # and a renewal beside them would lock the same rows in another order.
                async with self._keeper(polling.renew_order_leases, ids, taken_at):
                    answers = await self._panel.statuses(order.panel_order_id for order in batch)
            except BaseException:
                await self._give_back(polling.release_orders, ids)
                raise
            await self._store_orders(batch, answers, report)
            if len(batch) < self._claim_size:
                return

    async def _store_orders(
        self,
        batch: Sequence[PolledOrder],
        answers: Mapping[int, OrderStatusResult],
        report: PollReport,
    ) -> None:
        """Write the batch in one transaction; should that fail (an answer the database cannot
        hold), write its orders one by one, so one bad item costs only its own order."""
        try:
            await self._store_batch(batch, answers, report)
        except Exception:  # the whole batch rolled back: nothing of it was written
            log.warning("writing %d status answers failed; one by one now", len(batch))
            for order in batch:
                await self._store_alone(order, answers, report)

    async def _store_alone(
        self, order: PolledOrder, answers: Mapping[int, OrderStatusResult], report: PollReport
    ) -> None:
        try:
            await self._store_batch([order], answers, report)
        except Exception:
            log.error("order %d: its status answer cannot be stored; asked again later", order.id)
            later = {next_poll_time(self._settings, order.placed_at, self._clock()): [order.id]}
            await self._give_back(
                lambda session, ids, owner: polling.reschedule_orders(session, later, owner),
                [order.id],
            )

    async def _store_batch(
        self,
        batch: Sequence[PolledOrder],
        answers: Mapping[int, OrderStatusResult],
        report: PollReport,
    ) -> None:
        """Write every answer of the batch, and the announcements, in one transaction: one
        statement per kind of write, whatever the batch's size."""
        outcome = self._sort_answers(batch, answers, self._clock())
        async with self._sessions.begin() as session:
            won = await polling.record_answers(session, outcome.answers)
            await polling.mark_orders_missing(session, outcome.missing, self.owner)
            await polling.reschedule_orders(session, outcome.unchanged, self.owner)
            # A lost compare-and-set leaves our lease behind; hand it back.
            lost = [answer.order_id for answer in outcome.answers if answer.order_id not in won]
            await polling.release_orders(session, lost, self.owner)
            changes = await self._changes(session, [m for m in outcome.moved if m[0].id in won])
            messages = await self._announcer.orders(session, changes)
        report.messages += messages
        report.changes += len(changes)
        report.missing += len(outcome.missing)
        for order_id in outcome.missing:
            log.warning("order %d: the panel does not know it; polling stopped", order_id)

    def _sort_answers(
        self, batch: Sequence[PolledOrder], answers: Mapping[int, OrderStatusResult], now: datetime
    ) -> _Batch:
        outcome = _Batch()
        for order in batch:
            answer = answers.get(order.panel_order_id)
            next_poll_at = next_poll_time(self._settings, order.placed_at, now)
            if answer is not None and is_missing_order(answer.error):
                outcome.missing.append(order.id)
                continue
            # An item the panel could not answer (or a chunk that failed) is asked again.
            update = (
                plan_update(order, answer) if answer is not None and answer.error is None else None
            )
            if update is None:
                outcome.unchanged[next_poll_at].append(order.id)
                continue
            outcome.answers.append(_answer_row(order, update, next_poll_at))
            if update.status is not None and update.status != order.status:
                outcome.moved.append((order, update))
        return outcome

    async def _changes(
        self, session: AsyncSession, moved: Sequence[tuple[PolledOrder, StatusUpdate]]
    ) -> list[OrderChange]:
        """The announcements of the stored new statuses, each with the refund it booked."""
        orders = await polling.announced_orders(session, [order for order, _ in moved])
        changes = []
        for polled, update in moved:
            change = change_of(orders[polled.id], update)
            if change is not None:
                # The refund commits with the status that calls for it, or neither does.
                changes.append(
                    await settle_final_status(session, self._settings, self._i18n, change)
                )
        return changes

    # --- refills ------------------------------------------------------------------------------

    async def _poll_refills(self, report: PollReport) -> None:
        while True:
            batch, taken_at = await self._claim(polling.claim_due_refills)
            if not batch:
                return
            report.refills_polled += len(batch)
            report.panel_calls += math.ceil(len(batch) / BATCH_SIZE)
            ids = [refill.id for refill in batch]
            try:
                async with self._keeper(polling.renew_refill_leases, ids, taken_at):
                    answers = await self._panel.refill_statuses(r.panel_refill_id for r in batch)
            except BaseException:
                await self._give_back(polling.release_refills, ids)
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

    async def _claim(self, claim: Callable[..., Awaitable[list[T]]]) -> tuple[list[T], float]:
        """A claimed batch, and the loop time before the claim was sent (when its leases began
        at the latest)."""
        taken_at = asyncio.get_running_loop().time()
        now = self._clock()
        async with self._sessions.begin() as session:
            batch = await claim(
                session,
                self.owner,
                now=now,
                lease_seconds=self._lease_seconds,
                limit=self._claim_size,
            )
        return batch, taken_at

    def _keeper(
        self, renew: Callable[..., Awaitable[set[int]]], ids: list[int], taken_at: float
    ) -> LeaseKeeper:
        async def renew_held(held: list[int]) -> set[int]:
            async with self._sessions.begin() as session:
                return await renew(
                    session, held, self.owner, now=self._clock(), seconds=self._lease_seconds
                )

        return LeaseKeeper(renew_held, ids, seconds=self._lease_seconds, taken_at=taken_at)

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
