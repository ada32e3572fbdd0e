"""`read_statuses` builds its results without a model validation per item; it must give exactly
what validating each item (`read_status`, the single-order reader) gives, for every wire form."""

from __future__ import annotations

import itertools
import json
from decimal import Decimal
from typing import Any

import pytest

from bot.panel.models import (
    INVALID_ITEM,
    MISSING_FROM_ANSWER,
    OrderStatus,
    OrderStatusResult,
    UnreadableNumber,
    decode_json,
    error_text,
    read_status,
    read_statuses,
    to_id,
)

STATUSES: list[Any] = [
    "Completed", "In progress", "in progress", " Partial ", "Cancelled", "PROCESSING", "Weird",
    "x" * 33, "", "  ", None, 5, True, [], {"a": 1},
]  # fmt: skip
COUNTS: list[Any] = [
    "157", "0", "000", " 157", "157 ", "1.0", "1.5", "-1", "", None, 157, 0, -3, 2**62,
    2**62 - 1, "4611686018427387904", "999999999999999999", "9999999999999999999", "１２",
    "1e3", True, Decimal("12"), Decimal("12.5"), "abc", [],
]  # fmt: skip
MONEY: list[Any] = [
    "0.90000", "0.9", "5", "5.", ".5", ".", "1.2.3", " 0.9", "", None, Decimal("0.9"), 3,
    "1" * 24, "1" * 25, "0." + "0" * 22 + "1", "1e5", "1e-40", "NaN", "-0.5", "٣", True, [],
]  # fmt: skip
CURRENCIES: list[Any] = ["USD", " USD ", "USDT-TRC20", "U$D", "", None, 5, "X" * 11]


def validated(order: int, item: Any) -> OrderStatusResult:
    """What validating the item gives: the reference the batch reader must match."""
    if isinstance(item, dict) and "error" in item:
        return OrderStatusResult(order=order, error=error_text(item["error"]))
    try:
        return read_status(order, item)
    except ValueError:
        return OrderStatusResult(order=order, error=INVALID_ITEM)


def same(result: OrderStatusResult, expected: OrderStatusResult) -> None:
    assert result == expected
    assert result.model_fields_set == expected.model_fields_set
    assert [type(value) for value in result.__dict__.values()] == [
        type(value) for value in expected.__dict__.values()
    ]
    assert not isinstance(result.status, UnreadableNumber)


def items() -> list[dict[str, Any]]:
    """Every value of each field against a plain value of the others."""
    plain = {"status": "In progress", "charge": "0.9", "start_count": "10", "remains": "5"}
    found: list[dict[str, Any]] = [plain, {}, {"status": "Completed"}, plain | {"order": 99}]
    for name, values in (
        ("status", STATUSES),
        ("charge", MONEY),
        ("start_count", COUNTS),
        ("remains", COUNTS),
        ("currency", CURRENCIES),
    ):
        found += [plain | {name: value} for value in values]
        found.append({key: value for key, value in plain.items() if key != name})
    return found


def test_every_item_reads_as_its_validation_gives() -> None:
    cases = items()
    orders = list(range(1, len(cases) + 1))
    answer = {str(order): item for order, item in zip(orders, cases, strict=True)}
    results = read_statuses(orders, answer)
    for order, item in zip(orders, cases, strict=True):
        same(results[order], validated(order, item))


@pytest.mark.parametrize(
    "item", [{"error": "Incorrect order ID"}, {"error": ""}, {"error": None}, "?", [], 5, None]
)
def test_error_items_and_non_objects_read_as_before(item: Any) -> None:
    same(read_statuses([7], {"7": item})[7], validated(7, item))


def test_the_wire_forms_of_a_real_answer_read_as_validated() -> None:
    wire = json.dumps(
        {
            "1": {"charge": 0.27819, "start_count": 3572, "status": "Partial", "remains": 157},
            "2": {"charge": "1.50", "status": "Pending", "currency": "EUR"},
            "3": {"charge": "1" * 50, "status": "Completed"},
        }
    )
    data = decode_json(wire)
    results = read_statuses([1, 2, 3], data)
    for order in (1, 2, 3):
        same(results[order], validated(order, decode_json(wire)[str(order)]))
    assert results[1].status is OrderStatus.PARTIAL and results[1].charge == Decimal("0.27819")
    assert results[3].error == INVALID_ITEM


@pytest.mark.parametrize("key", ["5", "05", "0005", " 5", "5.0", "+5", "５"])
def test_keys_are_read_as_ids_as_before(key: str) -> None:
    results = read_statuses([5], {key: {"status": "Pending"}})
    try:
        known = to_id(key) == 5
    except ValueError:
        known = False
    assert (results[5].error is None) is known
    assert results[5].error in (None, MISSING_FROM_ANSWER)


@pytest.mark.parametrize("key", ["0", "00", "-5", "4611686018427387904", "", "x"])
def test_keys_that_are_no_ids_are_skipped(key: str) -> None:
    assert read_statuses([5], {key: {"status": "Pending"}})[5].error == MISSING_FROM_ANSWER


def test_duplicate_orders_and_keys_read_as_a_dict_of_them_would() -> None:
    data = {"5": {"status": "Pending"}, "05": {"status": "Completed"}}
    results = read_statuses([5, 5, 6], data)
    assert list(results) == [5, 6]
    assert results[5].status is OrderStatus.COMPLETED  # the later key, as before
    assert results[6].error == MISSING_FROM_ANSWER


def test_combinations_of_numbers_read_as_validated() -> None:
    combos = list(itertools.product(MONEY[:8], COUNTS[:8]))
    cases = [{"charge": m, "remains": c, "status": "Pending"} for m, c in combos]
    orders = list(range(1, len(cases) + 1))
    results = read_statuses(orders, dict(zip(map(str, orders), cases, strict=True)))
    for order, item in zip(orders, cases, strict=True):
        same(results[order], validated(order, item))
