"""Hostile or unusual panel answers, parsed: each costs at most the one item it is in."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from bot.panel import (
    OrderStatus,
    RefillStatus,
)
from bot.panel.models import (
    INVALID_ITEM,
    MISSING_FROM_ANSWER,
    decode_json,
    read_balance,
    read_order_id,
    read_refill_id,
    read_refill_statuses,
    read_refills,
    read_services,
    read_status,
    read_statuses,
    to_decimal,
    to_int,
)

KEY = "sk-live-SECRET-4f1c9e"


def _service(**overrides: Any) -> dict[str, Any]:
    base = {"service": 1, "name": "S", "type": "Default", "category": "C"}
    return base | {"rate": "0.90", "min": "50", "max": "10000"} | overrides


def _status(**overrides: Any) -> dict[str, Any]:
    base = {"charge": "0.27819", "start_count": "3572", "status": "Partial", "remains": "157"}
    return base | {"currency": "USD"} | overrides


# --- 1. a count that cannot be stored makes its item invalid ------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"remains": "1e20"},
        {"remains": 10**20},
        {"remains": str(2**63)},
        {"start_count": 2**62},
        {"start_count": "-1"},
        {"remains": -5},
        {"remains": "-5"},
    ],
)
def test_a_count_out_of_range_invalidates_only_its_item(bad: dict[str, Any]) -> None:
    data = decode_json(json.dumps({"1": _status(**bad), "2": _status()}, default=str))
    results = read_statuses([1, 2], data)
    assert results[1].error == INVALID_ITEM
    assert (results[1].status, results[1].remains, results[1].start_count) == (None, None, None)
    assert results[2].error is None
    assert (results[2].status, results[2].remains) == (OrderStatus.PARTIAL, 157)


def test_a_count_out_of_range_in_a_single_answer_is_an_unexpected_answer() -> None:
    with pytest.raises(ValueError):
        read_status(1, _status(remains="1e20"))


def test_the_largest_storable_count_is_kept() -> None:
    assert read_status(1, _status(remains=2**62 - 1, start_count=0)).remains == 2**62 - 1


@pytest.mark.parametrize("order", [0, -1, 2**62, "1e20", 10**30])
def test_an_order_id_out_of_range_is_rejected(order: Any) -> None:
    with pytest.raises(ValueError):
        read_order_id({"order": order})
    with pytest.raises(ValueError):
        read_refill_id({"refill": order})


def test_ids_out_of_range_in_batches_cost_their_item_only() -> None:
    refills = read_refills([1, 2], [{"order": 1, "refill": 2**63}, {"order": 2, "refill": 7}])
    assert (refills[1].refill, refills[1].error) == (None, INVALID_ITEM)
    assert refills[2].refill == 7
    huge_key = {str(2**64 + 1): _status(), "1": _status()}
    assert read_statuses([1], huge_key)[1].remains == 157
    statuses = read_refill_statuses([1], [{"refill": "1e30", "status": "Completed"}])
    assert statuses[1].error == MISSING_FROM_ANSWER


def test_a_service_id_or_limit_out_of_range_skips_that_service() -> None:
    services = read_services(
        [
            _service(service=2**62),  # past every id column (bot.ids.MAX_ID)
            _service(service=2, max=2**63),
            _service(service=3, min=-1),
            _service(service=4),
        ]
    )
    assert [s.id for s in services] == [4]


# --- 2. numbers that would freeze the event loop -----------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        "1e1000000",
        Decimal("1e1000000"),
        "1e-1000000",
        "0E-1000000",
        "1e31",
        "1" * 25,  # 25 significant digits
        "0." + "1" * 25,
        " " * 41 + "1",  # too long to be a number
        10**100,
        float("1e300"),
    ],
)
def test_absurd_numbers_are_invalid_values(number: Any) -> None:
    with pytest.raises(ValueError):
        to_decimal(number)
    with pytest.raises(ValueError):
        to_int(number)


def test_sane_numbers_are_unchanged() -> None:
    assert to_decimal("0.30000000000000004") == Decimal("0.30000000000000004")
    assert str(to_decimal("0.0000001")) == "1E-7"
    assert to_decimal(Decimal("1e30")) == Decimal(10**30)
    assert to_int(" 10 ") == 10
    assert to_int(Decimal("1e5")) == 100000
    assert to_int(2**62 - 1) == 2**62 - 1


def test_a_hostile_number_costs_one_service_not_the_catalog() -> None:
    items = [
        _service(service=1, rate="1e1000000"),
        _service(service=2, min="9e999999"),
        _service(service=3, max="1" * 5000),
        _service(service=4),
    ]
    text = json.dumps(items)
    text = text.replace('"1e1000000"', "1e1000000").replace('"9e999999"', "9e999999")
    text = text.replace(f'"{"1" * 5000}"', "1" * 5000)  # a 5000-digit JSON number
    assert [s.id for s in read_services(decode_json(text))] == [4]


def test_decode_json_reads_long_numbers_as_unreadable_not_as_errors() -> None:
    data = decode_json('{"a": ' + "9" * 5000 + ', "b": 1.' + "5" * 5000 + ', "c": 7}')
    assert data["c"] == 7
    for name in ("a", "b"):
        with pytest.raises(ValueError):
            to_decimal(data[name])
    with pytest.raises(ValueError):
        read_balance(data | {"balance": data["a"]})


def test_an_exponent_decimal_cannot_hold_is_unreadable_not_a_crash() -> None:
    data = decode_json('[{"service": 1, "rate": 1e9999999999999999999999}, 5]')
    assert data[1] == 5
    with pytest.raises(ValueError):
        to_decimal(data[0]["rate"])


def test_a_hostile_balance_is_an_unexpected_answer() -> None:
    with pytest.raises(ValueError):
        read_balance(decode_json('{"balance": 1e1000000, "currency": "USD"}'))


# --- 3. the currency is a short plain token, or not given ---------------------------------------


@pytest.mark.parametrize("currency", ["USD", "usd", "USDT-TRC20", "BTC.b", "X_1", " EUR "])
def test_plain_currency_tokens_are_kept(currency: str) -> None:
    assert read_status(1, _status(currency=currency)).currency == currency.strip()
    assert read_balance({"balance": "1", "currency": currency}).currency == currency.strip()


@pytest.mark.parametrize(
    "currency", ["<USD>", "<u>$</u>", "U" * 200, "USDT TRC20", "USDT-TRC20X", "$", "€", 840, [1]]
)
def test_other_currencies_are_not_given(currency: Any) -> None:
    results = read_statuses([1], {"1": _status(currency=currency)})
    assert (results[1].error, results[1].currency) == (None, None)
    assert results[1].remains == 157
    assert read_balance({"balance": "1", "currency": currency}).currency == ""


# --- 4. panel strings fit their columns ---------------------------------------------------------


def test_long_service_strings_are_clipped_deterministically() -> None:
    long_category = "Instagram " + "c" * 400
    services = read_services(
        [
            _service(service=1, name="n" * 600, category=long_category, type="T" * 100,
                     desc="d" * 5000),
            _service(service=2, category=long_category + " but different after the clip"),
        ]
    )  # fmt: skip
    first, second = services
    assert len(first.name) == 512 and first.name.endswith("…")
    assert first.name.startswith("n" * 511)
    assert len(first.category) == 255 and first.category.endswith("…")
    assert first.category == second.category  # the same group, every time
    assert len(first.type) == 64 and first.type.endswith("…")
    assert first.desc is not None and len(first.desc) == 4096 and first.desc.endswith("…")
    exact = read_services([_service(name="n" * 512, category="c" * 255, type="T" * 64)])[0]
    assert (exact.name, exact.category, exact.type) == ("n" * 512, "c" * 255, "T" * 64)


def test_a_status_longer_than_its_column_invalidates_the_item() -> None:
    results = read_statuses(
        [1, 2, 3],
        {"1": _status(status="S" * 33), "2": _status(status="S" * 32), "3": _status()},
    )
    assert results[1].error == INVALID_ITEM
    assert (results[2].error, results[2].status) == (None, "S" * 32)
    assert results[3].status is OrderStatus.PARTIAL
    refills = read_refill_statuses(
        [1, 2], [{"refill": 1, "status": "R" * 33}, {"refill": 2, "status": "Completed"}]
    )
    assert refills[1].error == INVALID_ITEM
    assert refills[2].status is RefillStatus.COMPLETED


def test_long_item_errors_are_clipped() -> None:
    results = read_statuses([1], {"1": {"error": "e" * 5000}})
    error = results[1].error
    assert error is not None and len(error) == 300 and error.endswith("…")
