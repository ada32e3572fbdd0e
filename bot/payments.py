"""Telegram Stars top-ups of customer wallets (reseller mode): invoices, pre-checkout
decisions, crediting payments exactly once, Stars refunds, and the daily comparison of
Telegram's transactions with the ledger.

A payment is credited on `successful_payment` only, with the reference
`stars:<telegram_payment_charge_id>`: a repeated update books nothing, a second payment of one
invoice (another charge id) is credited too. The amount credited is the one the customer
pressed (the top-up row), never a figure read from the payload.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import LabeledPrice, TransactionPartnerUser
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.billing import (
    InvalidAmount,
    check_amount,
    invoice_accepts,
    stars_for,
    stars_reference,
    stars_refund_reference,
)
from bot.config import Settings
from bot.money import format_money
from bot.notices import Translate, Translations
from bot.notify import Notifier
from storage import ledger, people, topups
from storage.models import LedgerKind

log = logging.getLogger(__name__)

STARS: Final = "XTR"
PAYLOAD_PREFIX: Final = "topup:"
# Forwarded copies of an invoice with a start parameter open the bot instead of paying.
START_PARAMETER: Final = "wallet"
REFUND_RETRY_DELAYS: Final = (1.0, 3.0, 10.0)
ALREADY_REFUNDED: Final = "CHARGE_ALREADY_REFUNDED"
DAY: Final = 24 * 60 * 60
TRANSACTIONS_PAGE: Final = 100


class TopupRefused(Exception):
    """No top-up now: Stars are off (no STAR_PRICE), the user was /deny'd, or the amount's
    Stars do not fit one invoice. The message says which, for logs."""


class BelowMinimum(InvalidAmount):
    """A top-up below MIN_TOPUP."""


class Refusal(enum.StrEnum):
    """Why a pre-checkout query is answered `ok: false` (the handler words it)."""

    NOT_STARS = "not_stars"
    UNKNOWN = "unknown"  # not a top-up of this bot, or of another user
    CHANGED = "changed"  # the Stars or the shop currency are not what the invoice said
    DENIED = "denied"


class RefundOutcome(enum.StrEnum):
    REFUNDED = "refunded"  # Telegram gave the Stars back (now, or it had already)
    REFUSED = "refused"  # Telegram said no: the debit was reversed
    REFUSED_BEFORE = "refused_before"  # a refusal was booked earlier: nothing is tried again
    PENDING = "pending"  # Telegram did not answer: the debit stays, /refund_stars again
    SPENT = "spent"  # the wallet no longer holds the credited amount: nothing was done
    UNKNOWN_CHARGE = "unknown_charge"  # no top-up was booked under this charge id


@dataclass(frozen=True, slots=True)
class Quote:
    """A pending top-up: its row, the amount to credit and the Stars its invoice asks."""

    topup_id: int
    amount: Decimal
    currency: str
    stars: int

    @property
    def payload(self) -> str:
        return invoice_payload(self.topup_id)


@dataclass(frozen=True, slots=True)
class Credited:
    """A successful payment, booked now (False: it was booked before, or not matched)."""

    booked: bool
    matched: bool
    amount: Decimal
    balance: Decimal
    currency: str
    return_order: int | None


@dataclass(frozen=True, slots=True)
class StarsRefund:
    outcome: RefundOutcome
    user_id: int | None = None
    amount: Decimal | None = None
    balance: Decimal | None = None
    currency: str | None = None
    detail: str = ""  # Telegram's refusal


# The title and description of an invoice, in the customer's language (from the handler).
DescribeInvoice = Callable[[Quote], tuple[str, str]]


def invoice_payload(topup_id: int) -> str:
    return f"{PAYLOAD_PREFIX}{topup_id}"


def topup_of(payload: str) -> int | None:
    """The top-up an invoice payload names; None for anything else."""
    number = payload.removeprefix(PAYLOAD_PREFIX)
    if not payload.startswith(PAYLOAD_PREFIX) or not number.isdigit() or len(number) > 12:
        return None
    return int(number)


def reversal_reference(charge_id: str) -> str:
    """The credit that undoes a Stars-refund debit Telegram refused."""
    return f"{stars_refund_reference(charge_id)}:reversed"


class Payments:
    """Stars top-ups. Each method that changes money is one unit of work of its own."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        i18n: Translations,
        *,
        retry_delays: Sequence[float] = REFUND_RETRY_DELAYS,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._notifier = Notifier(settings, i18n)
        self._retry_delays = tuple(retry_delays)

    @property
    def offered(self) -> bool:
        """Stars top-ups are offered in wallet mode with a STAR_PRICE."""
        return self._settings.wallet_mode and self._settings.star_price is not None

    @property
    def currency(self) -> str:
        return self._settings.shop_currency or ""

    def topup_amounts(self) -> list[Decimal]:
        return list(self._settings.topup_amounts)

    @property
    def min_topup(self) -> Decimal:
        return self._settings.min_topup or Decimal("0.01")

    # --- invoices ---------------------------------------------------------------------

    def quote_stars(self, amount: Decimal) -> int:
        star_price = self._settings.star_price
        if star_price is None:
            raise TopupRefused("Stars top-ups need STAR_PRICE")
        return stars_for(amount, star_price)

    async def start_topup(
        self,
        bot: Bot,
        chat_id: int,
        user_id: int,
        amount: Decimal,
        describe: DescribeInvoice,
        *,
        return_order: int | None = None,
    ) -> Quote:
        """Record a pending top-up and send its invoice to the user's chat.

        Raises InvalidAmount (bad or below MIN_TOPUP: see `check_topup`), TopupRefused.
        """
        amount = self.check_topup(amount)
        stars = self.quote_stars(amount)
        if not invoice_accepts(stars):
            raise TopupRefused(f"{stars} Stars do not fit one invoice")
        async with self._sessions() as session, session.begin():
            if await self._denied(session, user_id):
                raise TopupRefused("a denied user tops up nothing")
            row = await topups.add_topup(
                session, user_id, amount, self.currency, stars, return_order or None
            )
            quote = Quote(row.id, amount, self.currency, stars)
        title, description = describe(quote)
        await bot.send_invoice(
            chat_id=chat_id,
            title=title,
            description=description,
            payload=quote.payload,
            currency=STARS,
            prices=[LabeledPrice(label=title, amount=stars)],
            start_parameter=START_PARAMETER,
        )
        return quote

    def check_topup(self, amount: Decimal) -> Decimal:
        """A typed or pressed amount: whole cents above zero, and one of TOPUP_AMOUNTS or at
        least MIN_TOPUP (raises InvalidAmount; BelowMinimum when under MIN_TOPUP)."""
        amount = check_amount(amount)
        # The offered buttons are the owner's choice; MIN_TOPUP bounds what is typed.
        if amount < self.min_topup and amount not in self._settings.topup_amounts:
            raise BelowMinimum(f"{amount} is below the least top-up {self.min_topup}")
        return amount

    # --- pre-checkout and payment -------------------------------------------------------

    async def pre_checkout(
        self, user_id: int, payload: str, currency: str, total_amount: int
    ) -> Refusal | None:
        """None when the payment may go ahead: this user's top-up, the same Stars, Stars at
        all, a user not /deny'd; else why not."""
        if currency != STARS:
            return Refusal.NOT_STARS
        topup_id = topup_of(payload)
        async with self._sessions() as session:
            if await self._denied(session, user_id):
                return Refusal.DENIED
            row = await topups.get_topup(session, topup_id) if topup_id is not None else None
        if row is None or row.user_id != user_id:
            return Refusal.UNKNOWN
        if row.stars != total_amount or row.currency != self.currency:
            return Refusal.CHANGED
        return None

    async def paid(
        self, user_id: int, payload: str, total_amount: int, charge_id: str
    ) -> Credited:
        """Credit a successful payment once: the amount pressed, whatever state the top-up
        row is in. A payment that matches no top-up of this user is not lost: the admins
        are told (Telegram holds the Stars; /refund_stars or /credit settles it)."""
        topup_id = topup_of(payload)
        reference = stars_reference(charge_id)
        async with self._sessions() as session, session.begin():
            row = await topups.get_topup(session, topup_id) if topup_id is not None else None
            if row is None or row.user_id != user_id:
                await self._tell_unmatched(session, user_id, charge_id, total_amount)
                balance = await ledger.balance(session, user_id)
                return Credited(False, False, Decimal(0), balance, self.currency, None)
            entry = ledger.Entry(
                user_id,
                LedgerKind.TOPUP,
                row.amount,
                row.currency,
                reference,
                note=f"topup {row.id}: {total_amount} Stars",
            )
            booked = await ledger.book(session, entry)
            await topups.mark_paid(session, row.id)
            wallet = await ledger.get_wallet(session, user_id)
            assert wallet is not None  # book() created it
            return Credited(
                booked, True, row.amount, wallet.balance, wallet.currency, row.return_order
            )

    # --- refunds ----------------------------------------------------------------------

    async def refund(self, bot: Bot, charge_id: str, admin_id: int) -> StarsRefund:
        """An admin gives the Stars of one payment back: debit the wallet first (only while
        it still holds the credited amount), then ask Telegram; a refusal books a reversing
        credit, a timeout is retried, "already refunded" counts as done."""
        async with self._sessions() as session, session.begin():
            paid = await ledger.entry_by_reference(session, stars_reference(charge_id))
            if paid is None or paid.kind != LedgerKind.TOPUP:
                return StarsRefund(RefundOutcome.UNKNOWN_CHARGE)
            user_id, amount, currency = paid.user_id, paid.amount, paid.currency
            if await ledger.entry_by_reference(session, reversal_reference(charge_id)):
                return StarsRefund(RefundOutcome.REFUSED_BEFORE, user_id, amount)
            debit = ledger.Entry(
                user_id,
                LedgerKind.STARS_REFUND,
                amount,
                currency,
                stars_refund_reference(charge_id),
                admin_id=admin_id,
                note="Stars refunded",
            )
            try:
                await ledger.book(session, debit)  # under the wallet's lock
            except ledger.InsufficientFunds as short:
                return StarsRefund(RefundOutcome.SPENT, user_id, amount, short.balance, currency)
        refusal = await self._ask_telegram(bot, user_id, charge_id)
        if refusal is None:
            return StarsRefund(
                RefundOutcome.REFUNDED, user_id, amount, await self._balance(user_id), currency
            )
        if refusal == "":
            return StarsRefund(RefundOutcome.PENDING, user_id, amount, None, currency)
        async with self._sessions() as session, session.begin():
            reversal = ledger.Entry(
                user_id,
                LedgerKind.CREDIT,
                amount,
                currency,
                reversal_reference(charge_id),
                admin_id=admin_id,
                note=f"Stars refund refused: {refusal}"[:500],
            )
            await ledger.book(session, reversal)
        return StarsRefund(
            RefundOutcome.REFUSED,
            user_id,
            amount,
            await self._balance(user_id),
            currency,
            detail=refusal,
        )

    async def _ask_telegram(self, bot: Bot, user_id: int, charge_id: str) -> str | None:
        """None: refunded (now or before); "": no answer after the retries; else Telegram's
        refusal."""
        for delay in (*self._retry_delays, None):
            try:
                await bot.refund_star_payment(
                    user_id=user_id, telegram_payment_charge_id=charge_id
                )
                return None
            except TelegramBadRequest as error:
                if ALREADY_REFUNDED in error.message:
                    return None
                return error.message or "refused"
            except TelegramRetryAfter as error:
                wait = float(error.retry_after)
            except (TelegramNetworkError, TelegramServerError) as error:
                log.warning("refundStarPayment: no answer (%s), retrying", type(error).__name__)
                wait = delay or 0.0
            except TelegramAPIError as error:  # 401/403…: a refusal of its own kind
                return error.message or "refused"
            if delay is None:
                return ""
            await asyncio.sleep(max(wait, delay))
        return ""

    async def refunded_elsewhere(self, user_id: int, charge_id: str) -> bool:
        """A `refunded_payment` message (a refund made elsewhere): book the same debit an
        admin's /refund_stars books; True if booked now. A wallet that no longer holds the
        amount books nothing and the admins are told."""
        async with self._sessions() as session, session.begin():
            paid = await ledger.entry_by_reference(session, stars_reference(charge_id))
            if paid is None:
                await self._tell_admins(
                    session,
                    f"refunded-unbooked:{charge_id}",
                    lambda _: _(
                        "Telegram refunded the Stars payment {charge} of user {user}, which "
                        "was never credited: nothing was booked."
                    ).format(charge=charge_id, user=user_id),
                )
                return False
            debit = ledger.Entry(
                paid.user_id,
                LedgerKind.STARS_REFUND,
                paid.amount,
                paid.currency,
                stars_refund_reference(charge_id),
                note="Stars refunded elsewhere",
            )
            try:
                return await ledger.book(session, debit)
            except ledger.InsufficientFunds:
                amount = format_money(paid.amount, paid.currency)
                await self._tell_admins(
                    session,
                    f"refunded-spent:{charge_id}",
                    lambda _: _(
                        "Telegram refunded the Stars payment {charge} of user {user}, but the "
                        "wallet no longer holds {amount}: debit what you can with /debit."
                    ).format(charge=charge_id, user=paid.user_id, amount=amount),
                )
                return False

    # --- the daily comparison ---------------------------------------------------------

    async def unbooked_payments(self, bot: Bot) -> list[str]:
        """Charge ids of top-up payments Telegram took that the ledger never booked (a crash
        between Telegram and the database); the admins are told of each one once."""
        incoming: dict[str, tuple[int, int]] = {}  # charge id → (user, Stars)
        offset = 0
        while True:
            page = await bot.get_star_transactions(offset=offset, limit=TRANSACTIONS_PAGE)
            for transaction in page.transactions:
                source = transaction.source
                if (
                    isinstance(source, TransactionPartnerUser)
                    and topup_of(source.invoice_payload or "") is not None
                ):
                    incoming[transaction.id] = (source.user.id, transaction.amount)
            if len(page.transactions) < TRANSACTIONS_PAGE:
                break
            offset += TRANSACTIONS_PAGE
        references = {stars_reference(charge): charge for charge in incoming}
        async with self._sessions() as session, session.begin():
            booked = await topups.booked_references(session, list(references))
            missing = [charge for ref, charge in references.items() if ref not in booked]
            for charge in missing:
                user_id, stars = incoming[charge]
                await self._tell_admins(
                    session,
                    f"unbooked:{charge}",
                    _unbooked_text(charge, user_id, stars),
                )
        return missing

    async def run_daily(self, bot: Bot) -> None:
        """The comparison once at start and then every day, surviving Telegram's errors."""
        while True:
            try:
                await self.unbooked_payments(bot)
            except (TelegramAPIError, OSError) as error:
                log.warning("Stars comparison failed: %s", type(error).__name__)
            await asyncio.sleep(DAY)

    # --- inside ---------------------------------------------------------------------

    async def _denied(self, session: AsyncSession, user_id: int) -> bool:
        if self._settings.is_admin(user_id):
            return False
        person = await people.get_user(session, user_id)
        return person is not None and person.access is False

    async def _balance(self, user_id: int) -> Decimal:
        async with self._sessions() as session:
            return await ledger.balance(session, user_id)

    async def _tell_unmatched(
        self, session: AsyncSession, user_id: int, charge_id: str, stars: int
    ) -> None:
        await self._tell_admins(
            session, f"unmatched:{charge_id}", _unmatched_text(charge_id, user_id, stars)
        )

    async def _tell_admins(
        self, session: AsyncSession, key: str, render: Callable[[Translate], str]
    ) -> None:
        if await topups.first_alert(session, f"stars:{key}"):
            await self._notifier.tell_admins(session, render, kind="stars")


def _unbooked_text(charge_id: str, user_id: int, stars: int) -> Callable[[Translate], str]:
    return lambda _: _(
        "⚠️ Telegram took a Stars payment the bot never booked: {stars} Stars from user "
        "{user}, charge {charge}. Credit it with /credit or refund it with /refund_stars."
    ).format(stars=stars, user=user_id, charge=charge_id)


def _unmatched_text(charge_id: str, user_id: int, stars: int) -> Callable[[Translate], str]:
    return lambda _: _(
        "⚠️ A Stars payment matches no top-up: {stars} Stars from user {user}, charge "
        "{charge}. Credit it with /credit or refund it with /refund_stars."
    ).format(stars=stars, user=user_id, charge=charge_id)
