"""The model layer: every example answer of the seed document, and the real-world variants."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from bot.panel import (
    Balance,
    OrderOutcomeUnknown,
    OrderStatus,
    PanelError,
    PanelUnavailable,
    RefillStatus,
    Service,
    decode_json,
    is_terminal_order_status,
    is_terminal_refill_status,
    parse_order_status,
    parse_refill_status,
)
from bot.panel.client import form_fields
from bot.panel.models import (
    INVALID_ITEM,
    MISSING_FROM_ANSWER,
    AnswerShapeError,
    read_balance,
    read_cancels,
    read_order_id,
    read_refill_id,
    read_refill_status,
    read_refill_statuses,
    read_refills,
    read_services,
    read_status,
    read_statuses,
)
from tests.panel_fixtures import (
    SEED_ADD,
    SEED_BALANCE,
    SEED_CANCEL,
    SEED_REFILL,
    SEED_REFILL_STATUS,
    SEED_REFILL_STATUSES,
    SEED_REFILLS,
    SEED_SERVICES,
    SEED_STATUS,
    SEED_STATUSES,
)

# --- the seed's example answers -----------------------------------------------------------------


def test_seed_balance() -> None:
    balance = read_balance(decode_json(SEED_BALANCE))
    assert balance == Balance(balance=Decimal("100.84292"), currency="USD")
    assert isinstance(balance.balance, Decimal)


def test_seed_services() -> None:
    followers, comments = read_services(decode_json(SEED_SERVICES))
    assert followers.id == 1448
    assert followers.name == "Mga Tagasubaybay sa Instagram"
    assert followers.type == "Default"
    assert followers.category == "Instagram"
    assert str(followers.rate) == "0.90"  # the panel's precision is kept
    assert (followers.min, followers.max) == (50, 10000)
    assert followers.refill is True
    assert (followers.cancel, followers.dripfeed, followers.desc) == (False, False, None)
    assert comments.id == 1452
    assert comments.type == "Custom Comments"
    assert comments.rate == Decimal("8")
    assert (comments.min, comments.max, comments.refill) == (10, 1500, False)


def test_seed_add() -> None:
    assert read_order_id(decode_json(SEED_ADD)) == 23501


def test_seed_status() -> None:
    status = read_status(7, decode_json(SEED_STATUS))
    assert status.order == 7
    assert status.status is OrderStatus.PARTIAL
    assert status.charge == Decimal("0.27819")
    assert (status.start_count, status.remains) == (3572, 157)
    assert (status.currency, status.error) == ("USD", None)


def test_seed_statuses_with_an_incorrect_id_and_one_missing() -> None:
    results = read_statuses([1, 10, 100, 5], decode_json(SEED_STATUSES))
    assert list(results) == [1, 10, 100, 5]
    assert results[1].status is OrderStatus.PARTIAL
    assert results[1].charge == Decimal("0.27819")
    assert results[10].error == "Incorrect order ID"
    assert results[10].status is None
    assert results[100].status is OrderStatus.IN_PROGRESS
    assert (results[100].start_count, results[100].remains) == (234, 10)
    assert results[5].error == MISSING_FROM_ANSWER


def test_seed_refill() -> None:
    assert read_refill_id(decode_json(SEED_REFILL)) == 1


def test_seed_refills() -> None:
    results = read_refills([1, 2, 3], decode_json(SEED_REFILLS))
    assert (results[1].refill, results[1].error) == (1, None)
    assert results[2].refill == 2
    assert (results[3].refill, results[3].error) == (None, "Incorrect order ID")


def test_seed_refill_status() -> None:
    result = read_refill_status(1, decode_json(SEED_REFILL_STATUS))
    assert (result.refill, result.status) == (1, RefillStatus.COMPLETED)


def test_seed_refill_statuses() -> None:
    results = read_refill_statuses([1, 2, 3, 4], decode_json(SEED_REFILL_STATUSES))
    assert results[1].status is RefillStatus.COMPLETED
    assert results[2].status is RefillStatus.REJECTED
    assert (results[3].status, results[3].error) == (None, "Refill not found")
    assert results[4].error == MISSING_FROM_ANSWER


def test_seed_cancel() -> None:
    results = read_cancels([9, 2], decode_json(SEED_CANCEL))
    assert (results[9].ok, results[9].error) == (False, "Incorrect order ID")
    assert (results[2].ok, results[2].error) == (True, None)


# --- JSON and numbers ---------------------------------------------------------------------------


def test_decode_json_never_goes_through_float() -> None:
    data = decode_json('{"a": 0.1, "b": 0.30000000000000004, "c": 5}')
    assert data == {"a": Decimal("0.1"), "b": Decimal("0.30000000000000004"), "c": 5}
    assert isinstance(data["a"], Decimal)


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": Infinity}', "<html>", ""])
def test_decode_json_rejects_non_json(text: str) -> None:
    with pytest.raises(ValueError):
        decode_json(text)


def _service(**overrides: Any) -> dict[str, Any]:
    base = {"service": 1, "name": "S", "type": "Default", "category": "C"}
    return base | {"rate": "0.90", "min": "50", "max": "10000"} | overrides


@pytest.mark.parametrize(
    ("wire", "rate", "low", "high"),
    [
        ({"rate": "0.90", "min": "50", "max": "10000"}, "0.90", 50, 10000),
        ({"rate": 0.9, "min": 50, "max": 10000}, "0.9", 50, 10000),
        ({"rate": 8, "min": 10.0, "max": "1500"}, "8", 10, 1500),
        ({"rate": "0.0315", "min": " 10 ", "max": 1e5}, "0.0315", 10, 100000),
    ],
)
def test_service_numbers_as_strings_or_numbers(
    wire: dict[str, Any], rate: str, low: int, high: int
) -> None:
    (service,) = read_services(decode_json(json.dumps([_service(**wire)])))
    assert service.rate == Decimal(rate)
    assert isinstance(service.rate, Decimal)
    assert (service.min, service.max) == (low, high)


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (True, True),
        ("1", True),
        (1, True),
        ("true", True),
        ("True", True),
        (False, False),
        ("0", False),
        (0, False),
        ("false", False),
        (None, False),
        ("", False),
    ],
)
def test_service_flags_in_every_form(wire: Any, expected: bool) -> None:
    service = Service.model_validate(_service(refill=wire, cancel=wire, dripfeed=wire))
    assert (service.refill, service.cancel, service.dripfeed) == (expected,) * 3


def test_service_flags_missing_are_false_and_type_defaults() -> None:
    data = _service()
    del data["type"]
    service = Service.model_validate(data)
    assert (service.refill, service.cancel, service.dripfeed) == (False, False, False)
    assert service.type == "Default"
    assert Service.model_validate(_service(type=None)).type == "Default"


def test_service_desc_or_description() -> None:
    assert Service.model_validate(_service(desc="Fast")).desc == "Fast"
    assert Service.model_validate(_service(description="Slow")).desc == "Slow"


def test_malformed_services_are_skipped_but_all_malformed_is_an_error() -> None:
    good, bad = _service(), _service(service=2, rate="cheap")
    assert [s.id for s in read_services([good, bad, "x"])] == [1]
    with pytest.raises(AnswerShapeError):
        read_services([bad])
    with pytest.raises(AnswerShapeError):
        read_services({"1": good})
    assert read_services([]) == []


@pytest.mark.parametrize(
    ("wire", "start_count", "remains", "charge"),
    [
        ({"start_count": "", "remains": "157", "charge": "0.27819"}, None, 157, "0.27819"),
        ({"start_count": None, "remains": 157, "charge": 0.27819}, None, 157, "0.27819"),
        ({"start_count": 3572, "remains": "0", "charge": 1}, 3572, 0, "1"),
        # A negative count is an invalid item (tests/test_panel_hostile.py), no longer -5.
        ({"start_count": "3572", "remains": "5", "charge": None}, 3572, 5, None),
    ],
)
def test_status_numbers(
    wire: dict[str, Any], start_count: int | None, remains: int, charge: str | None
) -> None:
    result = read_status(1, decode_json(json.dumps(wire | {"status": "Completed"})))
    assert (result.start_count, result.remains) == (start_count, remains)
    assert result.charge == (None if charge is None else Decimal(charge))


def test_status_invalid_item_inside_a_batch_is_data() -> None:
    results = read_statuses([1, 2], {"1": {"charge": "abc", "status": "Pending"}, "2": "?"})
    assert results[1].error == INVALID_ITEM
    assert results[2].error == INVALID_ITEM


@pytest.mark.parametrize("value", [1, "1", True, "true"])
def test_cancel_ok_forms(value: Any) -> None:
    assert read_cancels([5], [{"order": "5", "cancel": value}])[5].ok is True


def test_refill_nested_error_is_a_panel_error() -> None:
    with pytest.raises(PanelError, match="Incorrect order ID"):
        read_refill_id({"refill": {"error": "Incorrect order ID"}})


@pytest.mark.parametrize(
    ("reader", "data"),
    [
        (read_balance, []),
        (read_order_id, {}),
        (read_order_id, {"order": "abc"}),
        (read_refill_id, {"status": "ok"}),
        (lambda d: read_statuses([1], d), []),
        (lambda d: read_refills([1], d), {"1": 1}),
        (lambda d: read_cancels([1], d), "ok"),
        (lambda d: read_status(1, d), [1]),
    ],
)
def test_unexpected_shapes_raise_value_errors(reader: Any, data: Any) -> None:
    with pytest.raises(ValueError):
        reader(data)


# --- statuses -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Pending", OrderStatus.PENDING),
        ("pending", OrderStatus.PENDING),
        ("In progress", OrderStatus.IN_PROGRESS),
        ("In Progress", OrderStatus.IN_PROGRESS),
        ("inprogress", OrderStatus.IN_PROGRESS),
        ("in_progress", OrderStatus.IN_PROGRESS),
        ("Processing", OrderStatus.PROCESSING),
        (" Completed ", OrderStatus.COMPLETED),
        ("PARTIAL", OrderStatus.PARTIAL),
        ("Canceled", OrderStatus.CANCELED),
        ("Cancelled", OrderStatus.CANCELED),
        ("canceled", OrderStatus.CANCELED),
    ],
)
def test_order_status_normalised(raw: str, expected: OrderStatus) -> None:
    assert parse_order_status(raw) is expected
    assert read_status(1, {"status": raw}).status is expected


def test_unknown_order_status_is_kept() -> None:
    assert parse_order_status("  Refunded ") == "Refunded"
    result = read_status(1, {"status": "Active"})
    assert result.status == "Active"
    assert not isinstance(result.status, OrderStatus)
    assert not is_terminal_order_status(result.status)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Pending", RefillStatus.PENDING),
        ("In Progress", RefillStatus.IN_PROGRESS),
        ("completed", RefillStatus.COMPLETED),
        ("Rejected", RefillStatus.REJECTED),
    ],
)
def test_refill_status_normalised(raw: str, expected: RefillStatus) -> None:
    assert parse_refill_status(raw) is expected


def test_unknown_refill_status_is_kept() -> None:
    assert parse_refill_status("Awaiting") == "Awaiting"
    assert read_refill_statuses([1], [{"refill": 1, "status": "Awaiting"}])[1].status == "Awaiting"


def test_terminal_helpers() -> None:
    assert all(is_terminal_order_status(s) for s in ("Completed", "Partial", "Cancelled"))
    assert not any(is_terminal_order_status(s) for s in ("Pending", "In progress", "X", None))
    assert is_terminal_order_status(OrderStatus.CANCELED)
    assert all(is_terminal_refill_status(s) for s in ("Completed", "rejected"))
    assert not any(is_terminal_refill_status(s) for s in ("Pending", "In progress", None))


# --- the add form and the errors ----------------------------------------------------------------


def test_form_fields_join_lists_skip_none_and_format_dates() -> None:
    form = form_fields(
        service=1,
        link="https://x.test/p",
        quantity=None,
        comments=["nice", "great"],
        usernames="a\nb",
        expiry=date(2031, 2, 3),
    )
    assert form == {
        "service": "1",
        "link": "https://x.test/p",
        "comments": "nice\ngreat",
        "usernames": "a\nb",
        "expiry": "03/02/2031",
    }


def test_error_messages() -> None:
    error = PanelError("Not enough funds on balance", action="add")
    assert (str(error), error.message) == ("Not enough funds on balance",) * 2
    down = PanelUnavailable("HTTP 502", action="status")
    assert str(down) == "panel unavailable: HTTP 502 on action=status"
    unknown = OrderOutcomeUnknown("timeout", action="add")
    assert isinstance(unknown, PanelUnavailable)
    assert str(unknown) == "order outcome unknown: timeout on action=add"


def test_an_add_answer_with_an_order_id_is_never_a_refusal() -> None:
    from bot.panel.client import _decode
    from bot.panel.errors import OrderOutcomeUnknown

    assert _decode("add", 200, '{"order": 23501, "error": null}', OrderOutcomeUnknown) == {
        "order": 23501,
        "error": None,
    }
    assert _decode("add", 200, '{"order": 23501, "error": ""}', OrderOutcomeUnknown)["order"]
    assert (
        _decode(
            "balance", 200, '{"balance": "1", "currency": "USD", "error": ""}', OrderOutcomeUnknown
        )["balance"]
        == "1"
    )
