"""Placing orders exactly once, and the actions on placed orders (refresh, refill, cancel).

Every action takes the chat that asks and checks that it owns the order: an order of another chat
is answered exactly like a missing one. `add` is called once per draft and never retried: a blind
retry is how other bots double-charge. Each state change commits together with the messages that
announce it (to the admins, or to the customer after an admin's decision).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import billing, notices
from bot.access import Access, decide_access
from bot.billing import Billing, Markups, Refund
from bot.catalog import Catalog
from bot.config import Settings
from bot.forms import add_arguments, answers_again, order_price, order_quantity
from bot.money import order_cost
from bot.notices import Translate, Translations
from bot.notify import NoticeButtons, Notifier
from bot.panel.client import PanelClient
from bot.panel.errors import OrderOutcomeUnknown, PanelError, PanelUnavailable, is_out_of_funds
from bot.panel.models import (
    OrderStatus,
    OrderStatusResult,
    Service,
    is_terminal_order_status,
)
from bot.services import is_open_ended
from bot.status import record_status
from storage import orders as order_store
from storage import people as people_store
from storage.db import utcnow
from storage.ledger import InsufficientFunds

# The records the Telegram layer reads come through here, so `handlers/` never imports `storage`.
from storage.models import Order as Order
from storage.models import Refill as Refill
from storage.models import SubmissionState as SubmissionState

log = logging.getLogger(__name__)

# `add` arguments that also get a column of their own (shown in cards, counted in stats).
_COLUMN_ARGUMENTS = ("link", "quantity", "runs", "interval")
CURRENCY_TTL = 3600.0
CURRENCY_RETRY = 60.0
REFILLABLE = (OrderStatus.COMPLETED, OrderStatus.PARTIAL)

# Outbox kinds of the messages placements write.
APPROVAL_REQUEST = "approval_request"
DECISION = "approval"
ADMIN_ALERT = "admin"

SERVICE_CHANGED = "the service changed on the panel before the order was approved"


class Outcome(enum.StrEnum):
    PLACED = "placed"
    AWAITING_APPROVAL = "awaiting_approval"
    REJECTED = "rejected"  # an admin said no
    CHANGED = "changed"  # the service changed since the summary: nothing was ordered
    FAILED = "failed"  # the panel said no: `error` has its message
    UNAVAILABLE = "unavailable"  # the request never reached the panel; nothing was ordered
    UNKNOWN = "unknown"  # the request may have reached the panel
    TAKEN = "taken"  # already confirmed (second press, another instance) or dropped
    DENIED = "denied"  # the user may not order (any more): nothing was ordered
    GONE = "gone"  # no such draft in this chat
    SHORT = "short"  # reseller mode: the wallet holds less than the price; nothing was ordered
    NOT_OFFERED = "not_offered"  # reseller mode: this order cannot be paid from a wallet


@dataclass(frozen=True, slots=True)
class Placement:
    outcome: Outcome
    order: Order | None = None
    error: str | None = None
    # Reseller mode: the wallet's balance (a short balance), or what this outcome gave back.
    balance: Decimal | None = None
    refund: Refund | None = None


class OrderActionError(Exception):
    """A refill or cancel the panel (or the order's service) does not allow; `code` says why."""

    def __init__(self, code: str, panel_message: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.panel_message = panel_message


@dataclass(frozen=True, slots=True)
class PriceList:
    """What one screen of services costs as its reader pays it (`Ordering.price_list`)."""

    currency: str
    _billing: Billing | None
    _markups: Markups

    def rate(self, service: Service) -> Decimal:
        """Per 1000, or the package's price: the summary computes the exact total."""
        if self._billing is None:
            return service.rate
        return self._billing.price(service.rate, service.id, service.category, self._markups)


class Ordering:
    """The ordering service used by the handlers; owns no Telegram code."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        panel: PanelClient,
        settings: Settings,
        i18n: Translations,
        buttons: NoticeButtons,
        catalog: Catalog | None = None,
    ) -> None:
        self._sessions = sessions
        self._i18n = i18n
        self._panel = panel
        self._settings = settings
        self._catalog = catalog
        self._notifier = Notifier(settings, i18n)
        self._buttons = buttons
        self._currency: tuple[str, float] | None = None
        self._billing = Billing(sessions, settings) if settings.wallet_mode else None
        # One confirmation per user at a time in this process. What makes the daily limit
        # hold is the user's row lock in the confirm transaction (every instance); this only
        # keeps a second press here from holding a database connection while it waits.
        self._confirming = UserLocks()

    # --- money ---------------------------------------------------------------------------

    async def currency(self) -> str:
        """The panel's currency from its `balance` answer, cached; the setting as a fallback.

        A failed lookup is remembered too (for a minute), so a panel outage does not make
        every screen wait for the balance call's retries.
        """
        now = time.monotonic()
        if self._currency and now < self._currency[1]:
            return self._currency[0]
        fallback = self._currency[0] if self._currency else self._settings.currency
        try:
            currency = (await self._panel.balance()).currency or self._settings.currency
        except (PanelError, PanelUnavailable):
            self._currency = (fallback, now + CURRENCY_RETRY)
            return fallback
        self._currency = (currency, now + CURRENCY_TTL)
        return currency

    # --- drafts and placement -------------------------------------------------------------

    async def create_draft(
        self, chat_id: int, user_id: int, service: Service, answers: dict[str, Any]
    ) -> Order:
        """The order as the confirmation shows it: a snapshot of the service and the price."""
        # `fields` keeps the exact `add` arguments; the columns are for display and stats.
        arguments = add_arguments(service, answers)
        columns = {name: arguments.get(name) for name in _COLUMN_ARGUMENTS}
        columns["quantity"] = order_quantity(service, answers)
        currency = await self.currency()  # a panel call: before the transaction, not in it
        price = order_price(service, answers)
        customer = await self._customer_price(service, price, answers)
        async with self._sessions() as session, session.begin():
            return await order_store.create_draft(
                session,
                chat_id=chat_id,
                user_id=user_id,
                service_id=service.id,
                service_name=service.name,
                service_type=service.type,
                service_rate=service.rate,
                category=service.category,
                can_refill=service.refill,
                can_cancel=service.cancel,
                fields=arguments,
                price=price,
                currency=currency,
                **customer,
                **columns,
            )

    async def _customer_price(
        self, service: Service, price: Decimal, answers: dict[str, Any]
    ) -> dict[str, Any]:
        """Reseller mode: the customer's price and currency, fixed here for Confirm to debit;
        no price for what a wallet cannot pay (an open-ended subscription has no total)."""
        if self._billing is None:
            return {}
        currency = self._billing.currency
        posts = answers.get("posts")
        if is_open_ended(service, posts if isinstance(posts, int) else None):
            return {"customer_price": None, "customer_currency": currency}
        markups = await self._billing.markups()
        try:
            customer = self._billing.price(price, service.id, service.category, markups)
        except billing.NotOffered:
            return {"customer_price": None, "customer_currency": currency}
        return {"customer_price": customer, "customer_currency": currency}

    async def price_list(self) -> PriceList:
        """The rates service buttons and cards show: the panel's in team mode, the customer's
        (exchange rate and markup, in the shop currency) in reseller mode."""
        if self._billing is None:
            return PriceList(await self.currency(), None, Markups())
        return PriceList(self._billing.currency, self._billing, await self._billing.markups())

    async def confirm(
        self, chat_id: int, user_id: int, order_id: int, *, is_admin: bool
    ) -> Placement:
        """Confirm a draft: over a spending limit it waits for an admin, else it is placed.

        Only the user who filled the form may confirm it (in a group, others see it as gone),
        and only while they may order: their stored access is read again, in the transaction
        that takes the draft, which also locks their row so that their confirmations on every
        instance pass the daily limit one at a time.
        """
        async with self._confirming.hold(user_id):
            return await self._confirm(chat_id, user_id, order_id, is_admin=is_admin)

    async def _confirm(
        self, chat_id: int, user_id: int, order_id: int, *, is_admin: bool
    ) -> Placement:
        async with self._sessions() as session:
            order = await order_store.get_owned_order(session, chat_id, order_id)
        if order is None or order.user_id != user_id:
            return Placement(Outcome.GONE)
        if order.state != SubmissionState.DRAFT:
            return Placement(Outcome.TAKEN, order)
        if self._billing is not None and order.customer_price is None:
            return Placement(Outcome.NOT_OFFERED, order)
        if await self._service_changed(order):
            await self.drop_draft(chat_id, user_id, order_id)
            return Placement(Outcome.CHANGED, order)
        try:
            placement = await self._take_draft(chat_id, user_id, order, is_admin=is_admin)
        except InsufficientFunds as short:
            # The whole transaction rolled back: the draft is still a draft, nothing booked.
            return Placement(Outcome.SHORT, order, balance=short.balance)
        if placement is not None:
            return placement
        placed = await self._submit(order_id, back_to=SubmissionState.DRAFT, decided=False)
        if self._billing is not None and placed.outcome == Outcome.PLACED:
            # "Paid from your wallet", with what is left in it.
            wallet = await self._billing.wallet(user_id, last=0)
            return dataclasses.replace(placed, balance=wallet.balance)
        return placed

    async def _take_draft(
        self, chat_id: int, user_id: int, order: Order, *, is_admin: bool
    ) -> Placement | None:
        """Move the draft out of `draft` — to wait for approval, or to `submitting` (None:
        the caller sends it) — and, in reseller mode, debit its price in the same
        transaction (raises InsufficientFunds, and nothing changes, on a short balance)."""
        order_id = order.id
        async with self._sessions() as session, session.begin():
            stored = await people_store.lock_user_access(session, user_id)
            if not decide_access(self._settings, user_id, stored).may_order:
                await order_store.move_state(
                    session,
                    order_id,
                    expected=[SubmissionState.DRAFT],
                    to=SubmissionState.CANCELED,
                    chat_id=chat_id,
                )
                return Placement(Outcome.DENIED, order)
            waits = await self._needs_approval(session, order, is_admin=is_admin)
            target = SubmissionState.AWAITING_APPROVAL if waits else SubmissionState.SUBMITTING
            moved = await order_store.move_state(
                session,
                order_id,
                expected=[SubmissionState.DRAFT],
                to=target,
                chat_id=chat_id,
                attempt=order_store.NEXT_ATTEMPT,
            )
            taken = await order_store.get_order(session, order_id)
            if not moved or taken is None:
                return Placement(Outcome.TAKEN, taken or order)
            if self._billing is not None:
                await billing.charge_order(session, taken)
            if waits:
                await self._ask_admins(session, taken)
                return Placement(Outcome.AWAITING_APPROVAL, taken)
        return None

    async def _requester(self, session: AsyncSession, order: Order) -> str:
        user = await people_store.get_user(session, order.user_id)
        return notices.person_mention(order.user_id, user.first_name if user else None)

    async def _ask_admins(self, session: AsyncSession, order: Order) -> None:
        requester = await self._requester(session, order)
        await self._notifier.tell_admins(
            session,
            lambda _: notices.approval_request_text(order, requester, _),
            kind=APPROVAL_REQUEST,
            buttons=lambda _: self._buttons.approval(order.id, _),
        )

    async def _service_changed(self, order: Order) -> bool:
        """True when the panel's catalog no longer offers what the summary showed.

        A summary can be confirmed long after it was shown: if the service went away or its
        rate, type or name changed, `add` would order something else than what was agreed.
        """
        if self._catalog is None:
            return False
        try:
            snapshot = await self._catalog.get()
        except (PanelError, PanelUnavailable):
            return False  # the stored snapshot is what the user saw; `add` itself will tell
        return _differs(order, snapshot.service(order.service_id))

    async def drop_draft(self, chat_id: int, user_id: int, order_id: int) -> bool:
        async with self._sessions() as session, session.begin():
            order = await order_store.get_owned_order(session, chat_id, order_id)
            if order is None or order.user_id != user_id:
                return False
            return await order_store.move_state(
                session,
                order_id,
                expected=[SubmissionState.DRAFT],
                to=SubmissionState.CANCELED,
                chat_id=chat_id,
            )

    async def decide(self, order_id: int, admin_id: int, *, approve: bool) -> Placement:
        """An admin's decision on an order waiting for approval; the first decision wins.

        An approval checks a fresh catalog first: an order that waited hours is placed only on
        the terms (rate, type, name) its customer agreed to.
        """
        if approve:
            changed = await self._changed_since_request(order_id, admin_id)
            if changed is not None:
                return changed
        target = SubmissionState.SUBMITTING if approve else SubmissionState.REJECTED
        async with self._sessions() as session, session.begin():
            won = await order_store.move_state(
                session,
                order_id,
                expected=[SubmissionState.AWAITING_APPROVAL],
                to=target,
                decided_by=admin_id,
            )
            order = await order_store.get_order(session, order_id)
            if order is not None and won and not approve:
                rejected = order
                refund = await self._settle_money(session, order, moved=True, late=False)
                await self._notifier.tell(
                    session,
                    [order.chat_id],
                    lambda _: (
                        notices.rejected_text(rejected, _)
                        if refund is None
                        else notices.rejected_refunded_text(rejected, refund, _)
                    ),
                    kind=DECISION,
                )
        if order is None:
            return Placement(Outcome.GONE)
        if not won:
            return Placement(Outcome.TAKEN, order)
        if not approve:
            return Placement(Outcome.REJECTED, order)
        return await self._submit(
            order_id, back_to=SubmissionState.AWAITING_APPROVAL, decided=True
        )

    async def _changed_since_request(self, order_id: int, admin_id: int) -> Placement | None:
        """None when the order may be placed as requested; otherwise what the approval did:
        nothing at all (the catalog cannot be read now), or the order failed because its
        service changed — and its customer is told, in the same transaction."""
        async with self._sessions() as session:
            order = await order_store.get_order(session, order_id)
        if order is None or order.state != SubmissionState.AWAITING_APPROVAL:
            return None  # the compare-and-set that follows says what happened
        if self._catalog is None:
            return None
        try:
            snapshot = await self._catalog.refresh()
        except (PanelError, PanelUnavailable):
            return Placement(Outcome.UNAVAILABLE, order)
        if not _differs(order, snapshot.service(order.service_id)):
            return None
        async with self._sessions() as session, session.begin():
            moved = await order_store.move_state(
                session,
                order_id,
                expected=[SubmissionState.AWAITING_APPROVAL],
                to=SubmissionState.FAILED,
                error=SERVICE_CHANGED,
                decided_by=admin_id,
            )
            current = await order_store.get_order(session, order_id)
            if not moved or current is None:
                return Placement(Outcome.TAKEN, current)
            await self._settle_money(session, current, moved=True, late=False)
            await self._notifier.tell(
                session,
                [order.chat_id],
                functools.partial(notices.service_changed_text, current),
                kind=DECISION,
            )
        return Placement(Outcome.CHANGED, current)

    async def _needs_approval(
        self, session: AsyncSession, order: Order, *, is_admin: bool
    ) -> bool:
        limit = self._settings.max_order_price
        daily = None if is_admin else self._settings.user_daily_limit
        if limit is None and daily is None:
            return False
        if _open_ended(order):
            return True  # charged per post with no end: no limit can be checked in advance
        price = _limit_price(order)
        if limit is not None and price > limit:
            return True
        if daily is None:
            return False
        spent = await self._spent_today(session, order.user_id, excluding=order.id)
        return spent + price > daily

    async def _spent_today(
        self, session: AsyncSession, user_id: int, *, excluding: int
    ) -> Decimal:
        """What the user's orders confirmed today (UTC) cost: placed, in flight or waiting.

        In reseller mode, what their wallet paid for orders today: customer prices less the
        refunds, in the shop currency (this order is not charged yet)."""
        midnight = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
        if self._billing is not None:
            return await order_store.wallet_spent_since(session, user_id, midnight)
        confirmed = await order_store.confirmed_since(
            session, user_id, midnight, excluding=excluding
        )
        return sum((order_cost(price, charge) for price, charge in confirmed), Decimal(0))

    async def _submit(
        self, order_id: int, *, back_to: SubmissionState, decided: bool
    ) -> Placement:
        """The one `add` call of a draft that this caller moved to `submitting`.

        `back_to` is where the order returns when the request never left (nothing ordered);
        `decided`: an admin's approval, so the customer is told the outcome by message.
        """
        async with self._sessions() as session:
            order = await order_store.get_order(session, order_id)
        assert order is not None and order.state == SubmissionState.SUBMITTING
        try:
            panel_order_id = await self._panel.add(order.service_id, **dict(order.fields))
        except PanelError as error:
            return await self._finish(
                order_id, SubmissionState.FAILED, decided=decided, error=error.message
            )
        except OrderOutcomeUnknown as error:
            log.warning("order %s: outcome unknown (%s)", order_id, error)
            return await self._finish(
                order_id, SubmissionState.UNKNOWN, decided=decided, error=str(error)
            )
        except PanelUnavailable as error:
            # Refused before sending: nothing was ordered, so it may be confirmed again.
            log.info("order %s: panel unreachable (%s)", order_id, error)
            placement = await self._finish(order_id, back_to, decided=decided)
            return Placement(Outcome.UNAVAILABLE, placement.order, refund=placement.refund)
        except asyncio.CancelledError:
            # Stopped while `add` was in flight: it may have reached the panel.
            stopped = self._finish(
                order_id, SubmissionState.UNKNOWN, decided=decided, error="stopped"
            )
            await asyncio.shield(stopped)
            raise
        # Logged before anything else can fail: the one place this id is known for sure.
        log.info("order %s placed on the panel as %s", order_id, panel_order_id)
        return await self._record_placed(order_id, panel_order_id, decided=decided)

    async def _record_placed(
        self, order_id: int, panel_order_id: int, *, decided: bool
    ) -> Placement:
        now = utcnow()
        values = {
            "panel_order_id": panel_order_id,
            "placed_at": now,
            "status": str(OrderStatus.PENDING),
            "poll_active": True,
            "next_poll_at": now + timedelta(seconds=self._settings.poll_interval),
            "error": None,
        }
        try:
            return await self._finish(order_id, SubmissionState.PLACED, decided=decided, **values)
        except IntegrityError:
            # The panel gave an id we already hold: never guess, let an admin reconcile.
            log.error("order %s: panel id %s is already recorded", order_id, panel_order_id)
            return await self._finish(
                order_id,
                SubmissionState.UNKNOWN,
                decided=decided,
                error=f"duplicate panel id {panel_order_id}",
            )

    async def _finish(
        self, order_id: int, state: SubmissionState, *, decided: bool, **values: Any
    ) -> Placement:
        """Record how the `add` ended, with the messages it calls for, in one transaction; the
        outcome reported is what the database now holds.

        An answer that comes after a slow panel may find the order already marked unknown (the
        poller's guard against interrupted submissions), or failed by an admin who found nothing
        on the panel yet: the panel's answer is better knowledge. A late id is announced to the
        admins and the customer, who may have been told otherwise.
        """
        async with self._sessions() as session, session.begin():
            moved = await order_store.move_state(
                session, order_id, expected=[SubmissionState.SUBMITTING], to=state, **values
            )
            late = False
            if not moved and state in _LATE_ANSWER_WINS_OVER:
                late = await order_store.move_state(
                    session, order_id, expected=_LATE_ANSWER_WINS_OVER[state], to=state, **values
                )
            order = await order_store.get_order(session, order_id)
            assert order is not None
            refund = await self._settle_money(session, order, moved=moved, late=late)
            if moved:
                await self._announce_end(session, order, decided=decided)
            elif late and state == SubmissionState.PLACED:
                await self._announce_late_placement(session, order)
        outcome = _OUTCOME_OF_STATE.get(SubmissionState(order.state), Outcome.FAILED)
        return Placement(outcome, order, error=order.error, refund=refund)

    async def _settle_money(
        self, session: AsyncSession, order: Order, *, moved: bool, late: bool
    ) -> Refund | None:
        """Reseller mode: what the end of an attempt does to the money it took. Refused, or
        never sent (back to the draft): refunded at once. Unknown, or back to waiting for
        approval: held. Placed late after a refund: charged again (a late charge)."""
        if self._billing is None or not (moved or late):
            return None
        state = SubmissionState(order.state)
        if state in _REFUNDED_STATES:
            return await billing.refund_attempt(session, order)
        if late and state == SubmissionState.PLACED and await billing.late_charge(session, order):
            log.warning("order %s: placed after its refund; charged again", order.id)
        return None

    async def _announce_late_placement(self, session: AsyncSession, order: Order) -> None:
        log.warning("order %s: the panel placed it late, as %s", order.id, order.panel_order_id)
        await self._notifier.tell_admins(
            session, functools.partial(notices.late_placement_alert, order), kind=ADMIN_ALERT
        )
        if order.customer_currency is not None:
            balance = await billing.wallet_balance(session, order.user_id)
            await self._notifier.tell(
                session,
                [order.chat_id],
                lambda _: notices.late_charge_text(order, balance, _),
                kind=DECISION,
            )
        panel_order_id = order.panel_order_id or 0
        await self._notifier.tell(
            session,
            [order.chat_id],
            lambda _: notices.order_confirmed_text(
                _, order_id=order.id, panel_order_id=panel_order_id
            ),
            kind=DECISION,
        )

    async def _announce_end(self, session: AsyncSession, order: Order, *, decided: bool) -> None:
        """What the end of a placement tells: admins of an unknown outcome or of a panel out of
        funds; the customer, when an admin's approval (not their own press) placed it."""
        state = SubmissionState(order.state)
        if state == SubmissionState.UNKNOWN:
            await self._notifier.tell_admins(
                session,
                functools.partial(notices.unknown_outcome_alert, order),
                kind=ADMIN_ALERT,
                buttons=lambda _: self._buttons.reconcile(order.id, _),
            )
        elif state == SubmissionState.FAILED and is_out_of_funds(order.error):
            requester = await self._requester(session, order)
            await self._notifier.tell_admins(
                session,
                lambda _: notices.out_of_funds_alert(order, requester, _),
                kind=ADMIN_ALERT,
            )
        if decided and state in _TOLD_AFTER_APPROVAL:
            told = functools.partial(_TOLD_AFTER_APPROVAL[state], order)
            await self._notifier.tell(session, [order.chat_id], told, kind=DECISION)

    # --- placed orders --------------------------------------------------------------------

    async def list_orders(self, chat_id: int, *, page: int, size: int) -> tuple[list[Order], int]:
        async with self._sessions() as session:
            found, total = await order_store.list_chat_orders(
                session, chat_id, offset=max(page, 0) * size, limit=size
            )
        return list(found), total

    async def find(self, chat_id: int, order_id: int) -> Order | None:
        async with self._sessions() as session:
            return await order_store.get_owned_order(session, chat_id, order_id)

    async def find_by_panel_id(self, chat_id: int, panel_order_id: int) -> Order | None:
        async with self._sessions() as session:
            return await order_store.get_owned_by_panel_id(session, chat_id, panel_order_id)

    async def refresh(self, chat_id: int, order_id: int) -> Order | None:
        """Ask the panel for a placed, unfinished order's status and store it."""
        order = await self.find(chat_id, order_id)
        if order is None or not _is_open(order) or order.panel_order_id is None:
            return order
        try:
            result = await self._panel.status(order.panel_order_id)
        except (PanelError, PanelUnavailable) as error:
            log.info("refresh of order %s failed: %s", order_id, type(error).__name__)
            return order
        async with self._sessions() as session, session.begin():
            await self._store_status(session, order, result)
            return await order_store.get_order(session, order_id)

    async def _store_status(
        self, session: AsyncSession, order: Order, result: OrderStatusResult
    ) -> None:
        await record_status(
            session,
            self._settings,
            order,
            result,
            i18n=self._i18n,
            buttons=self._buttons,
            announce_owner=False,
        )

    async def order_again(
        self, chat_id: int, order_id: int, member: Access
    ) -> tuple[Service, dict[str, Any]]:
        """The service of an earlier order as the panel offers it now, and the answers of that
        order that still hold: a fresh summary at today's price (confirmed like any other)."""
        order = await self.find(chat_id, order_id)
        if order is None or order.state != SubmissionState.PLACED:
            raise OrderActionError("not_found")
        if not may_act_on(order, member):
            raise OrderActionError("not_yours")
        if self._catalog is None:
            raise OrderActionError("service_gone")
        try:
            snapshot = await self._catalog.get()
        except (PanelError, PanelUnavailable):
            raise OrderActionError("panel_unavailable") from None
        service = snapshot.service(order.service_id)
        if service is None:
            raise OrderActionError("service_gone")
        return service, answers_again(service, dict(order.fields or {}))

    async def _order_to_act_on(
        self, chat_id: int, order_id: int, member: Access
    ) -> tuple[Order, int]:
        """A refill or a cancel is for the order's own user, or an admin in the owning chat.

        The order and its panel id (it has one: only placed orders can be acted on)."""
        order = await self.find(chat_id, order_id)
        if order is None or order.panel_order_id is None:
            raise OrderActionError("not_found")
        if not may_act_on(order, member):
            raise OrderActionError("not_yours")
        return order, order.panel_order_id

    async def request_refill(self, chat_id: int, order_id: int, member: Access) -> Refill:
        order, panel_order_id = await self._order_to_act_on(chat_id, order_id, member)
        if not order.can_refill:
            raise OrderActionError("refill_not_supported")
        if order.status not in REFILLABLE:
            raise OrderActionError("refill_not_yet")
        try:
            refill_id = await self._panel.refill(panel_order_id)
        except PanelError as error:
            raise OrderActionError("panel_refused", error.message) from None
        except PanelUnavailable:
            raise OrderActionError("panel_unavailable") from None
        next_poll = utcnow() + timedelta(seconds=self._settings.poll_interval)
        async with self._sessions() as session, session.begin():
            return await order_store.add_refill(session, order.id, refill_id, next_poll)

    async def cancel_order(self, chat_id: int, order_id: int, member: Access) -> Order:
        order, panel_order_id = await self._order_to_act_on(chat_id, order_id, member)
        if not order.can_cancel:
            raise OrderActionError("cancel_not_supported")
        if not _is_open(order):
            raise OrderActionError("already_finished")
        try:
            results = await self._panel.cancel([panel_order_id])
        except PanelError as error:
            raise OrderActionError("panel_refused", error.message) from None
        except PanelUnavailable:
            raise OrderActionError("panel_unavailable") from None
        result = results.get(panel_order_id)
        if result is None or not result.ok:
            raise OrderActionError("panel_refused", result.error if result else None)
        async with self._sessions() as session, session.begin():
            await order_store.record_cancel_requested(session, order.id)
            cancelled = await order_store.get_order(session, order.id)
        return cancelled or order

    async def refills_of(self, chat_id: int, order_id: int) -> list[Refill]:
        async with self._sessions() as session:
            order = await order_store.get_owned_order(session, chat_id, order_id)
            if order is None:
                return []
            return list(await order_store.order_refills(session, order.id))


def may_act_on(order: Order, member: Access) -> bool:
    """Refill and cancel are for the order's own user, or an admin (in the owning chat)."""
    return order.user_id == member.user_id or member.is_admin


async def give_up_interrupted_submissions(
    sessions: async_sessionmaker[AsyncSession], notifier: Notifier, started_before: datetime
) -> list[int]:
    """Orders left in `submitting` since before `started_before` by a process that stopped
    during `add`: now `unknown` (never sent again), with the admins and the customer told, in
    one transaction. Their ids."""
    async with sessions.begin() as session:
        given_up = await order_store.mark_interrupted_submissions_unknown(session, started_before)
        for order_id in given_up:
            order = await order_store.get_order(session, order_id)
            if order is None:
                continue
            log.warning("order %d was interrupted during add: marked unknown", order_id)
            alert = functools.partial(notices.unknown_outcome_alert, order)
            await notifier.tell_admins(session, alert, kind=ADMIN_ALERT)
            await notifier.tell(
                session, [order.chat_id], notices.unknown_outcome_text, kind=DECISION
            )
    return given_up


def _differs(order: Order, service: Service | None) -> bool:
    """The panel no longer offers what the order's summary showed (gone, or another rate, type
    or name): `add` would order something else than what was agreed."""
    return service is None or (service.rate, service.type, service.name) != (
        order.service_rate,
        order.service_type,
        order.service_name,
    )


class UserLocks:
    """One lock per user, kept only while someone holds or waits for it (100,000 users who
    confirmed once leave nothing behind)."""

    def __init__(self) -> None:
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @contextlib.asynccontextmanager
    async def hold(self, user_id: int) -> AsyncIterator[None]:
        lock, users = self._locks.get(user_id, (None, 0))
        lock = lock or asyncio.Lock()
        self._locks[user_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            _, users = self._locks[user_id]
            if users == 1:
                del self._locks[user_id]
            else:
                self._locks[user_id] = (lock, users - 1)


def _placed_told(order: Order, _: Translate) -> str:
    return notices.placed_text(order, _)


def _unknown_told(order: Order, _: Translate) -> str:
    return notices.unknown_outcome_text(_)


def _failed_told(order: Order, _: Translate) -> str:
    if order.customer_currency is not None:
        return notices.wallet_refusal(order.error, _)
    return notices.panel_refusal(order.error, _)


# Where an attempt's money goes back to the wallet at once (see `Ordering._settle_money`).
_REFUNDED_STATES = frozenset(
    {SubmissionState.DRAFT, SubmissionState.FAILED, SubmissionState.REJECTED}
)


# A panel answer that arrives after the order was given up on (see `_finish`).
_LATE_ANSWER_WINS_OVER: dict[SubmissionState, list[SubmissionState]] = {
    SubmissionState.PLACED: [SubmissionState.UNKNOWN, SubmissionState.FAILED],
    SubmissionState.FAILED: [SubmissionState.UNKNOWN],
}

# What the customer is told when an approved order's placement ends.
_TOLD_AFTER_APPROVAL: dict[SubmissionState, Callable[[Order, Translate], str]] = {
    SubmissionState.PLACED: _placed_told,
    SubmissionState.UNKNOWN: _unknown_told,
    SubmissionState.FAILED: _failed_told,
}

_OUTCOME_OF_STATE = {
    SubmissionState.PLACED: Outcome.PLACED,
    SubmissionState.UNKNOWN: Outcome.UNKNOWN,
    SubmissionState.DRAFT: Outcome.UNAVAILABLE,
    SubmissionState.AWAITING_APPROVAL: Outcome.UNAVAILABLE,
}


def _limit_price(order: Order) -> Decimal:
    """The price a spending limit compares: the customer's in reseller mode."""
    if order.customer_currency is not None and order.customer_price is not None:
        return order.customer_price
    return order.price


def _open_ended(order: Order) -> bool:
    """A subscription without a number of posts: its price is per post, with no total."""
    return is_open_ended(order.service_type, (order.fields or {}).get("posts"))


def _is_open(order: Order) -> bool:
    return order.state == SubmissionState.PLACED and not is_terminal_order_status(order.status)
