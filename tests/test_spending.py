"""What orders cost: the panel's charge once known, within 0…the quoted price; the quote before.

Both /stats and the daily limit count it, so a cancelled order refunded to 0.00 spends nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from bot.money import order_cost
from bot.ordering import Order, Outcome, SubmissionState
from storage.db import utcnow
from tests.rig import ALICE, Rig

FOLLOWERS = 1448


def test_an_order_costs_its_charge_within_its_price() -> None:
    price = Decimal("0.90")
    assert order_cost(price, None) == price
    assert order_cost(price, Decimal("0.00")) == 0  # cancelled and refunded
    assert order_cost(price, Decimal("0.45")) == Decimal("0.45")  # partial
    assert order_cost(price, Decimal("900")) == price  # a hostile charge cannot inflate
    assert order_cost(price, Decimal("-5")) == 0  # nor lower the day's total


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    rig = await Rig.start(tmp_path, user_daily_limit=Decimal("6"))
    await rig.send(ALICE, "/start")
    yield rig
    await rig.stop()


async def placed(rig: Rig, price: str, charge: str | None, status: str) -> None:
    async with rig.services.sessions.begin() as session:
        session.add(
            Order(
                panel_order_id=60_000 + int(Decimal(price) * 100),
                chat_id=ALICE,
                user_id=ALICE,
                service_id=FOLLOWERS,
                service_name="Followers",
                service_type="Default",
                service_rate=Decimal("0.90"),
                link="https://instagram.com/alice",
                quantity=1000,
                price=Decimal(price),
                charge=None if charge is None else Decimal(charge),
                currency="USD",
                state=SubmissionState.PLACED,
                status=status,
                placed_at=utcnow(),
            )
        )


async def test_stats_count_what_orders_cost(rig: Rig) -> None:
    await placed(rig, "5.00", "0.00", "Canceled")
    await placed(rig, "2.00", "1.50", "Partial")
    await placed(rig, "1.00", None, "Pending")
    await placed(rig, "0.50", "999", "Completed")
    report = await rig.services.stats.collect()
    assert report.spent_today == {"USD": Decimal("3.00")}  # 0 + 1.50 + 1.00 + 0.50


async def test_a_cancelled_order_does_not_use_up_the_daily_limit(rig: Rig) -> None:
    await placed(rig, "5.00", "0.00", "Canceled")  # refunded: it cost nothing
    ordering = rig.services.ordering
    service = (await rig.services.catalog.get()).service(FOLLOWERS)
    assert service is not None
    answers = {"link": "https://instagram.com/alice", "quantity": 5000}  # 4.50
    draft = await ordering.create_draft(ALICE, ALICE, service, answers)
    placement = await ordering.confirm(ALICE, ALICE, draft.id, is_admin=False)
    assert placement.outcome == Outcome.PLACED  # 0 + 4.50 is within 6
