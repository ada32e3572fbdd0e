"""Reseller mode (BILLING=wallet): customer prices with markups, refunds, Stars counts, the
references of ledger entries, and `Billing`, the service that owns wallet units of work.

Every rule is computed exactly (with fractions) and rounded once, at the end: a customer price
up to the cent, a Partial refund half up to the cent. Money moves only through
`storage.ledger.book`.
"""

from __future__ import annotations

import enum
import html
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Final, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.money import format_money
from bot.notices import Translate, Translations
from storage import ledger
from storage.ledger import InsufficientFunds as InsufficientFunds  # for handlers/
from storage.models import LedgerEntry as LedgerEntry  # what /wallet screens show
from storage.models import LedgerKind, Markup
from storage.models import MarkupScope as MarkupScope

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.notify import Notifier

CENT: Final = Decimal("0.01")
# Telegram takes 1…10000 Stars in one invoice's single price (whole Stars, currency XTR).
MIN_STARS_PER_INVOICE: Final = 1
MAX_STARS_PER_INVOICE: Final = 10_000
LAST_ENTRIES: Final = 10
WALLET_NOTICE: Final = "wallet"


class NotOffered(ValueError):
    """A service that cannot be sold in wallet mode (a negative rate)."""


class InvalidRemains(ValueError):
    """A panel status whose `remains` is outside 0…the ordered quantity: nothing is booked."""


class AmountProblem(enum.StrEnum):
    """Why a typed amount (or markup percent) was refused, for a clear answer."""

    NOT_A_NUMBER = "not_a_number"
    NOT_POSITIVE = "not_positive"  # zero or less (a percent: below zero)
    FINER_THAN_CENT = "finer_than_cent"  # more than two decimals
    TOO_LARGE = "too_large"


class InvalidAmount(ValueError):
    """An amount typed for a wallet (a top-up, a credit, a debit): zero or less, finer than a
    cent, or beyond what one payment can be."""

    def __init__(self, message: str, problem: AmountProblem = AmountProblem.NOT_A_NUMBER) -> None:
        super().__init__(message)
        self.problem = problem


# --- prices --------------------------------------------------------------------------------


def _cents_up(value: Fraction) -> Decimal:
    return Decimal(math.ceil(value * 100)).scaleb(-2)


def _cents_half_up(value: Fraction) -> Decimal:
    return Decimal(math.floor(value * 100 + Fraction(1, 2))).scaleb(-2)


def customer_price(
    panel_price: Decimal, exchange_rate: Decimal, markup_percent: Decimal
) -> Decimal:
    """panel price × exchange rate × (1 + markup / 100), rounded up to the cent, once.

    `panel_price` is the order's whole price at the panel (`bot.services.order_price`): rounding
    the rate instead would multiply a rounding by the quantity. Raises NotOffered for a
    negative panel price, ValueError for a rate ≤ 0 or a negative markup.
    """
    if panel_price < 0:
        raise NotOffered(f"a negative panel price ({panel_price}) is not offered")
    if exchange_rate <= 0 or markup_percent < 0:
        raise ValueError("the exchange rate must be above zero and the markup at least zero")
    exact = Fraction(panel_price) * Fraction(exchange_rate) * (1 + Fraction(markup_percent) / 100)
    return _cents_up(exact)


def is_offered(rate: Decimal) -> bool:
    """Whether a service can be sold from a wallet: a negative rate is invalid, whatever the
    quantity (a quantity of 0 would otherwise price it at nothing)."""
    return rate.is_finite() and rate >= 0


@dataclass(frozen=True, slots=True)
class Markups:
    """The markups set with /markup; `percent_for` picks the most specific one."""

    services: Mapping[int, Decimal] = field(default_factory=dict)
    categories: Mapping[str, Decimal] = field(default_factory=dict)
    overall: Decimal | None = None  # the global one set with /markup

    @classmethod
    def from_rows(cls, rows: Iterable[Markup]) -> Markups:
        services: dict[int, Decimal] = {}
        categories: dict[str, Decimal] = {}
        overall: Decimal | None = None
        for row in rows:
            if row.scope == MarkupScope.SERVICE and row.key.isdigit():
                services[int(row.key)] = row.percent
            elif row.scope == MarkupScope.CATEGORY:
                categories[row.key] = row.percent
            elif row.scope == MarkupScope.GLOBAL:
                overall = row.percent
        return cls(services, categories, overall)

    def percent_for(self, service_id: int, category: str, default: Decimal) -> Decimal:
        """The service's markup, else its category's, else the global one, else `default`
        (MARKUP_PERCENT)."""
        if service_id in self.services:
            return self.services[service_id]
        if category in self.categories:
            return self.categories[category]
        return self.overall if self.overall is not None else default


# --- refunds -------------------------------------------------------------------------------


def partial_refund(price: Decimal, remains: int, ordered: int, refunded: Decimal) -> Decimal:
    """What a Partial order gives back: price × remains / ordered, rounded half up to the
    cent, never more than the price less the refunds already booked.

    `ordered` is the total the order asked for (quantity × runs for drip-feed, the lines of a
    list type). Raises InvalidRemains when `remains` is outside 0…ordered.
    """
    if ordered <= 0:
        raise InvalidRemains(f"an order of {ordered} has no remains to refund")
    if not 0 <= remains <= ordered:
        raise InvalidRemains(f"remains {remains} is outside 0…{ordered}")
    share = _cents_half_up(Fraction(price) * remains / ordered)
    return max(min(share, price - refunded), Decimal(0))


def rest_of_price(price: Decimal, refunded: Decimal) -> Decimal:
    """What a Canceled order gives back: the price less the refunds already booked."""
    return max(price - refunded, Decimal(0))


def ordered_quantity(quantity: int | None, runs: int | None) -> int | None:
    """The total an order asked for: quantity × runs with drip-feed; None without a quantity
    (a package or a subscription, refunded only when Canceled)."""
    if quantity is None:
        return None
    return quantity * (runs or 1)


# --- Stars ---------------------------------------------------------------------------------


def stars_for(amount: Decimal, star_price: Decimal) -> int:
    """The whole Stars an invoice for `amount` asks: ⌈amount / STAR_PRICE⌉."""
    if star_price <= 0:
        raise ValueError("STAR_PRICE must be above zero")
    return math.ceil(Fraction(amount) / Fraction(star_price))


def invoice_accepts(stars: int) -> bool:
    """Whether Telegram takes this many Stars in one invoice."""
    return MIN_STARS_PER_INVOICE <= stars <= MAX_STARS_PER_INVOICE


# --- references: one event, one entry ------------------------------------------------------


def charge_reference(order_id: int, attempt: int) -> str:
    return f"order:{order_id}:charge:{attempt}"


def refund_reference(order_id: int, attempt: int) -> str:
    return f"order:{order_id}:refund:{attempt}"


def late_charge_reference(order_id: int) -> str:
    return f"order:{order_id}:late-charge"


def stars_reference(charge_id: str) -> str:
    return f"stars:{charge_id}"


def stars_refund_reference(charge_id: str) -> str:
    return f"stars:{charge_id}:refund"


def admin_reference(chat_id: int, message_id: int) -> str:
    """An admin's /credit or /debit: a redelivered command books nothing."""
    return f"admin:{chat_id}:{message_id}"


# --- the service ---------------------------------------------------------------------------


def check_amount(amount: Decimal) -> Decimal:
    """A wallet amount as typed or configured: above zero, whole cents, a sane size."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise InvalidAmount(f"{amount} is not an amount", AmountProblem.NOT_A_NUMBER)
    if amount <= 0:
        raise InvalidAmount(f"{amount} is not above zero", AmountProblem.NOT_POSITIVE)
    if amount >= ledger.MAX_AMOUNT:
        raise InvalidAmount(f"{amount} is beyond any payment", AmountProblem.TOO_LARGE)
    if amount != amount.quantize(CENT, rounding=ROUND_DOWN):
        raise InvalidAmount(f"{amount} is finer than a cent", AmountProblem.FINER_THAN_CENT)
    return amount


@dataclass(frozen=True, slots=True)
class Booking:
    """What a wallet unit of work did: booked now (False: the event was booked before), and
    the balance after it."""

    booked: bool
    balance: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class WalletView:
    balance: Decimal
    currency: str
    entries: list[LedgerEntry]


class ShopCurrencyMismatch(Exception):
    """The wallets hold another currency than SHOP_CURRENCY; the message is one line."""


async def check_shop_currency(
    sessions: async_sessionmaker[AsyncSession], shop_currency: str
) -> None:
    """Refuse a SHOP_CURRENCY other than the one the wallets already hold: prices in one
    currency debited from balances in another would be wrong by the exchange rate."""
    async with sessions() as session:
        held = await ledger.wallet_currencies(session)
    others = [currency for currency in held if currency != shop_currency]
    if others:
        raise ShopCurrencyMismatch(
            f"SHOP_CURRENCY is {shop_currency} but the wallets hold {', '.join(others)}: "
            "set SHOP_CURRENCY back (balances are never converted)"
        )


class Billing:
    """Wallets in the shop currency: top-ups, admin credits and debits, balances, prices.

    Each method is one unit of work of its own. Refusals come as the ledger's exceptions
    (`InsufficientFunds`, `InvalidEntry`) or `InvalidAmount`; nothing is booked then.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        i18n: Translations | None = None,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        # Imported here: bot.config imports this module, and bot.notify imports bot.config.
        from bot.notify import Notifier

        # Without catalogs (unit tests) the people told read the English text.
        self._notifier: Notifier = Notifier(settings, i18n or _UNTRANSLATED)

    @property
    def currency(self) -> str:
        currency = self._settings.shop_currency
        if currency is None:
            raise RuntimeError("Billing needs SHOP_CURRENCY (BILLING=wallet)")
        return currency

    # prices

    async def markups(self) -> Markups:
        async with self._sessions() as session:
            return Markups.from_rows(await ledger.all_markups(session))

    def price(
        self, panel_price: Decimal, service_id: int, category: str, markups: Markups
    ) -> Decimal:
        """A customer's price for an order whose whole panel price is `panel_price`."""
        percent = markups.percent_for(service_id, category, self._settings.markup_percent)
        return customer_price(panel_price, self._settings.exchange_rate, percent)

    async def set_markup(self, scope: MarkupScope, key: str, percent: Decimal) -> None:
        check_percent(percent)
        key = "" if scope == MarkupScope.GLOBAL else key
        async with self._sessions() as session, session.begin():
            await ledger.set_markup(session, scope, key, percent)

    async def clear_markup(self, scope: MarkupScope, key: str) -> bool:
        key = "" if scope == MarkupScope.GLOBAL else key
        async with self._sessions() as session, session.begin():
            return await ledger.clear_markup(session, scope, key)

    # wallets

    async def topup(
        self, user_id: int, amount: Decimal, reference: str, note: str | None = None
    ) -> Booking:
        """Credit a paid top-up (reference `stars:<charge id>`): once, whatever repeats."""
        return await self._book(
            ledger.Entry(
                user_id,
                LedgerKind.TOPUP,
                check_amount(amount),
                self.currency,
                reference,
                note=note,
            )
        )

    async def credit(
        self,
        user_id: int,
        amount: Decimal,
        *,
        admin_id: int,
        reference: str,
        note: str | None = None,
    ) -> Booking:
        """An admin credits a payment taken elsewhere (reference `admin:<chat>:<message>`);
        the person is told with the booking, once."""
        return await self._by_admin(LedgerKind.CREDIT, user_id, amount, admin_id, reference, note)

    async def debit(
        self,
        user_id: int,
        amount: Decimal,
        *,
        admin_id: int,
        reference: str,
        note: str | None = None,
    ) -> Booking:
        """An admin takes money out; never below zero (raises InsufficientFunds). The person
        is told with the booking, once."""
        return await self._by_admin(LedgerKind.DEBIT, user_id, amount, admin_id, reference, note)

    async def _by_admin(
        self,
        kind: LedgerKind,
        user_id: int,
        amount: Decimal,
        admin_id: int,
        reference: str,
        note: str | None,
    ) -> Booking:
        entry = ledger.Entry(
            user_id,
            kind,
            check_amount(amount),
            self.currency,
            reference,
            admin_id=admin_id,
            note=_clip_note(note),
        )
        return await self._book(entry, tell=admin_change_text)

    async def wallet(self, user_id: int, last: int = LAST_ENTRIES) -> WalletView:
        """The balance and the newest entries of one customer."""
        async with self._sessions() as session:
            wallet = await ledger.get_wallet(session, user_id)
            entries = await ledger.last_entries(session, user_id, last)
        if wallet is None:
            return WalletView(Decimal(0), self.currency, entries)
        return WalletView(wallet.balance, wallet.currency, entries)

    async def _book(self, entry: ledger.Entry, tell: ChangeText | None = None) -> Booking:
        async with self._sessions() as session, session.begin():
            booked = await ledger.book(session, entry)
            wallet = await ledger.get_wallet(session, entry.user_id)
            assert wallet is not None  # book() creates it
            balance, currency = wallet.balance, wallet.currency
            if booked and tell is not None:
                # In the booking's transaction: the message exists exactly when the entry does.
                await self._notifier.tell(
                    session,
                    [entry.user_id],
                    lambda _: tell(_, entry, balance),
                    kind=WALLET_NOTICE,
                )
        return Booking(booked, balance, currency)


# --- orders paid from a wallet (used by bot.ordering, bot.status, bot.admin) ---------------
#
# Each helper books in the caller's transaction, so the money moves together with the order's
# state change that calls for it, and a repeat (a second instance, a redelivered event) books
# nothing. An order is a wallet order when it has a customer currency; its price is the
# customer price stored at the summary.


class OrderMoney(Protocol):
    """What the order helpers read of an order (a stored `Order` or the poller's `DueOrder`)."""

    @property
    def id(self) -> int: ...
    @property
    def user_id(self) -> int: ...
    @property
    def attempt(self) -> int: ...
    @property
    def customer_price(self) -> Decimal | None: ...
    @property
    def customer_currency(self) -> str | None: ...
    @property
    def quantity(self) -> int | None: ...
    @property
    def runs(self) -> int | None: ...


def final_refund_reference(order_id: int) -> str:
    """The refund of the panel's final status (Canceled or Partial): one per order."""
    return f"order:{order_id}:refund:final"


@dataclass(frozen=True, slots=True)
class Refund:
    """Money given back to a customer for an order, and their balance after it."""

    amount: Decimal
    balance: Decimal
    currency: str


async def held_for(session: AsyncSession, order_id: int) -> Decimal:
    """What the order holds of its customer's money now: charges (and a late charge) less the
    refunds booked for it."""
    entries = await ledger.entries_for_order(session, order_id)
    return -sum((entry.amount for entry in entries), Decimal(0))


async def charge_order(session: AsyncSession, order: OrderMoney) -> Decimal:
    """Debit the stored price for the order's current attempt; the balance after it.

    Raises InsufficientFunds (nothing booked) when the wallet holds less."""
    if order.customer_price is None or order.customer_currency is None:
        raise NotOffered(f"order {order.id} has no customer price")
    entry = ledger.Entry(
        order.user_id,
        LedgerKind.CHARGE,
        order.customer_price,
        order.customer_currency,
        charge_reference(order.id, order.attempt),
        order_id=order.id,
    )
    await ledger.book(session, entry)
    return await ledger.balance(session, order.user_id)


async def refund_attempt(session: AsyncSession, order: OrderMoney) -> Refund | None:
    """Give back what the order's current attempt was charged (a refusal, a request that never
    left, a rejection, an admin finding nothing on the panel). None when that attempt was not
    charged or is refunded already."""
    if order.attempt < 1:
        return None
    charged = await ledger.entry_by_reference(session, charge_reference(order.id, order.attempt))
    if charged is None:
        return None
    amount = -charged.amount
    entry = ledger.Entry(
        order.user_id,
        LedgerKind.REFUND,
        amount,
        charged.currency,
        refund_reference(order.id, order.attempt),
        order_id=order.id,
    )
    if not await ledger.book(session, entry):
        return None
    return Refund(amount, await ledger.balance(session, order.user_id), charged.currency)


async def late_charge(session: AsyncSession, order: OrderMoney) -> bool:
    """The panel placed an order whose attempt was refunded: charge it again, even below zero
    (the order exists, the money is owed). True if it was booked now."""
    if order.customer_price is None or order.customer_currency is None:
        return False
    refunded = await ledger.entry_by_reference(session, refund_reference(order.id, order.attempt))
    if refunded is None:
        return False
    entry = ledger.Entry(
        order.user_id,
        LedgerKind.LATE_CHARGE,
        order.customer_price,
        order.customer_currency,
        late_charge_reference(order.id),
        order_id=order.id,
    )
    return await ledger.book(session, entry)


def final_refund(
    price: Decimal, held: Decimal, status: str, remains: int | None, ordered: int | None
) -> Decimal:
    """What the panel's final status gives back of an order that holds `held`: Canceled the
    rest, Partial price × remains / ordered (nothing for an order without a quantity).

    Raises InvalidRemains for a Partial whose `remains` is missing or outside 0…ordered."""
    refunded = price - held
    if status == "Canceled":
        return min(rest_of_price(price, refunded), max(held, Decimal(0)))
    if status != "Partial" or ordered is None:
        return Decimal(0)
    if remains is None:
        raise InvalidRemains("a Partial status without remains")
    return min(partial_refund(price, remains, ordered, refunded), max(held, Decimal(0)))


async def refund_final_status(
    session: AsyncSession, order: OrderMoney, status: str, remains: int | None
) -> Refund | None:
    """Book the refund of a final status (once per order); None when nothing is due."""
    if order.customer_price is None or order.customer_currency is None:
        return None
    held = await held_for(session, order.id)
    ordered = ordered_quantity(order.quantity, order.runs)
    amount = final_refund(order.customer_price, held, status, remains, ordered)
    if amount <= 0:
        return None
    entry = ledger.Entry(
        order.user_id,
        LedgerKind.REFUND,
        amount,
        order.customer_currency,
        final_refund_reference(order.id),
        order_id=order.id,
    )
    if not await ledger.book(session, entry):
        return None
    return Refund(amount, await ledger.balance(session, order.user_id), order.customer_currency)


async def wallet_balance(session: AsyncSession, user_id: int) -> Decimal:
    return await ledger.balance(session, user_id)


# --- admin: what admins type, and what the people whose wallet changed read ---------------

# A plain decimal number as typed: digits, at most one point, an optional sign (so "-5" is
# refused as "not above zero" rather than as "not a number"). Long enough for any real
# amount, short enough that nothing huge reaches Decimal.
_NUMBER = re.compile(r"[+-]?[0-9]{1,30}(?:\.[0-9]{1,30})?")
MAX_MARKUP_PERCENT: Final = Decimal(10_000)  # 100× the panel price: beyond it, a typo
NOTE_LENGTH: Final = 200


def _number(text: str) -> Decimal:
    candidate = text.strip()
    if not candidate.isascii() or not _NUMBER.fullmatch(candidate):
        raise InvalidAmount(f"{candidate[:40]!r} is not a number", AmountProblem.NOT_A_NUMBER)
    return Decimal(candidate)


def parse_amount(text: str) -> Decimal:
    """A money amount an admin typed ("10", "2.50"): above zero, at most two decimals.
    Raises InvalidAmount with the problem to explain."""
    return check_amount(_number(text))


def check_percent(percent: Decimal) -> Decimal:
    """A markup percent: at least zero, at most two decimals, below MAX_MARKUP_PERCENT."""
    if not percent.is_finite():
        raise InvalidAmount(f"{percent} is not a percent", AmountProblem.NOT_A_NUMBER)
    if percent < 0:
        raise InvalidAmount(f"a markup of {percent}% is below zero", AmountProblem.NOT_POSITIVE)
    if percent > MAX_MARKUP_PERCENT:
        raise InvalidAmount(f"a markup of {percent}% is beyond sense", AmountProblem.TOO_LARGE)
    if percent != percent.quantize(CENT, rounding=ROUND_DOWN):
        raise InvalidAmount(f"{percent}% is finer than 0.01", AmountProblem.FINER_THAN_CENT)
    return percent


def parse_percent(text: str) -> Decimal:
    """A markup percent as typed ("15", "12.5", "15%")."""
    return check_percent(_number(text.strip().removesuffix("%")))


def _clip_note(note: str | None) -> str | None:
    note = " ".join((note or "").split())
    return note[:NOTE_LENGTH] or None


def entry_kind_label(kind: str, _: Translate) -> str:
    """What moved a wallet, in words: the one label of a ledger kind on every screen."""
    labels = {
        LedgerKind.TOPUP: _("Top-up (Stars)"),
        LedgerKind.CHARGE: _("Order payment"),
        LedgerKind.REFUND: _("Order refund"),
        LedgerKind.CREDIT: _("Added by an admin"),
        LedgerKind.DEBIT: _("Taken by an admin"),
        LedgerKind.STARS_REFUND: _("Stars given back"),
        LedgerKind.LATE_CHARGE: _("Late order payment"),
    }
    try:
        return labels[LedgerKind(kind)]
    except ValueError:
        return kind


class ChangeText(Protocol):
    def __call__(self, _: Translate, entry: ledger.Entry, balance: Decimal) -> str: ...


def admin_change_text(_: Translate, entry: ledger.Entry, balance: Decimal) -> str:
    """What a person reads when an admin credited or debited their wallet."""
    amount = format_money(entry.amount, entry.currency)
    if entry.kind == LedgerKind.DEBIT:
        text = _("An admin took {amount} from your wallet.")
    else:
        text = _("💰 An admin added {amount} to your wallet.")
    lines = [text.format(amount=f"<b>{amount}</b>")]
    if entry.note:
        lines.append(_("Note: {note}").format(note=html.escape(entry.note)))
    balance_text = format_money(balance, entry.currency)
    lines.append(_("Your balance: {balance}").format(balance=f"<b>{balance_text}</b>"))
    return "\n".join(lines)


class _Untranslated:
    def gettext(
        self, singular: str, plural: str | None = None, n: int = 1, locale: str | None = None
    ) -> str:
        return singular if n == 1 or plural is None else plural


_UNTRANSLATED: Final = _Untranslated()
