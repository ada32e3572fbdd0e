"""Pending Stars top-ups (reseller mode): what a customer pressed, read back by the invoice's
pre-checkout query and payment."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import utcnow
from storage.models import KeyValue, LedgerEntry, Topup, TopupState
from storage.upsert import upsert_statement


async def add_topup(
    session: AsyncSession,
    user_id: int,
    amount: Decimal,
    currency: str,
    stars: int,
    return_order: int | None,
) -> Topup:
    topup = Topup(
        user_id=user_id,
        amount=amount,
        currency=currency,
        stars=stars,
        state=TopupState.PENDING,
        return_order=return_order,
    )
    session.add(topup)
    await session.flush()
    return topup


async def get_topup(session: AsyncSession, topup_id: int) -> Topup | None:
    return await session.get(Topup, topup_id, populate_existing=True)


async def mark_paid(session: AsyncSession, topup_id: int) -> None:
    """Whatever it was (a second payment of one invoice finds it paid), it is paid now."""
    await session.execute(update(Topup).where(Topup.id == topup_id).values(state=TopupState.PAID))


async def booked_references(session: AsyncSession, references: list[str]) -> set[str]:
    """Which of these ledger references are booked (for comparing with Telegram's list)."""
    if not references:
        return set()
    rows = await session.execute(
        select(LedgerEntry.reference).where(LedgerEntry.reference.in_(references))
    )
    return set(rows.scalars())


async def first_alert(session: AsyncSession, key: str) -> bool:
    """Remember that the admins were told about `key`; True only the first time (on every
    instance together: the insert is insert-or-nothing)."""
    dialect = session.get_bind().dialect.name
    statement = upsert_statement(
        dialect,
        KeyValue.__table__,  # type: ignore[arg-type]
        ["key"],
        [],
    ).returning(KeyValue.__table__.c.key)
    values = {"key": key, "value": "told", "updated_at": utcnow()}
    return (await session.execute(statement, values)).first() is not None
