"""The ledger on SQLite (and PostgreSQL when TEST_DATABASE_URL is set): one entry per
reference, balances that are the sum of their entries, no overdraft but a late charge, exact
sums, and a property test of concurrent bookings from two engines (two instances)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from migrations import alembic_config
from storage import ledger
from storage.db import create_engine, create_session_factory, utcnow
from storage.ledger import CurrencyMismatch, Entry, InsufficientFunds, InvalidEntry
from storage.models import LedgerEntry, LedgerKind, Wallet

USD = "USD"
Sessions = async_sessionmaker[AsyncSession]


def entry(
    kind: LedgerKind, amount: str, reference: str, user_id: int = 1, **fields: object
) -> Entry:
    return Entry(user_id, kind, Decimal(amount), USD, reference, **fields)  # type: ignore[arg-type]


async def book(sessions: Sessions, *entries: Entry) -> list[bool]:
    async with sessions() as session, session.begin():
        return [await ledger.book(session, one) for one in entries]


async def balance(sessions: Sessions, user_id: int = 1) -> Decimal:
    async with sessions() as session:
        return await ledger.balance(session, user_id)


async def count_entries(sessions: Sessions) -> int:
    async with sessions() as session:
        return int((await session.execute(select(func.count(LedgerEntry.id)))).scalar_one())


def test_the_ledger_migration_is_on_the_one_head() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    heads = script.get_heads()
    assert len(heads) == 1, heads
    history = {revision.revision for revision in script.iterate_revisions(heads[0], "base")}
    assert {"e4a7c9b1d3f5", "d9e2b7c4a6f1"} <= history


async def test_a_reference_books_once(sessions: Sessions) -> None:
    assert await book(sessions, entry(LedgerKind.TOPUP, "10.00", "stars:abc")) == [True]
    assert await book(sessions, entry(LedgerKind.TOPUP, "10.00", "stars:abc")) == [False]
    assert await balance(sessions) == Decimal("10.00")
    assert await count_entries(sessions) == 1


async def test_a_repeat_does_not_abort_the_transaction_around_it(sessions: Sessions) -> None:
    """On PostgreSQL a unique violation would abort the whole transaction; ON CONFLICT DO
    NOTHING leaves the rest of the unit of work to commit."""
    await book(sessions, entry(LedgerKind.CREDIT, "5", "admin:1:1"))
    results = await book(
        sessions,
        entry(LedgerKind.CREDIT, "5", "admin:1:1"),
        entry(LedgerKind.CHARGE, "2", "order:7:charge:1", order_id=7),
    )
    assert results == [False, True]
    assert await balance(sessions) == Decimal(3)


async def test_the_kind_gives_the_sign(sessions: Sessions) -> None:
    await book(
        sessions,
        entry(LedgerKind.TOPUP, "10", "t"),
        entry(LedgerKind.CHARGE, "4", "c", order_id=1),
        entry(LedgerKind.REFUND, "1.5", "r", order_id=1),
        entry(LedgerKind.DEBIT, "0.5", "d", admin_id=99, note="fee"),
    )
    async with sessions() as session:
        signed = {e.reference: e.amount for e in await ledger.last_entries(session, 1)}
        debit = await ledger.entry_by_reference(session, "d")
    assert signed == {"t": 10, "c": -4, "r": Decimal("1.5"), "d": Decimal("-0.5")}
    assert debit is not None and (debit.admin_id, debit.note, debit.kind) == (99, "fee", "debit")
    assert await balance(sessions) == Decimal(7)


@pytest.mark.parametrize("kind", list(LedgerKind))
@pytest.mark.parametrize("amount", ["0", "-1", "0.00"])
async def test_zero_or_less_is_refused_for_every_kind(
    sessions: Sessions, kind: LedgerKind, amount: str
) -> None:
    with pytest.raises(InvalidEntry):
        await book(sessions, entry(kind, amount, f"{kind}:{amount}"))
    assert await count_entries(sessions) == 0


async def test_not_a_finite_decimal_is_refused(sessions: Sessions) -> None:
    for bad in (Decimal("NaN"), Decimal("Infinity"), 5):
        with pytest.raises(InvalidEntry):
            await book(sessions, Entry(1, LedgerKind.TOPUP, bad, USD, "x"))  # type: ignore[arg-type]
    with pytest.raises(InvalidEntry):
        await book(sessions, Entry(1, "bonus", Decimal(1), USD, "x"))  # type: ignore[arg-type]
    with pytest.raises(InvalidEntry):
        await book(sessions, entry(LedgerKind.TOPUP, "1", "r" * 129))
    assert await count_entries(sessions) == 0


async def test_no_overdraft_but_a_late_charge(sessions: Sessions) -> None:
    await book(sessions, entry(LedgerKind.TOPUP, "3.00", "t1"))
    for kind in (LedgerKind.CHARGE, LedgerKind.DEBIT, LedgerKind.STARS_REFUND):
        with pytest.raises(InsufficientFunds) as refused:
            await book(sessions, entry(kind, "3.01", f"{kind}:1"))
        assert refused.value.balance == Decimal("3.00")
    assert await count_entries(sessions) == 1
    assert await book(sessions, entry(LedgerKind.CHARGE, "3.00", "c1")) == [True]  # to zero
    assert await book(sessions, entry(LedgerKind.LATE_CHARGE, "2.00", "order:5:late-charge")) == [
        True
    ]
    assert await balance(sessions) == Decimal("-2.00")
    with pytest.raises(InsufficientFunds):  # a negative wallet pays for nothing
        await book(sessions, entry(LedgerKind.CHARGE, "0.01", "c2"))
    assert await book(sessions, entry(LedgerKind.REFUND, "0.50", "r1")) == [True]
    assert await balance(sessions) == Decimal("-1.50")


async def test_a_repeated_charge_books_nothing_even_when_the_money_is_gone(
    sessions: Sessions,
) -> None:
    charge = entry(LedgerKind.CHARGE, "2", "order:1:charge:1", order_id=1)
    await book(sessions, entry(LedgerKind.TOPUP, "2", "t"), charge)
    assert await book(sessions, charge) == [False]  # not InsufficientFunds: it is booked


async def test_a_wallet_holds_one_currency(sessions: Sessions) -> None:
    await book(sessions, entry(LedgerKind.TOPUP, "1", "t"))
    with pytest.raises(CurrencyMismatch):
        await book(sessions, Entry(1, LedgerKind.TOPUP, Decimal(1), "PHP", "t-php"))
    async with sessions() as session:
        assert await ledger.wallet_currencies(session) == [USD]


async def test_sums_are_exact_decimals(sessions: Sessions) -> None:
    """SQLite stores money as text: a float SUM of 0.1 + 0.2 would not be 0.3."""
    cents = [entry(LedgerKind.TOPUP, "0.1", "a"), entry(LedgerKind.TOPUP, "0.2", "b")]
    cents += [entry(LedgerKind.CREDIT, "0.01", f"c{n}", user_id=2) for n in range(30)]
    await book(sessions, *cents, entry(LedgerKind.CHARGE, "0.07", "ch", user_id=2, order_id=9))
    now = utcnow()
    async with sessions() as session:
        by_kind = await ledger.sums_by_kind(session, now - timedelta(hours=1), now + timedelta(1))
        wallets = await ledger.sum_of_wallets(session)
        assert await ledger.entries_total(session, 1) == Decimal("0.3")
        assert await ledger.balance(session, 2) == Decimal("0.23")
        assert [e.reference for e in await ledger.entries_for_order(session, 9)] == ["ch"]
        assert await ledger.sums_by_kind(session, now + timedelta(1), now + timedelta(2)) == {}
    assert by_kind == {
        LedgerKind.TOPUP: Decimal("0.3"),
        LedgerKind.CREDIT: Decimal("0.30"),
        LedgerKind.CHARGE: Decimal("-0.07"),
    }
    assert wallets == {USD: Decimal("0.53")}


async def test_last_entries_newest_first(sessions: Sessions) -> None:
    await book(sessions, *(entry(LedgerKind.TOPUP, "1", f"t{n}") for n in range(5)))
    async with sessions() as session:
        newest = await ledger.last_entries(session, 1, limit=3)
        assert await ledger.last_entries(session, 404) == []
        assert await ledger.balance(session, 404) == 0
    assert [e.reference for e in newest] == ["t4", "t3", "t2"]


# --- the property test -------------------------------------------------------------------------

USERS = (1, 2, 3, 4)
REFERENCES = 60  # fewer than the operations: references repeat, as redelivered events do
OPERATIONS = 240
WORKERS = 8
KINDS = list(LedgerKind)


@dataclass
class Attempt:
    entry: Entry
    booked: bool | None = None  # None: refused
    committed: bool = False


def random_entry(rng: random.Random) -> Entry:
    number = rng.randrange(REFERENCES)
    # An event is what it is: a repeated reference repeats its entry (its user, kind, amount)…
    event = random.Random(number)
    kind = event.choice(KINDS)
    amount = Decimal(event.randrange(-100, 2000)) / 100  # some zero or less: refused
    user = event.choice(USERS)
    if rng.random() < 0.1:  # …except when a buggy caller reuses one for something else
        user, amount = rng.choice(USERS), Decimal(rng.randrange(1, 500)) / 100
    return Entry(user, kind, amount, USD, f"ref:{number}", order_id=number)


async def run_attempts(sessions: Sessions, attempts: list[Attempt], rng: random.Random) -> None:
    """One or two bookings in a transaction that commits, or now and then rolls back."""
    async with sessions() as session:
        try:
            async with session.begin():
                for attempt in attempts:
                    try:  # a refusal writes nothing: the transaction goes on
                        attempt.booked = await ledger.book(session, attempt.entry)
                    except ledger.LedgerRefusal:
                        attempt.booked = None
                if rng.random() < 0.15:
                    raise _RolledBack
            for attempt in attempts:
                attempt.committed = True
        except _RolledBack:
            pass


class _RolledBack(Exception):
    pass


async def property_run(database_url: str, seed: int) -> list[Attempt]:
    rng = random.Random(seed)
    engines = [create_engine(database_url), create_engine(database_url)]  # two instances
    factories = [create_session_factory(engine) for engine in engines]
    queue: asyncio.Queue[list[Attempt]] = asyncio.Queue()
    everything: list[Attempt] = []
    while len(everything) < OPERATIONS:
        group = [Attempt(random_entry(rng))]
        if rng.random() < 0.3:  # a second booking in the same unit of work, same wallet
            second = random_entry(rng)
            if second.user_id == group[0].entry.user_id:
                group.append(Attempt(second))
        everything += group
        queue.put_nowait(group)

    async def worker(number: int) -> None:
        local = random.Random(seed * 100 + number)
        while not queue.empty():
            group = queue.get_nowait()
            await run_attempts(local.choice(factories), group, local)
            await asyncio.sleep(0)

    try:
        await asyncio.gather(*(worker(n) for n in range(WORKERS)))
    finally:
        for engine in engines:
            await engine.dispose()
    return everything


@pytest.mark.parametrize("seed", [1, 2])
async def test_concurrent_bookings_keep_every_promise(
    database_url: str, sessions: Sessions, seed: int
) -> None:
    attempts = await property_run(database_url, seed)
    async with sessions() as session:
        entries = list(
            (await session.execute(select(LedgerEntry).order_by(LedgerEntry.id))).scalars()
        )
        wallets = {w.user_id: w for w in (await session.execute(select(Wallet))).scalars()}
        totals = {user: await ledger.entries_total(session, user) for user in wallets}

    # One entry per reference, and each one reported booked by exactly one committed attempt.
    assert max(Counter(e.reference for e in entries).values(), default=1) == 1
    won = Counter(a.entry.reference for a in attempts if a.committed and a.booked)
    assert won == Counter(e.reference for e in entries)
    assert any(a.booked is False for a in attempts), "the run repeated no reference"
    assert any(a.booked is None for a in attempts), "the run refused nothing"

    # Every balance is the sum of its entries.
    assert {user: wallet.balance for user, wallet in wallets.items()} == totals
    by_user: dict[int, list[LedgerEntry]] = defaultdict(list)
    for one in entries:
        by_user[one.user_id].append(one)
        assert one.amount != 0
    # Nothing but a late charge ever took a wallet below zero (entries of one wallet are
    # booked under its lock, so their ids are in booking order).
    for user, booked in by_user.items():
        running = Decimal(0)
        for one in booked:
            running += one.amount
            if one.amount < 0 and running < 0:
                assert one.kind == LedgerKind.LATE_CHARGE, (user, one.reference, running)
        assert running == wallets[user].balance
