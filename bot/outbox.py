"""Durable, rate-limited delivery of the outbox to Telegram.

The only module of `bot/` that talks to Telegram. Limits: the overall and per-group ones from
`bot.limits` (shared through Redis by every instance when there is one), and per-chat pacing as
data (`chats.next_send_at`), so several instances share it and a slow chat never holds up the
others. A row leaves the outbox only after Telegram accepted the message.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from aiogram import Bot
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramRetryAfter,
)
from aiogram.types import InlineKeyboardMarkup, ReplyKeyboardMarkup
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.leases import LeaseKeeper, process_owner_id
from bot.limits import TelegramLimits
from storage import outbox, people
from storage.db import utcnow
from storage.outbox import QueuedMessage

log = logging.getLogger(__name__)

# A send must end (answer or time out) within this share of the lease as last taken or
# renewed; the rest is for recording the outcome, should the renewals stop (database trouble).
SEND_SHARE_OF_LEASE = 0.8
MIN_REQUEST_TIMEOUT = 1  # seconds; aiogram's request_timeout is a whole number
IDLE_WAIT = 0.5  # how often to look for work nobody told us about (other instances' rows)
MAX_ATTEMPTS = 10
RETRY_BASE = 2.0  # seconds before the first retry of a transient failure; doubles each time
RETRY_CAP = 600.0

Clock = Callable[[], datetime]
Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup


@dataclass
class DeliveryReport:
    """What one drain did, for logs, tests and benchmarks."""

    claimed: int = 0
    sent: int = 0
    postponed: int = 0  # a 429 or a transient failure: due again later
    dropped: int = 0  # undeliverable, given up, or queued for a chat that blocked the bot
    blocked_chats: int = 0


def reply_markup_of(payload: dict[str, Any] | None) -> Markup | None:
    """The keyboard stored as JSON with the row (raises ValidationError when malformed)."""
    if not payload:
        return None
    if "keyboard" in payload:
        return ReplyKeyboardMarkup.model_validate(payload)
    return InlineKeyboardMarkup.model_validate(payload)


class OutboxSender:
    """Drains the outbox: `run_forever` is the background job, `drain_once` one batch."""

    def __init__(
        self,
        bot: Bot,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        owner: str | None = None,
        batch_size: int | None = None,
        lease_seconds: float | None = None,
        idle_wait: float = IDLE_WAIT,
        retry_base: float = RETRY_BASE,
        retry_cap: float = RETRY_CAP,
        max_attempts: int = MAX_ATTEMPTS,
        clock: Clock = utcnow,
        on_blocked: Callable[[int], None] | None = None,
        limits: TelegramLimits | None = None,
        on_refused: Callable[[int], None] | None = None,
    ) -> None:
        self._bot = bot
        self._on_blocked_chat = on_blocked
        self._on_refused = on_refused  # told Telegram's error code of each 429 and 403
        self._sessions = sessions
        self._settings = settings
        self.owner = owner or process_owner_id()
        # One batch is about a second's worth of sends: one message per chat, sent concurrently.
        self._batch_size = batch_size or max(1, math.ceil(settings.outbox_global_per_second))
        # Short, and renewed while the batch is worked on: a killed sender's messages wait
        # at most this long for another instance.
        self._lease_seconds = lease_seconds or settings.outbox_lease_seconds
        self._idle_wait = idle_wait
        self._retry_base = retry_base
        self._retry_cap = retry_cap
        self._max_attempts = max_attempts
        self._clock = clock
        # Sends spaced evenly at just under the overall rate; this instance's own without Redis.
        self._limits = limits or TelegramLimits.create(settings)
        self._wakeup = asyncio.Event()
        self._wake_times: list[float] = []  # loop times when a paced or postponed row is due

    def notify(self) -> None:
        """New rows were written: look at the outbox now instead of at the next poll."""
        self._wakeup.set()

    # --- the loop -----------------------------------------------------------------------------

    async def run_forever(self) -> None:
        """Drain until cancelled; sleep only when there was nothing to send."""
        while True:
            self._wakeup.clear()
            try:
                report = await self.drain_once()
            except Exception:  # a database hiccup must not end delivery for good
                log.exception("outbox drain failed")
                report = DeliveryReport()
            if report.claimed == 0:
                await self._sleep()

    async def _sleep(self) -> None:
        """Until notified, until a chat we paced is free again, or `idle_wait` at most."""
        now = asyncio.get_running_loop().time()
        while self._wake_times and self._wake_times[0] <= now:
            heapq.heappop(self._wake_times)
        timeout = self._idle_wait
        if self._wake_times:
            timeout = min(timeout, self._wake_times[0] - now)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout)

    async def drain_once(self) -> DeliveryReport:
        """Claim the next sendable message of up to `batch_size` chats and send them."""
        # Measured before the claim, so the lease is never longer here than in the database.
        taken_at = asyncio.get_running_loop().time()
        now = self._clock()
        async with self._sessions.begin() as session:
            batch = await outbox.claim_due(
                session,
                self.owner,
                now=now,
                lease_seconds=self._lease_seconds,
                limit=self._batch_size,
            )
        report = DeliveryReport(claimed=len(batch))
        if not batch:
            return report
        keeper = LeaseKeeper(
            self._renew, (m.id for m in batch), seconds=self._lease_seconds, taken_at=taken_at
        )
        try:
            async with keeper:
                outcomes = await asyncio.gather(
                    *(self._deliver_held(message, report, keeper) for message in batch),
                    return_exceptions=True,
                )
        finally:
            # Rows not done with (a stop, a lease given up, a failed write) are due again at
            # once, not when their leases run out.
            await self._release(keeper.unfinished)
        for message, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Exception):
                # Recording the outcome failed (a database error): the message is tried again,
                # so it may arrive twice but is never lost.
                log.error("message %d: %s", message.id, outcome, exc_info=outcome)
        log.debug("outbox drain: %s", report)
        return report

    async def _renew(self, message_ids: list[int]) -> set[int]:
        async with self._sessions.begin() as session:
            return await outbox.renew_leases(
                session, message_ids, self.owner, now=self._clock(), seconds=self._lease_seconds
            )

    async def _release(self, message_ids: set[int]) -> None:
        if not message_ids:
            return
        try:
            async with self._sessions.begin() as session:
                await outbox.release(session, message_ids, self.owner)
        except Exception:  # they run out on their own, a lease later
            log.warning("could not release %d outbox leases", len(message_ids), exc_info=True)

    async def _deliver_held(
        self, message: QueuedMessage, report: DeliveryReport, keeper: LeaseKeeper
    ) -> None:
        if await self._deliver(message, report, keeper):
            keeper.finish(message.id)

    # --- one message --------------------------------------------------------------------------

    async def _deliver(
        self, message: QueuedMessage, report: DeliveryReport, keeper: LeaseKeeper
    ) -> bool:
        """Send one message and record the outcome; False when it was left unsent and
        unrecorded (its lease was lost or running out)."""
        try:
            markup = reply_markup_of(message.reply_markup)
        except ValidationError:
            await self._drop(message, report, "its stored keyboard is malformed")
            return True
        async with self._turn(message.chat_id):
            # Every send ends by `send_before`, answered or timed out, while the lease (as last
            # renewed) still holds: past it another instance may claim the row and send it too.
            # (aiogram's own timeout, 60 s, is longer than the whole lease.)
            send_before = keeper.held_until - self._lease_seconds * (1 - SEND_SHARE_OF_LEASE)
            request_timeout = math.floor(send_before - asyncio.get_running_loop().time())
            if not keeper.holds(message.id) or request_timeout < MIN_REQUEST_TIMEOUT:
                # Another instance has it now, or the renewals stopped (database trouble) and
                # the lease is running out: leave the row rather than risk sending it twice.
                return False
            try:
                await self._bot.send_message(
                    message.chat_id,
                    message.text,
                    reply_markup=markup,
                    request_timeout=request_timeout,
                )
            except TelegramRetryAfter as error:
                await self._on_retry_after(message, error.retry_after, report)
            except TelegramForbiddenError:
                await self._on_blocked(message, report)
            except TelegramMigrateToChat as error:
                await self._on_migrated(message, error.migrate_to_chat_id, report)
            except TelegramBadRequest as error:
                # "chat not found", unparsable HTML, a text too long: sending again cannot help.
                await self._drop(message, report, error.message)
            except (
                TelegramAPIError,
                ClientDecodeError,
                aiohttp.ClientError,
                TimeoutError,
            ) as error:
                # Network trouble, 5xx and the like (aiogram wraps most as TelegramNetworkError).
                # A timed-out send may have been delivered all the same: sending it again later
                # is the one at-least-once window.
                await self._retry_later(message, report, error)
            else:
                await self._on_sent(message, report)
        return True

    @contextlib.asynccontextmanager
    async def _turn(self, chat_id: int) -> AsyncIterator[None]:
        """The send inside fits Telegram's overall and per-group limits and no 429 pause."""
        await self._limits.take_turn(chat_id)
        yield

    async def _on_sent(self, message: QueuedMessage, report: DeliveryReport) -> None:
        next_send_at = self._clock() + timedelta(seconds=self._chat_interval(message.chat_id))
        async with self._sessions.begin() as session:
            await outbox.mark_sent(session, message.id)
            await outbox.pace_chat(session, message.chat_id, next_send_at)
        self._wake_in(self._chat_interval(message.chat_id))
        report.sent += 1

    async def _on_retry_after(
        self, message: QueuedMessage, retry_after: float, report: DeliveryReport
    ) -> None:
        self._refused(429)
        log.warning("Telegram asks to wait %ss (chat %d)", retry_after, message.chat_id)
        await self._limits.pause(retry_after)  # every send waits, on every instance
        due = self._clock() + timedelta(seconds=retry_after)
        async with self._sessions.begin() as session:
            # Not a failure of the message: its attempts stay as they are.
            await outbox.postpone(
                session, message.id, owner=self.owner, not_before=due, attempts=message.attempts
            )
            await outbox.pace_chat(session, message.chat_id, due)
        self._wake_in(retry_after)
        report.postponed += 1

    async def _on_blocked(self, message: QueuedMessage, report: DeliveryReport) -> None:
        self._refused(403)
        async with self._sessions.begin() as session:
            await outbox.ensure_chat(session, message.chat_id)
            await people.mark_chat_blocked(session, message.chat_id)
            dropped = await outbox.drop_chat(session, message.chat_id)
        if self._on_blocked_chat is not None:
            self._on_blocked_chat(message.chat_id)  # its next update must clear the mark
        log.info(
            "chat %d blocked the bot; dropped its %d queued messages", message.chat_id, dropped
        )
        report.blocked_chats += 1
        report.dropped += dropped

    async def _on_migrated(
        self, message: QueuedMessage, new_chat_id: int, report: DeliveryReport
    ) -> None:
        async with self._sessions.begin() as session:
            await outbox.move_chat(session, message.chat_id, new_chat_id)
        log.info("group %d is now supergroup %d; its queue follows", message.chat_id, new_chat_id)
        report.postponed += 1

    async def _retry_later(
        self, message: QueuedMessage, report: DeliveryReport, error: BaseException
    ) -> None:
        attempts = message.attempts + 1
        if attempts >= self._max_attempts:
            await self._drop(message, report, f"gave up after {attempts} attempts ({error})")
            return
        delay = min(self._retry_base * 2 ** (attempts - 1), self._retry_cap)
        async with self._sessions.begin() as session:
            await outbox.postpone(
                session,
                message.id,
                owner=self.owner,
                not_before=self._clock() + timedelta(seconds=delay),
                attempts=attempts,
            )
        log.info(
            "message %d to chat %d: %s; retry in %.1fs", message.id, message.chat_id, error, delay
        )
        self._wake_in(delay)
        report.postponed += 1

    async def _drop(self, message: QueuedMessage, report: DeliveryReport, reason: str) -> None:
        async with self._sessions.begin() as session:
            await outbox.drop(session, message.id)
        log.warning(
            "dropped %s message %d to chat %d: %s",
            message.kind,
            message.id,
            message.chat_id,
            reason,
        )
        report.dropped += 1

    def _refused(self, code: int) -> None:
        if self._on_refused is not None:
            self._on_refused(code)

    # --- pacing -------------------------------------------------------------------------------

    def _chat_interval(self, chat_id: int) -> float:
        """Seconds between two messages to one chat: groups (negative ids) are slower."""
        interval = self._settings.outbox_chat_interval
        if chat_id < 0:
            interval = max(interval, 60.0 / self._settings.outbox_group_per_minute)
        return interval

    def _wake_in(self, seconds: float) -> None:
        heapq.heappush(self._wake_times, asyncio.get_running_loop().time() + seconds)
