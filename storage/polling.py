"""What the status poller reads and writes: leases on due orders and refills, their updates.

Every write is conditional (on the lease, or on the value it replaces), so a second instance, or
a slower one whose lease ran out, can never undo a change or announce it twice.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    String,
    Table,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from storage import leases
from storage.db import Money, UTCDateTime, utcnow
from storage.models import CURRENCY_LENGTH, KeyValue, Order, Refill, SubmissionState, User
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
    # Reseller mode: what the refund of a final status is computed from.
    attempt: int = 0
    customer_price: Decimal | None = None
    customer_currency: str | None = None
    quantity: int | None = None
    runs: int | None = None

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
            attempt=order.attempt,
            customer_price=order.customer_price,
            customer_currency=order.customer_currency,
            quantity=order.quantity,
            runs=order.runs,
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


@dataclass(frozen=True, slots=True)
class PolledOrder:
    """A leased order as the poll cycle compares it with the panel's answer: what the panel
    said last, and when it was placed (older orders are asked less often). Who to tell and what
    to refund are read only for the orders whose status changed (`announced_orders`)."""

    id: int
    panel_order_id: int
    status: str | None
    remains: int | None
    start_count: int | None
    charge: Decimal | None
    currency: str
    placed_at: datetime | None


_ORDERS = cast(Table, Order.__table__)
_POLLED_COLUMNS = (
    _ORDERS.c.id,
    _ORDERS.c.panel_order_id,
    _ORDERS.c.status,
    _ORDERS.c.remains,
    _ORDERS.c.start_count,
    _ORDERS.c.charge,
    _ORDERS.c.currency,
    _ORDERS.c.placed_at,
)


def _lease_is_free(session: AsyncSession, now: datetime) -> ColumnElement[bool]:
    """`leases.lease_is_free` for the orders table itself (Core: no ORM work per statement)."""
    lease_until = _ORDERS.c.lease_until
    return or_(lease_until.is_(None), lease_until < leases.lease_now(session, now))


def _orders_due(session: AsyncSession, now: datetime) -> tuple[ColumnElement[bool], ...]:
    """`_due` for the orders table itself."""
    return (
        _ORDERS.c.poll_active.is_(True),
        _ORDERS.c.next_poll_at <= now,
        _lease_is_free(session, now),
    )


async def claim_due_orders(
    session: AsyncSession, owner: str, *, now: datetime, lease_seconds: float, limit: int
) -> list[PolledOrder]:
    """Lease up to `limit` placed orders that are due, most overdue first, in one UPDATE.

    `now` (the caller's clock) says what is due; the lease runs `lease_seconds` by the
    database's clock (see `storage.leases`)."""
    picked = (
        select(_ORDERS.c.id)
        .where(
            *_orders_due(session, now),
            _ORDERS.c.state == str(SubmissionState.PLACED),
            _ORDERS.c.panel_order_id.is_not(None),
        )
        .order_by(_ORDERS.c.next_poll_at, _ORDERS.c.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        # Another instance claiming at the same moment takes other rows instead of waiting.
        picked = picked.with_for_update(skip_locked=True)
    # The picked rows are due by the subquery, in the same statement (and locked by it on
    # PostgreSQL); the outer WHERE checks only the lease again. With the due range in it too,
    # SQLite would walk every due row of the index per claim (quadratic over a cycle) instead
    # of looking the picked ids up.
    result = await session.execute(
        update(_ORDERS)
        .where(_ORDERS.c.id.in_(picked.scalar_subquery()), _lease_is_free(session, now))
        .values(lease_owner=owner, lease_until=leases.lease_end(session, now, lease_seconds))
        .returning(*_POLLED_COLUMNS)
    )
    # By id: every instance writes its rows in the same order.
    return sorted((PolledOrder(*row) for row in result), key=lambda order: order.id)


async def announced_orders(
    session: AsyncSession, polled: Sequence[PolledOrder]
) -> dict[int, DueOrder]:
    """The orders whose new status is announced, by id: what the poll read of them (the status
    and numbers before the change) with who to tell and what a refund is computed from."""
    if not polled:
        return {}
    rows = await session.execute(
        select(
            _ORDERS.c.id,
            _ORDERS.c.chat_id,
            _ORDERS.c.user_id,
            _ORDERS.c.can_refill,
            _ORDERS.c.service_name,
            _ORDERS.c.attempt,
            _ORDERS.c.customer_price,
            _ORDERS.c.customer_currency,
            _ORDERS.c.quantity,
            _ORDERS.c.runs,
        ).where(_ORDERS.c.id.in_([order.id for order in polled]))
    )
    facts = {row.id: row for row in rows}
    found: dict[int, DueOrder] = {}
    for order in polled:
        if (fact := facts.get(order.id)) is not None:
            found[order.id] = _due_order(order, fact)
    return found


def _due_order(order: PolledOrder, fact: Any) -> DueOrder:
    return DueOrder(
        id=order.id,
        panel_order_id=order.panel_order_id,
        chat_id=fact.chat_id,
        user_id=fact.user_id,
        can_refill=fact.can_refill,
        service_name=fact.service_name,
        status=order.status,
        remains=order.remains,
        start_count=order.start_count,
        charge=order.charge,
        currency=order.currency,
        placed_at=order.placed_at,
        attempt=fact.attempt,
        customer_price=fact.customer_price,
        customer_currency=fact.customer_currency,
        quantity=fact.quantity,
        runs=fact.runs,
    )


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


# Every answer that changes an order (its status, or only its numbers) in one executemany.
# The status in the WHERE clause makes each row a compare-and-set, like record_order_status:
# of two instances that saw the same change exactly one wins. The winner's rows carry the
# batch's own token as lease owner until `_RELEASE_WRITTEN` reads them back, so the winners are
# known without a statement per order. A number the answer left out (NULL) keeps its value.
_ANSWER_UPDATE = (
    update(_ORDERS)
    .where(
        _ORDERS.c.id == bindparam("order_id"),
        _ORDERS.c.status.is_not_distinct_from(bindparam("old_status", type_=String(32))),
    )
    .values(
        status=bindparam("new_status", type_=String(32)),
        remains=func.coalesce(bindparam("new_remains", type_=BigInteger), _ORDERS.c.remains),
        start_count=func.coalesce(
            bindparam("new_start_count", type_=BigInteger), _ORDERS.c.start_count
        ),
        charge=func.coalesce(bindparam("new_charge", type_=Money()), _ORDERS.c.charge),
        currency=func.coalesce(
            bindparam("new_currency", type_=String(CURRENCY_LENGTH)), _ORDERS.c.currency
        ),
        next_poll_at=bindparam("new_next_poll_at", type_=UTCDateTime()),
        poll_active=bindparam("new_poll_active", type_=Boolean),
        lease_owner=bindparam("written_by"),
        lease_until=None,
        updated_at=bindparam("new_updated_at", type_=UTCDateTime()),
    )
)
_RELEASE_WRITTEN = (
    update(_ORDERS)
    .where(
        _ORDERS.c.id.in_(bindparam("order_ids", expanding=True)),
        _ORDERS.c.lease_owner == bindparam("written_by"),
    )
    .values(lease_owner=None)
    .returning(_ORDERS.c.id)
)


@dataclass(frozen=True, slots=True)
class OrderAnswer:
    """What to write for one order: the status read before (the compare-and-set), the new
    status, the numbers that moved (None: unchanged), when to ask again, whether to."""

    order_id: int
    old_status: str | None
    status: str | None
    remains: int | None
    start_count: int | None
    charge: Decimal | None
    currency: str | None
    next_poll_at: datetime
    poll_active: bool


async def record_answers(session: AsyncSession, answers: Sequence[OrderAnswer]) -> set[int]:
    """Store the answers that change their orders and release those leases, in two statements
    whatever their number; the ids whose compare-and-set won (the rest are untouched)."""
    if not answers:
        return set()
    written_by = f"answer:{secrets.token_hex(16)}"  # no owner is ever spelled like this
    now = utcnow()
    connection = await session.connection()
    await connection.execute(
        _ANSWER_UPDATE,
        [
            {
                "order_id": answer.order_id,
                "old_status": answer.old_status,
                "new_status": answer.status,
                "new_remains": answer.remains,
                "new_start_count": answer.start_count,
                "new_charge": answer.charge,
                "new_currency": answer.currency,
                "new_next_poll_at": answer.next_poll_at,
                "new_poll_active": answer.poll_active,
                "written_by": written_by,
                "new_updated_at": now,
            }
            for answer in answers
        ],
    )
    won = await connection.execute(
        _RELEASE_WRITTEN,
        {"order_ids": [answer.order_id for answer in answers], "written_by": written_by},
    )
    return set(won.scalars())


async def mark_orders_missing(session: AsyncSession, order_ids: Iterable[int], owner: str) -> None:
    """The panel does not know these ids ("Incorrect order ID"): stop polling them."""
    ids = list(order_ids)
    if ids:
        await session.execute(
            update(_ORDERS)
            .where(_ORDERS.c.id.in_(ids), _ORDERS.c.lease_owner == owner)
            .values(
                panel_missing=True,
                poll_active=False,
                lease_owner=None,
                lease_until=None,
                updated_at=utcnow(),
            )
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
    # Only the lease checked again, as in claim_due_orders (the due range would make SQLite
    # walk the index instead of looking the picked ids up).
    result = await session.execute(
        update(Refill)
        .where(Refill.id.in_(picked.scalar_subquery()), leases.lease_is_free(session, Refill, now))
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
    table = cast(Table, model.__table__)
    for next_poll_at, ids in schedule.items():
        await session.execute(
            update(table)
            .where(table.c.id.in_(list(ids)), table.c.lease_owner == owner)
            .values(next_poll_at=next_poll_at, lease_owner=None, lease_until=None)
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
