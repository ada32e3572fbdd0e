"""The order-money rules of reseller mode, without Telegram: final-status refunds, the
offering rule and who may order."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.access import decide_access
from bot.billing import InvalidRemains, final_refund
from bot.catalog import sold_from_wallets
from tests.factories import make_service, make_settings

PRICE = Decimal("2.10")


def test_canceled_refunds_what_the_order_still_holds() -> None:
    assert final_refund(PRICE, PRICE, "Canceled", None, 1000) == PRICE
    assert final_refund(PRICE, Decimal("1.00"), "Canceled", None, 1000) == Decimal("1.00")
    assert final_refund(PRICE, Decimal(0), "Canceled", None, None) == Decimal(0)


def test_partial_refunds_the_share_of_the_whole_quantity() -> None:
    assert final_refund(PRICE, PRICE, "Partial", 333, 1000) == Decimal("0.70")
    assert final_refund(PRICE, PRICE, "Partial", 0, 1000) == Decimal("0.00")
    assert final_refund(PRICE, PRICE, "Partial", 1000, 1000) == PRICE
    # Never more than the order still holds (an earlier refund counts).
    assert final_refund(PRICE, Decimal("0.50"), "Partial", 1000, 1000) == Decimal("0.50")


def test_an_order_without_a_quantity_refunds_only_when_canceled() -> None:
    assert final_refund(PRICE, PRICE, "Partial", 5, None) == Decimal(0)
    assert final_refund(PRICE, PRICE, "Completed", 0, 1000) == Decimal(0)


@pytest.mark.parametrize("remains", [1001, -1, None])
def test_remains_outside_the_order_are_invalid(remains: int | None) -> None:
    with pytest.raises(InvalidRemains):
        final_refund(PRICE, PRICE, "Partial", remains, 1000)


def test_a_negative_rate_is_not_sold() -> None:
    assert sold_from_wallets(make_service(rate=Decimal("0.5")))
    assert not sold_from_wallets(make_service(rate=Decimal("-0.5")))


def test_anyone_may_order_in_reseller_mode_unless_denied() -> None:
    wallet = make_settings(billing="wallet", shop_currency="USD", open_to_all=False)
    assert decide_access(wallet, 4242, None).may_order
    assert not decide_access(wallet, 4242, False).may_order
    team = make_settings(open_to_all=False, allowed_user_ids=[])
    assert not decide_access(team, 4242, None).may_order
