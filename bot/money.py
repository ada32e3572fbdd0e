"""Money: the one formatter for every amount shown, and exact order prices.

Amounts are ``Decimal`` from the wire to the screen; nothing here touches a float.
"""

from __future__ import annotations

import html
from decimal import Decimal

_CENTS_EXPONENT = -2
_PER = 1000  # panel rates are per 1000 units


def format_money(amount: Decimal, currency: str | None = None, *, markup: bool = True) -> str:
    """``Decimal("0.9")`` → ``"0.90"``, ``Decimal("0.2781900")`` → ``"0.27819"``, + currency.

    No thousands grouping, at least two decimals, any further precision of the panel kept
    (trailing zeros past the cents dropped), never scientific notation.
    """
    if not isinstance(amount, Decimal):
        raise TypeError(f"money must be a Decimal, not {type(amount).__name__}")
    if not amount.is_finite():
        raise ValueError(f"not a finite amount: {amount}")
    if amount.is_zero():
        amount = Decimal(0)  # "-0.00" would read as a debt
    significant = amount.normalize()
    exponent = significant.as_tuple().exponent
    assert isinstance(exponent, int)  # finite, checked above
    text = f"{significant:.2f}" if exponent > _CENTS_EXPONENT else f"{significant:f}"
    if not currency:
        return text
    # The currency comes from the panel: escaped here, once, for the HTML of a message
    # (`markup=False` for plain text such as a button's label).
    return f"{text} {html.escape(currency) if markup else currency}"


def price_of(rate: Decimal, quantity: int, runs: int | None = None) -> Decimal:
    """rate × quantity / 1000 × runs (1 without drip-feed), exact: no rounding at all."""
    if not isinstance(rate, Decimal):
        raise TypeError(f"rate must be a Decimal, not {type(rate).__name__}")
    if quantity < 0 or (runs is not None and runs < 1):
        raise ValueError("quantity must be ≥ 0 and runs ≥ 1")
    # Whole numbers multiply exactly; the one division by 1000 only moves the decimal point.
    return rate * (quantity * (runs or 1)) / _PER


def package_price(rate: Decimal) -> Decimal:
    """A package costs its rate, whatever the quantity."""
    return rate


def order_cost(price: Decimal, charge: Decimal | None) -> Decimal:
    """What an order cost: the panel's charge once it is known (a cancelled order refunded to
    0.00 costs 0), kept within 0…the quoted price so a hostile charge can neither lower nor
    inflate a day's total; the quoted price until then."""
    if charge is None:
        return price
    return min(max(charge, Decimal(0)), price)
