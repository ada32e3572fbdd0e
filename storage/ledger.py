"""The reseller ledger: append-only wallet entries, one balance per customer, and markups.

`book` is the only way money moves. It inserts the entry with `ON CONFLICT (reference) DO
NOTHING` and changes the balance only when the row went in, in the caller's transaction and
under the wallet's lock, so a repeated event (a redelivered payment update, a second instance
seeing the same status) books nothing and never aborts the transaction around it.

Amounts on SQLite are text (see `storage.db.Money`): every sum here is a Decimal sum in Python
there, never SQLite's float SUM; PostgreSQL sums its exact NUMERIC itself.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import ColumnElement, Select, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from storage.db import utcnow
from storage.models import LedgerEntry, LedgerKind, Markup, Order, SubmissionState, Wallet
from storage.upsert import upsert, upsert_statement

# Kinds that take money out of a wallet; the amount given to `book` is always positive.
OUTGOING: Final = frozenset(
    {LedgerKind.CHARGE, LedgerKind.DEBIT, LedgerKind.STARS_REFUND, LedgerKind.LATE_CHARGE}
)
# The one kind that may take a wallet below zero: the order was placed, the money is owed.
MAY_OVERDRAW: Final = frozenset({LedgerKind.LATE_CHARGE})
# Far beyond any top-up, and small enough that a lifetime of sums fits the text column.
MAX_AMOUNT: Final = Decimal(10) ** 15
REFERENCE_LENGTH: Final = 128


class LedgerRefusal(Exception):
    """The ledger will not book this entry; nothing was written."""


class InvalidEntry(LedgerRefusal, ValueError):
    """An amount of zero or less (or not a finite Decimal), an unknown kind, a bad reference."""


class InsufficientFunds(LedgerRefusal):
    """A charge, debit or Stars refund larger than the wallet holds."""

    def __init__(self, balance: Decimal, amount: Decimal) -> None:
        super().__init__(f"the wallet holds {balance}, {amount} was asked")
        self.balance = balance
        self.amount = amount


class CurrencyMismatch(LedgerRefusal):
    """The entry's currency is not the wallet's: a wallet holds one currency only."""


@dataclass(frozen=True, slots=True)
class Entry:
    """An entry to book. `amount` is positive: the kind gives the sign (see OUTGOING)."""

    user_id: int
    kind: LedgerKind
    amount: Decimal
    currency: str
    reference: str
    order_id: int | None = None
    admin_id: int | None = None
    note: str | None = None

    @property
    def signed_amount(self) -> Decimal:
        return -self.amount if self.kind in OUTGOING else self.amount


def _check(entry: Entry) -> None:
    try:
        LedgerKind(entry.kind)
    except ValueError:
        raise InvalidEntry(f"unknown ledger kind {entry.kind!r}") from None
    amount = entry.amount
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise InvalidEntry(f"an amount must be a finite Decimal, not {amount!r}")
    if amount <= 0:
        raise InvalidEntry(f"a {entry.kind} of {amount} is refused: amounts must be above zero")
    if amount >= MAX_AMOUNT:
        raise InvalidEntry(f"a {entry.kind} of {amount} is beyond any real payment")
    if not entry.reference or len(entry.reference) > REFERENCE_LENGTH:
        raise InvalidEntry(f"a reference is 1…{REFERENCE_LENGTH} characters")
    if not entry.currency:
        raise InvalidEntry("an entry needs a currency")


async def _locked_wallet(session: AsyncSession, user_id: int, currency: str) -> Wallet:
    """The user's wallet row, created at zero if missing, locked until the transaction ends.

    The insert comes first on purpose: on SQLite it is a write, so it takes the database's
    single write lock before the balance is read (a read first could be outrun by another
    writer and then fail to upgrade); on PostgreSQL `FOR UPDATE` holds the row.
    """
    now = utcnow()
    dialect = session.get_bind().dialect.name
    await session.execute(
        upsert_statement(dialect, Wallet.__table__, ["user_id"], []),  # type: ignore[arg-type]
        {"user_id": user_id, "balance": Decimal(0), "currency": currency, "updated_at": now},
    )
    statement = (
        select(Wallet).where(Wallet.user_id == user_id).execution_options(populate_existing=True)
    )
    if dialect == "postgresql":
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one()


async def book(session: AsyncSession, entry: Entry) -> bool:
    """Book `entry` in the caller's transaction: True if it was booked now, False if its
    reference was booked before (nothing changes then).

    Raises InvalidEntry for an amount of zero or less, InsufficientFunds when anything but a
    late charge would take the wallet below zero, and CurrencyMismatch; nothing is booked then.
    """
    _check(entry)
    wallet = await _locked_wallet(session, entry.user_id, entry.currency)
    # Under the wallet's lock, an earlier booking of this reference for this user is visible.
    if await _booked(session, entry.reference):
        return False
    if wallet.currency != entry.currency:
        raise CurrencyMismatch(
            f"wallet {entry.user_id} holds {wallet.currency}, the entry is in {entry.currency}"
        )
    balance = wallet.balance + entry.signed_amount
    if balance < 0 and entry.signed_amount < 0 and entry.kind not in MAY_OVERDRAW:
        raise InsufficientFunds(wallet.balance, entry.amount)
    inserted = await _insert(session, entry)
    if not inserted:  # the same reference, booked meanwhile for another user's wallet
        return False
    wallet.balance = balance  # computed in Python: SQLite would add the text as floats
    wallet.updated_at = utcnow()
    await session.flush()
    return True


async def _booked(session: AsyncSession, reference: str) -> bool:
    found = await session.execute(select(LedgerEntry.id).where(LedgerEntry.reference == reference))
    return found.first() is not None


async def _insert(session: AsyncSession, entry: Entry) -> bool:
    dialect = session.get_bind().dialect.name
    statement = upsert_statement(
        dialect,
        LedgerEntry.__table__,  # type: ignore[arg-type]
        ["reference"],
        [],
    ).returning(LedgerEntry.__table__.c.id)
    values = {
        "user_id": entry.user_id,
        "amount": entry.signed_amount,
        "currency": entry.currency,
        "kind": str(entry.kind),
        "reference": entry.reference,
        "order_id": entry.order_id,
        "admin_id": entry.admin_id,
        "note": entry.note,
        "created_at": utcnow(),
    }
    return (await session.execute(statement, values)).first() is not None


# --- reading -----------------------------------------------------------------------------------


async def get_wallet(session: AsyncSession, user_id: int) -> Wallet | None:
    return await session.get(Wallet, user_id, populate_existing=True)


async def balance(session: AsyncSession, user_id: int) -> Decimal:
    """The wallet's balance; zero for someone who never had one."""
    wallet = await get_wallet(session, user_id)
    return Decimal(0) if wallet is None else wallet.balance


async def last_entries(session: AsyncSession, user_id: int, limit: int = 10) -> list[LedgerEntry]:
    """The user's newest entries first."""
    rows = await session.execute(
        select(LedgerEntry)
        .where(LedgerEntry.user_id == user_id)
        .order_by(LedgerEntry.id.desc())
        .limit(limit)
    )
    return list(rows.scalars())


async def entry_by_reference(session: AsyncSession, reference: str) -> LedgerEntry | None:
    rows = await session.execute(select(LedgerEntry).where(LedgerEntry.reference == reference))
    return rows.scalar_one_or_none()


async def entries_for_order(session: AsyncSession, order_id: int) -> list[LedgerEntry]:
    """Every entry an order booked (charges, refunds, a late charge), oldest first."""
    rows = await session.execute(
        select(LedgerEntry).where(LedgerEntry.order_id == order_id).order_by(LedgerEntry.id)
    )
    return list(rows.scalars())


async def _sums(
    session: AsyncSession,
    group: InstrumentedAttribute[Any],
    amount: InstrumentedAttribute[Decimal],
    where: Iterable[ColumnElement[bool]] = (),
) -> dict[Any, Decimal]:
    """Exact sums of `amount` by `group`: in the database on PostgreSQL, in Python on SQLite."""
    conditions = list(where)
    if session.get_bind().dialect.name == "postgresql":
        statement: Select[Any] = select(group, func.sum(amount)).where(*conditions).group_by(group)
        return {key: total for key, total in await session.execute(statement)}
    totals: dict[Any, Decimal] = defaultdict(Decimal)
    rows = await session.stream(select(group, amount).where(*conditions))
    async for key, value in rows:
        totals[key] += value
    return dict(totals)


async def entries_total(session: AsyncSession, user_id: int) -> Decimal:
    """The sum of a user's entries: what their wallet's balance must be."""
    sums = await _sums(
        session, LedgerEntry.user_id, LedgerEntry.amount, [LedgerEntry.user_id == user_id]
    )
    return sums.get(user_id, Decimal(0))


async def sums_by_kind(
    session: AsyncSession, since: datetime, until: datetime, currency: str | None = None
) -> dict[LedgerKind, Decimal]:
    """Signed totals of each kind booked in [since, until) (charges are negative)."""
    where = [LedgerEntry.created_at >= since, LedgerEntry.created_at < until]
    if currency is not None:
        where.append(LedgerEntry.currency == currency)
    sums = await _sums(session, LedgerEntry.kind, LedgerEntry.amount, where)
    return {LedgerKind(kind): total for kind, total in sums.items()}


async def sum_of_wallets(session: AsyncSession) -> dict[str, Decimal]:
    """All balances added up, by currency: what the owner owes the customers."""
    return await _sums(session, Wallet.currency, Wallet.balance)


async def wallet_currencies(session: AsyncSession) -> list[str]:
    """The currencies wallets hold (one in a healthy shop; none before the first booking)."""
    rows = await session.execute(select(Wallet.currency).distinct().order_by(Wallet.currency))
    return list(rows.scalars())


# --- markups ---------------------------------------------------------------------------------


async def all_markups(session: AsyncSession) -> list[Markup]:
    rows = await session.execute(select(Markup).order_by(Markup.scope, Markup.key))
    return list(rows.scalars())


async def set_markup(session: AsyncSession, scope: str, key: str, percent: Decimal) -> None:
    await upsert(
        session,
        Markup.__table__,  # type: ignore[arg-type]
        {"scope": scope, "key": key, "percent": percent, "updated_at": utcnow()},
        ["scope", "key"],
        ["percent", "updated_at"],
    )


async def clear_markup(session: AsyncSession, scope: str, key: str) -> bool:
    """Remove a markup; True if there was one."""
    result = await session.execute(delete(Markup).where(Markup.scope == scope, Markup.key == key))
    return bool(getattr(result, "rowcount", 0))


# --- reseller statistics (/stats) ---------------------------------------------------------


async def charged_order_costs(
    session: AsyncSession, since: datetime, until: datetime
) -> list[tuple[Decimal, Decimal | None, str]]:
    """(panel price, panel charge, panel currency) of every placed order whose wallet was
    charged in [since, until), each order once however many attempts it took: what the panel
    took for the orders sold in that time. Orders still unknown, or never placed, cost the
    owner nothing yet."""
    charged = (
        select(LedgerEntry.order_id)
        .where(
            LedgerEntry.kind == str(LedgerKind.CHARGE),
            LedgerEntry.created_at >= since,
            LedgerEntry.created_at < until,
            LedgerEntry.order_id.is_not(None),
        )
        .distinct()
    )
    rows = await session.execute(
        select(Order.price, Order.charge, Order.currency).where(
            Order.id.in_(charged), Order.state == str(SubmissionState.PLACED)
        )
    )
    return [(price, charge, currency) for price, charge, currency in rows]
