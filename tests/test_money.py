"""format_money shows every amount one way; price_of is exact Decimal arithmetic."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.money import format_money, package_price, price_of


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        (Decimal("0.90"), "0.90"),
        (Decimal("0.9"), "0.90"),
        (Decimal("4321.5"), "4321.50"),
        (Decimal("0.27819"), "0.27819"),
        (Decimal("8"), "8.00"),
        (Decimal("0.2781900000"), "0.27819"),
        (Decimal("1E+2"), "100.00"),
        (Decimal("1.5E-7"), "0.00000015"),
        (Decimal("1234567.891"), "1234567.891"),
        (Decimal("100.84292"), "100.84292"),
        (Decimal("0"), "0.00"),
        (Decimal("-0.00"), "0.00"),
        (Decimal("-12.5"), "-12.50"),
        (Decimal("0.100"), "0.10"),
    ],
)
def test_format_money(amount: Decimal, expected: str) -> None:
    assert format_money(amount) == expected


def test_format_money_appends_the_currency() -> None:
    assert format_money(Decimal("0.90"), "USD") == "0.90 USD"
    assert format_money(Decimal("4321.5"), "PHP") == "4321.50 PHP"
    assert format_money(Decimal("1"), "") == "1.00"


def test_format_money_refuses_floats_and_non_finite() -> None:
    with pytest.raises(TypeError):
        format_money(0.9)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        format_money(Decimal("NaN"))
    with pytest.raises(ValueError):
        format_money(Decimal("Infinity"))


@pytest.mark.parametrize(
    ("rate", "quantity", "runs", "expected"),
    [
        ("0.90", 1000, None, "0.90"),
        ("0.0315", 2500, None, "0.07875"),
        ("0.90", 1000, 3, "2.70"),
        ("8", 7, None, "0.056"),
        ("1.2345678", 1, None, "0.0012345678"),
        ("0.5", 0, None, "0"),
        ("3", 333, 1, "0.999"),
    ],
)
def test_price_of_is_exact(rate: str, quantity: int, runs: int | None, expected: str) -> None:
    price = price_of(Decimal(rate), quantity, runs)
    assert isinstance(price, Decimal)
    assert price == Decimal(expected)


def test_price_of_keeps_every_digit_of_the_rate() -> None:
    # A float path would give 0.0787499999… or round to cents; neither is acceptable.
    assert format_money(price_of(Decimal("0.0315"), 2500)) == "0.07875"
    assert format_money(price_of(Decimal("0.90"), 1000)) == "0.90"


def test_price_of_rejects_floats_and_nonsense() -> None:
    with pytest.raises(TypeError):
        price_of(0.9, 1000)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        price_of(Decimal("1"), -1)
    with pytest.raises(ValueError):
        price_of(Decimal("1"), 10, 0)


def test_package_costs_its_rate() -> None:
    assert package_price(Decimal("12.5")) == Decimal("12.5")


def test_a_currency_with_markup_is_shown_as_text() -> None:
    assert format_money(Decimal("1.5"), "<USD>") == "1.50 &lt;USD&gt;"
    assert format_money(Decimal("1.5"), "<u>$</u>") == "1.50 &lt;u&gt;$&lt;/u&gt;"
