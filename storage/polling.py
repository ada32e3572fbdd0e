"""What the status poller reads and writes: leases on due orders and refills, their updates.

Every write is conditional (on the lease, or on the value it replaces), so a second instance, or
a slower one whose lease ran out, can never undo a change or announce it twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from storage import leases
from storage.db import utcnow
from storage.models import KeyValue, Order, Refill, SubmissionState, User
from storage.upsert import upsert_statement


@dataclass(frozen=True, slots=True)
class DueOrder:
    """A leased order, as the poller needs it: what the panel said last and who to tell."""

    id: int
    panel_order_id: int
    chat_id: int
    user_id: int
    can_refill: bool
    service_name: str
    status: str | None
    remains: int | None
    start_count: int | None
    charge: Decimal | None
    currency: str
    placed_at: datetime | None

    @classmethod
    def of(cls, order: Order) -> DueOrder:
        """The same facts from a loaded order (a refresh asked for by its owner)."""
        if order.panel_order_id is None:
            raise ValueError(f"order {order.id} has no panel order id")
        return cls(
            id=order.id,
            panel_order_id=order.panel_order_id,
            chat_id=order.chat_id,
            user_id=order.user_id,
            can_refill=order.can_refill,
            service_name=order.service_name,
            status=order.status,
            remains=order.remains,
            start_count=order.start_count,
            charge=order.charge,
            currency=order.currency,
            placed_at=order.placed_at,
        )


@dataclass(frozen=True, slots=True)
class DueRefill:
    """A leased refill with what the announcement needs from its order."""

    id: int
    panel_refill_id: int
    status: str
    created_at: datetime
    order_id: int
    panel_order_id: int | None
    chat_id: int
    service_name: str


def _due(session: AsyncSession, model: type[Order] | type[Refill], now: datetime) -> Any:
    return (
        model.poll_active.is_(True),
        model.next_poll_at <= now,
        leases.lease_is_free(session, model, now),
    )


def _skip_locked(session: AsyncSession, picked: Select[Any], model: type[Any]) -> Select[Any]:
    if session.get_bind().dialect.name == "postgresql":
        # Another instance claiming at the same moment takes other rows instead of waiting.
        return picked.with_for_update(skip_locked=True, of=model)
    return picked


async def claim_due_orders(
    session: AsyncSession, owner: str, *, now: datetime, lease_seconds: float, limit: int
) -> list[DueOrder]:
    """Lease up to `limit` placed orders that are due, most overdue first, in one UPDATE.

    `now` (the caller's clock) says what is due; the lease runs `lease_seconds` by the
    database's clock (see `storage.leases`)."""
    picked = (
        select(Order.id)
        .where(
            *_due(session, Order, now),
            Order.state == str(SubmissionState.PLACED),
            Order.panel_order_id.is_not(None),
        )
        .order_by(Order.next_poll_at, Order.id)
        .limit(limit)
    )
    picked = _skip_locked(session, picked, Order)
    result = await session.execute(
        update(Order)
        .where(Order.id.in_(picked.scalar_subquery()), *_due(session, Order, now))
        .values(lease_owner=owner, lease_until=leases.lease_end(session, now, lease_seconds))
        .returning(
            Order.id,
            Order.panel_order_id,
            Order.chat_id,
            Order.user_id,
            Order.can_refill,
            Order.service_name,
            Order.status,
            Order.remains,
            Order.start_count,
            Order.charge,
            Order.currency,
            Order.placed_at,
        )
        .execution_options(synchronize_session=False)
    )
    return sorted((DueOrder(**row._asdict()) for row in result), key=lambda order: order.id)


@dataclass(frozen=True, slots=True)
class OrderNotice:
    """What a group's completion notice says besides the status: who ordered what for which
    link (read only for the orders a group is told about)."""

    link: str | None
    quantity: int | None
    orderer: str | None  # the user's first name, or @username


async def notice_facts(session: AsyncSession, order_ids: Iterable[int]) -> dict[int, OrderNotice]:
    ids = sorted(set(order_ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(Order.id, Order.link, Order.quantity, User.first_name, User.username)
        .join(User, User.id == Order.user_id)
        .where(Order.id.in_(ids))
    )
    return {
        order_id: OrderNotice(link, quantity, first_name or (f"@{username}" if username else None))
        for order_id, link, quantity, first_name, username in rows
    }


async def record_order_status(
    session: AsyncSession,
    order: DueOrder,
    *,
    status: str | None,
    next_poll_at: datetime,
    poll_active: bool,
    **values: Any,
) -> bool:
    """Store what the panel said and release the lease; False if someone got there first.

    The update applies only while the status is still the one this poller read, so of two
    instances that saw the same change (one's lease ran out mid-call) exactly one wins, and only
    the winner announces it. A slower instance's older answer cannot undo a newer one either.
    """
    same_status = Order.status.is_(None) if order.status is None else Order.status == order.status
    result = await session.execute(
        update(Order)
        .where(Order.id == order.id, same_status)
        .values(
            status=status,
            next_poll_at=next_poll_at,
            poll_active=poll_active,
            lease_owner=None,
            lease_until=None,
            updated_at=utcnow(),
            **values,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


_ORDERS = cast(Table, Order.__table__)
# One executemany for all orders whose numbers moved but whose status did not; the status in
# the WHERE clause keeps it a compare-and-set, like record_order_status.
_QUIET_UPDATE = (
    update(_ORDERS)
    .where(_ORDERS.c.id == bindparam("order_id"), _ORDERS.c.status == bindparam("old_status"))
    .values(
        remains=bindparam("new_remains"),
        start_count=bindparam("new_start_count"),
        charge=bindparam("new_charge"),
        currency=bindparam("new_currency"),
        next_poll_at=bindparam("new_next_poll_at"),
        lease_owner=None,
        lease_until=None,
        updated_at=bindparam("new_updated_at"),
    )
)


async def record_quiet_updates(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Store new numbers (remains, start count, charge) of orders whose status is unchanged.

    Each row: order_id, old_status, new_remains, new_start_count, new_charge, new_currency,
    new_next_poll_at. Nothing is announced for these, so one batched statement does.
    """
    if not rows:
        return
    now = utcnow()
    connection = await session.connection()
    await connection.execute(_QUIET_UPDATE, [{**row, "new_updated_at": now} for row in rows])


async def mark_orders_missing(session: AsyncSession, order_ids: Iterable[int], owner: str) -> None:
    """The panel does not know these ids ("Incorrect order ID"): stop polling them."""
    ids = list(order_ids)
    if ids:
        await session.execute(
            update(Order)
            .where(Order.id.in_(ids), Order.lease_owner == owner)
            .values(
                panel_missing=True,
                poll_active=False,
                lease_owner=None,
                lease_until=None,
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )


async def reschedule_orders(
    session: AsyncSession, schedule: Mapping[datetime, Iterable[int]], owner: str
) -> None:
    """Release unchanged orders, each group due again at its time (one UPDATE per time)."""
    await _reschedule(session, Order, schedule, owner)


async def release_orders(session: AsyncSession, order_ids: Iterable[int], owner: str) -> None:
    """Give the leases back untouched (the panel did not answer): due again at once."""
    await leases.release(session, Order, order_ids, owner)


async def renew_order_leases(
    session: AsyncSession, order_ids: Iterable[int], owner: str, *, now: datetime, seconds: float
) -> set[int]:
    """Extend the poller's leases on orders it is still polling; the ids it still holds."""
    return await leases.renew(session, Order, order_ids, owner, now=now, seconds=seconds)


async def claim_due_refills(
    session: AsyncSession, owner: str, *, now: datetime, lease_seconds: float, limit: int
) -> list[DueRefill]:
    """Lease up to `limit` refills that are due, most overdue first, in one UPDATE."""
    picked = _skip_locked(
        session,
        select(Refill.id)
        .where(*_due(session, Refill, now))
        .order_by(Refill.next_poll_at, Refill.id)
        .limit(limit),
        Refill,
    )
    result = await session.execute(
        update(Refill)
        .where(Refill.id.in_(picked.scalar_subquery()), *_due(session, Refill, now))
        .values(lease_owner=owner, lease_until=leases.lease_end(session, now, lease_seconds))
        .returning(Refill.id)
        .execution_options(synchronize_session=False)
    )
    ids = list(result.scalars())
    if not ids:
        return []
    rows = await session.execute(
        select(
            Refill.id,
            Refill.panel_refill_id,
            Refill.status,
            Refill.created_at,
            Order.id,
            Order.panel_order_id,
            Order.chat_id,
            Order.service_name,
        )
        .join(Order, Order.id == Refill.order_id)
        .where(Refill.id.in_(ids))
        .order_by(Refill.id)
    )
    return [DueRefill(*row) for row in rows]


async def record_refill_status(
    session: AsyncSession,
    refill: DueRefill,
    *,
    status: str,
    next_poll_at: datetime,
    poll_active: bool,
) -> bool:
    """Store a refill's new status (compare-and-set on the old one) and release the lease."""
    result = await session.execute(
        update(Refill)
        .where(Refill.id == refill.id, Refill.status == refill.status)
        .values(
            status=status,
            next_poll_at=next_poll_at,
            poll_active=poll_active,
            lease_owner=None,
            lease_until=None,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


async def stop_refills(session: AsyncSession, refill_ids: Iterable[int], owner: str) -> None:
    """The panel does not know these refills: stop polling them."""
    ids = list(refill_ids)
    if ids:
        await session.execute(
            update(Refill)
            .where(Refill.id.in_(ids), Refill.lease_owner == owner)
            .values(poll_active=False, lease_owner=None, lease_until=None, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )


async def reschedule_refills(
    session: AsyncSession, schedule: Mapping[datetime, Iterable[int]], owner: str
) -> None:
    await _reschedule(session, Refill, schedule, owner)


async def release_refills(session: AsyncSession, refill_ids: Iterable[int], owner: str) -> None:
    await leases.release(session, Refill, refill_ids, owner)


async def renew_refill_leases(
    session: AsyncSession, refill_ids: Iterable[int], owner: str, *, now: datetime, seconds: float
) -> set[int]:
    return await leases.renew(session, Refill, refill_ids, owner, now=now, seconds=seconds)


async def _reschedule(
    session: AsyncSession,
    model: type[Order] | type[Refill],
    schedule: Mapping[datetime, Iterable[int]],
    owner: str,
) -> None:
    for next_poll_at, ids in schedule.items():
        await session.execute(
            update(model)
            .where(model.id.in_(list(ids)), model.lease_owner == owner)
            .values(next_poll_at=next_poll_at, lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )


async def raise_flag(session: AsyncSession, key: str, value: str) -> bool:
    """Set a kv flag unless it is already set; True only for the one caller that set it.

    An insert that does nothing on conflict is the compare-and-set: of two instances that see a
    low balance at the same moment, one alerts the admins.
    """
    values = {"key": key, "value": value, "updated_at": utcnow()}
    dialect = session.get_bind().dialect.name
    statement = upsert_statement(dialect, KeyValue.__table__, ["key"], [])  # type: ignore[arg-type]
    result = await session.execute(statement, values)
    return bool(getattr(result, "rowcount", 0) == 1)


async def lower_flag(session: AsyncSession, key: str) -> bool:
    """Clear a kv flag; True if it was set."""
    result = await session.execute(delete(KeyValue).where(KeyValue.key == key))
    return bool(getattr(result, "rowcount", 0))
