"""Row leases timed by the database's clock: who holds a row (`lease_owner`) and until when
(`lease_until`), for the outbox, the orders and the refills alike.

Instances whose clocks differ by seconds must still agree on whether a lease ran out, so on
PostgreSQL every lease time is the server's own clock. On SQLite one process holds every lease,
so the caller's clock (which tests fake) is the clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Interval, func, literal, or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import UTCDateTime
from storage.models import Order, OutboxMessage, Refill

Leased = type[OutboxMessage] | type[Order] | type[Refill]


def _on_server_clock(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def lease_now(session: AsyncSession, now: datetime) -> ColumnElement[Any]:
    """ "Now" for lease comparisons: the server's clock (naive UTC, as the columns hold it) on
    PostgreSQL, else `now`."""
    if _on_server_clock(session):
        # statement_timestamp(), not now(): a long transaction must not renew from its start.
        return func.timezone("utc", func.statement_timestamp(), type_=UTCDateTime())
    return literal(now, UTCDateTime())


def lease_end(session: AsyncSession, now: datetime, seconds: float) -> ColumnElement[Any]:
    """When a lease taken or renewed now ends, `seconds` from "now" as `lease_now` tells it."""
    if _on_server_clock(session):
        return lease_now(session, now) + literal(timedelta(seconds=seconds), Interval())
    return literal(now + timedelta(seconds=seconds), UTCDateTime())


def lease_is_free(session: AsyncSession, model: Leased, now: datetime) -> ColumnElement[bool]:
    """Nobody holds the row's lease, or it ran out."""
    return or_(model.lease_until.is_(None), model.lease_until < lease_now(session, now))


async def renew(
    session: AsyncSession,
    model: Leased,
    ids: Iterable[int],
    owner: str,
    *,
    now: datetime,
    seconds: float,
) -> set[int]:
    """Extend `owner`'s leases on these rows by `seconds` from now; the ids it still held.

    A row whose `lease_owner` is still `owner` was claimed by nobody else since (a claim
    overwrites the owner, and every release clears it), so extending it cannot take it from
    anyone; a row that was taken, released or deleted is not renewed.
    """
    id_list = sorted(set(ids))
    if not id_list:
        return set()
    result = await session.execute(
        update(model)
        .where(model.id.in_(id_list), model.lease_owner == owner)
        .values(lease_until=lease_end(session, now, seconds))
        .returning(model.id)
        .execution_options(synchronize_session=False)
    )
    return set(result.scalars())


async def release(session: AsyncSession, model: Leased, ids: Iterable[int], owner: str) -> None:
    """Give `owner`'s leases on these rows back untouched: anyone may claim them at once."""
    id_list = sorted(set(ids))
    if id_list:
        await session.execute(
            update(model)
            .where(model.id.in_(id_list), model.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )
