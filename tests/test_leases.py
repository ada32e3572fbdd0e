"""Row leases: timed by the database's clock on PostgreSQL, renewed while worked on, given back
when done. (The sender's and the poller's use of them is tested in test_outbox/test_poller.)"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.leases import LeaseKeeper
from storage import outbox, polling
from storage.db import utcnow
from storage.models import Order, OutboxMessage
from tests.factories import add_orders, remember_customer

Sessions = async_sessionmaker[AsyncSession]
ALICE = 101
LEASE = 10.0
AHEAD = timedelta(seconds=20)  # a claimer whose clock runs this far ahead of the others


def backend(sessions: Sessions) -> str:
    bind = sessions.kw["bind"]
    return str(bind.dialect.name)


async def queue_one(sessions: Sessions) -> int:
    async with sessions.begin() as session:
        await outbox.enqueue(session, ALICE, "hello")
        [message] = await outbox.pending(session)
    return message.id


async def claim(sessions: Sessions, owner: str, *, ahead: timedelta = timedelta(0)) -> list[int]:
    async with sessions.begin() as session:
        batch = await outbox.claim_due(
            session, owner, now=utcnow() + ahead, lease_seconds=LEASE, limit=10
        )
    return [message.id for message in batch]


async def holder(sessions: Sessions, message_id: int) -> str | None:
    async with sessions() as session:
        row = await session.get(OutboxMessage, message_id)
    assert row is not None
    return row.lease_owner


async def expire(sessions: Sessions, model: type[OutboxMessage] | type[Order]) -> None:
    """Every lease ran out (an hour ago, by any clock)."""
    async with sessions.begin() as session:
        await session.execute(update(model).values(lease_until=utcnow() - timedelta(hours=1)))


# --- whose clock ------------------------------------------------------------------------------


async def test_a_claimer_whose_clock_runs_ahead_cannot_take_a_held_message(
    sessions: Sessions,
) -> None:
    if backend(sessions) != "postgresql":
        pytest.skip("on SQLite one process holds every lease: its own clock is the clock")
    message_id = await queue_one(sessions)
    assert await claim(sessions, "slow-clock") == [message_id]

    # By its own clock the lease ran out 10 s ago; by the database's it has 10 s to go.
    assert await claim(sessions, "fast-clock", ahead=AHEAD) == []
    assert await holder(sessions, message_id) == "slow-clock"

    await expire(sessions, OutboxMessage)
    assert await claim(sessions, "fast-clock", ahead=AHEAD) == [message_id]


async def test_a_poller_whose_clock_runs_ahead_cannot_take_held_orders(
    sessions: Sessions,
) -> None:
    if backend(sessions) != "postgresql":
        pytest.skip("on SQLite one process holds every lease: its own clock is the clock")
    async with sessions.begin() as session:
        await remember_customer(session, ALICE, ALICE)
        await add_orders(
            session,
            [7001, 7002],
            chat_id=ALICE,
            status="Pending",
            poll_active=True,
            next_poll_at=utcnow() - timedelta(seconds=1),
        )

    async def claim_orders(owner: str, ahead: timedelta) -> list[int]:
        async with sessions.begin() as session:
            batch = await polling.claim_due_orders(
                session, owner, now=utcnow() + ahead, lease_seconds=LEASE, limit=10
            )
        return [order.panel_order_id for order in batch]

    assert await claim_orders("slow-clock", timedelta(0)) == [7001, 7002]
    assert await claim_orders("fast-clock", AHEAD) == []
    await expire(sessions, Order)
    assert await claim_orders("fast-clock", AHEAD) == [7001, 7002]


async def test_on_sqlite_the_callers_clock_says_when_a_lease_ran_out(sessions: Sessions) -> None:
    """One process holds every lease there, so its (injectable) clock is the lease clock."""
    if backend(sessions) != "sqlite":
        pytest.skip("PostgreSQL times leases by its own clock (see the test above)")
    message_id = await queue_one(sessions)
    assert await claim(sessions, "first") == [message_id]
    assert await claim(sessions, "second", ahead=timedelta(seconds=LEASE - 1)) == []
    assert await claim(sessions, "second", ahead=timedelta(seconds=LEASE + 1)) == [message_id]


# --- renewal and release ----------------------------------------------------------------------


async def test_renewing_keeps_only_the_holders_own_leases(sessions: Sessions) -> None:
    message_id = await queue_one(sessions)
    assert await claim(sessions, "holder") == [message_id]
    async with sessions.begin() as session:
        stranger = await outbox.renew_leases(
            session, [message_id], "stranger", now=utcnow(), seconds=LEASE
        )
        mine = await outbox.renew_leases(
            session, [message_id], "holder", now=utcnow(), seconds=LEASE
        )
    assert stranger == set() and mine == {message_id}

    async with sessions.begin() as session:
        await outbox.release(session, [message_id], "stranger")  # not theirs to give back
    assert await holder(sessions, message_id) == "holder"
    async with sessions.begin() as session:
        await outbox.release(session, [message_id], "holder")
    assert await holder(sessions, message_id) is None
    assert await claim(sessions, "next") == [message_id]  # free at once, not a lease later


async def test_a_renewed_lease_outlives_its_first_term(sessions: Sessions) -> None:
    """The keeper renews while the holder works: past the first lease nobody else takes the
    row; once the holder stops renewing and gives it back, the next claimer gets it at once."""
    message_id = await queue_one(sessions)
    lease = 0.6
    loop = asyncio.get_running_loop()
    taken_at = loop.time()
    async with sessions.begin() as session:
        [claimed] = await outbox.claim_due(
            session, "holder", now=utcnow(), lease_seconds=lease, limit=1
        )
    renewals: list[set[int]] = []
    fourth = asyncio.Event()

    async def renew(ids: list[int]) -> set[int]:
        async with sessions.begin() as session:
            held = await outbox.renew_leases(session, ids, "holder", now=utcnow(), seconds=lease)
        renewals.append(held)
        if len(renewals) == 4:
            fourth.set()
        return held

    keeper = LeaseKeeper(renew, [claimed.id], seconds=lease, taken_at=taken_at)
    async with keeper:
        await fourth.wait()  # four renewals: past the first term, whatever the clock
        async with sessions.begin() as session:
            stolen = await outbox.claim_due(
                session, "other", now=utcnow(), lease_seconds=lease, limit=1
            )
        assert stolen == []
        assert keeper.holds(message_id) and keeper.held_until > taken_at + lease
    assert renewals == [{message_id}] * len(renewals)
    async with sessions.begin() as session:
        await outbox.release(session, keeper.unfinished, "holder")
    assert await claim(sessions, "other") == [message_id]


async def test_a_lease_taken_over_is_lost_and_no_longer_renewed() -> None:
    calls: list[list[int]] = []
    taken = asyncio.Event()

    async def renew(ids: list[int]) -> set[int]:
        calls.append(ids)
        if len(calls) == 2:
            taken.set()
        return {1} if len(calls) == 1 else set()  # row 2 went elsewhere; then row 1 too

    keeper = LeaseKeeper(renew, [1, 2], seconds=0.15, taken_at=asyncio.get_running_loop().time())
    async with keeper:
        await taken.wait()
        await asyncio.sleep(0.2)  # a third renewal would have come by now
    assert calls == [[1, 2], [1]]
    assert not keeper.holds(1) and not keeper.holds(2)
    assert keeper.unfinished == set()


async def test_finished_rows_are_not_renewed_nor_called_lost() -> None:
    calls: list[list[int]] = []
    renewed = asyncio.Event()

    async def renew(ids: list[int]) -> set[int]:
        calls.append(ids)
        renewed.set()
        return set(ids)

    keeper = LeaseKeeper(renew, [1, 2], seconds=0.15, taken_at=asyncio.get_running_loop().time())
    keeper.finish(2)
    async with keeper:
        await renewed.wait()
    assert calls[0] == [1]
    assert keeper.holds(2) and keeper.unfinished == {1}


async def test_a_failed_renewal_keeps_the_last_known_end() -> None:
    attempts = asyncio.Event()

    async def renew(ids: list[int]) -> set[int]:
        attempts.set()
        raise ConnectionError("database unreachable")

    taken_at = asyncio.get_running_loop().time()
    keeper = LeaseKeeper(renew, [1], seconds=0.15, taken_at=taken_at)
    async with keeper:
        await attempts.wait()
    assert keeper.held_until == taken_at + 0.15  # not extended: sends must end before it
    assert keeper.holds(1)
