"""What the metrics endpoint reads: the outbox backlog and orders by state, one query each, and
the readiness probe's round trip. Run at scrape time, never per update."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Order, OutboxMessage


@dataclass(frozen=True, slots=True)
class Backlog:
    depth: int
    oldest: datetime | None  # when the oldest waiting message was written; None when empty


async def outbox_backlog(session: AsyncSession) -> Backlog:
    """How many messages wait, and since when the oldest does.

    The lowest id is the oldest row, and its primary key finds it without a scan.
    """
    oldest = select(OutboxMessage.created_at).order_by(OutboxMessage.id).limit(1)
    row = (
        await session.execute(select(func.count(OutboxMessage.id), oldest.scalar_subquery()))
    ).one()
    return Backlog(depth=int(row[0]), oldest=row[1])


async def orders_by_state(session: AsyncSession) -> dict[str, int]:
    """How many orders are in each state (ix_orders_state answers it)."""
    rows = await session.execute(select(Order.state, func.count()).group_by(Order.state))
    return {str(state): int(count) for state, count in rows.all()}


async def ping(session: AsyncSession) -> None:
    """One round trip to the database; raises when it cannot be reached."""
    await session.execute(select(1))
