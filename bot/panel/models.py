"""Typed answers of the panel API v2, parsed leniently: panels differ in small ways.

Money is Decimal from the wire (``decode_json`` never lets a number pass through float).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, NoReturn, TypeVar

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from bot.panel.errors import PanelError

log = logging.getLogger("bot.panel")

T = TypeVar("T")

MISSING_FROM_ANSWER = "missing from answer"
INVALID_ITEM = "invalid item in answer"


class AnswerShapeError(ValueError):
    """The answer is JSON, but not the shape this action answers."""


# --- wire decoding -------------------------------------------------------------------------


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"non-finite number {name} in JSON")


def decode_json(text: str) -> Any:
    """Decode a panel answer; every non-integer number becomes a Decimal, never a float."""
    return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)


# --- lenient scalar coercion ---------------------------------------------------------------


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def to_decimal(value: Any) -> Decimal:
    """Turn "0.90", 0.9 (a Decimal from ``decode_json``) or 8 into an exact, finite Decimal."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, float, str)):
        raise ValueError(f"not a number: {type(value).__name__}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return number


def to_int(value: Any) -> int:
    """Turn "157", 157 or 157.0 into 157; a fractional or non-numeric value is an error."""
    number = to_decimal(value)
    if number != number.to_integral_value():
        raise ValueError(f"not a whole number: {value!r}")
    return int(number)


def to_flag(value: Any) -> bool:
    """true, 1, "1", "true", "yes" → True; anything else (false, 0, "0", null) → False."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, Decimal)):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return False


def _optional(convert: Callable[[Any], T]) -> Callable[[Any], T | None]:
    """Blank ("" or null) means absent for an optional field."""

    def inner(value: Any) -> T | None:
        return None if _is_blank(value) else convert(value)

    return inner


def _to_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise ValueError(f"not text: {type(value).__name__}")
    return str(value).strip()


Money = Annotated[Decimal, BeforeValidator(to_decimal)]
OptMoney = Annotated[Decimal | None, BeforeValidator(_optional(to_decimal))]
Int = Annotated[int, BeforeValidator(to_int)]
OptInt = Annotated[int | None, BeforeValidator(_optional(to_int))]
Flag = Annotated[bool, BeforeValidator(to_flag)]
Text = Annotated[str, BeforeValidator(_to_text)]
OptText = Annotated[str | None, BeforeValidator(_optional(_to_text))]


# --- statuses ------------------------------------------------------------------------------


class OrderStatus(StrEnum):
    PENDING = "Pending"
    IN_PROGRESS = "In progress"
    PROCESSING = "Processing"
    COMPLETED = "Completed"
    PARTIAL = "Partial"
    CANCELED = "Canceled"


class RefillStatus(StrEnum):
    PENDING = "Pending"
    IN_PROGRESS = "In progress"
    COMPLETED = "Completed"
    REJECTED = "Rejected"


ORDER_TERMINAL: frozenset[OrderStatus] = frozenset(
    {OrderStatus.COMPLETED, OrderStatus.PARTIAL, OrderStatus.CANCELED}
)
REFILL_TERMINAL: frozenset[RefillStatus] = frozenset(
    {RefillStatus.COMPLETED, RefillStatus.REJECTED}
)


def _status_key(raw: str) -> str:
    # "In Progress", "in_progress", "inprogress" and "IN-PROGRESS" all mean the same thing.
    return re.sub(r"[\s_\-]+", "", raw).lower()


_ORDER_STATUS_KEYS = {_status_key(s.value): s for s in OrderStatus} | {
    "cancelled": OrderStatus.CANCELED
}
_REFILL_STATUS_KEYS = {_status_key(s.value): s for s in RefillStatus}


def parse_order_status(raw: str) -> OrderStatus | str:
    """The canonical status when known, else the raw string (stripped): unknown is not fatal."""
    return _ORDER_STATUS_KEYS.get(_status_key(raw), raw.strip())


def parse_refill_status(raw: str) -> RefillStatus | str:
    """The canonical refill status when known, else the raw string (stripped)."""
    return _REFILL_STATUS_KEYS.get(_status_key(raw), raw.strip())


def is_terminal_order_status(status: OrderStatus | str | None) -> bool:
    """Completed, Partial and Canceled are final; an unknown status is not."""
    return isinstance(status, str) and parse_order_status(status) in ORDER_TERMINAL


def is_terminal_refill_status(status: RefillStatus | str | None) -> bool:
    """Completed and Rejected are final; an unknown status is not."""
    return isinstance(status, str) and parse_refill_status(status) in REFILL_TERMINAL


def _order_status_field(value: Any) -> OrderStatus | str | None:
    return None if _is_blank(value) else parse_order_status(_to_text(value))


def _refill_status_field(value: Any) -> RefillStatus | str | None:
    return None if _is_blank(value) else parse_refill_status(_to_text(value))


# left_to_right: a known status stays the enum member instead of degrading to a plain str.
OrderStatusField = Annotated[
    OrderStatus | str | None,
    Field(union_mode="left_to_right"),
    BeforeValidator(_order_status_field),
]
RefillStatusField = Annotated[
    RefillStatus | str | None,
    Field(union_mode="left_to_right"),
    BeforeValidator(_refill_status_field),
]


# --- models --------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class Balance(_Model):
    balance: Money
    currency: Text = ""


def _type_or_default(value: Any) -> Any:
    return "Default" if _is_blank(value) else value


class Service(_Model):
    id: Int = Field(validation_alias=AliasChoices("service", "id"))
    name: Text
    type: Annotated[Text, BeforeValidator(_type_or_default)] = "Default"
    category: Text
    rate: Money  # per 1000
    min: Int
    max: Int
    refill: Flag = False
    cancel: Flag = False
    dripfeed: Flag = False
    desc: OptText = Field(default=None, validation_alias=AliasChoices("desc", "description"))


class OrderStatusResult(_Model):
    order: Int
    status: OrderStatusField = None
    charge: OptMoney = None
    start_count: OptInt = None
    remains: OptInt = None
    currency: OptText = None
    error: OptText = None


class RefillResult(_Model):
    order: Int
    refill: OptInt = None
    error: OptText = None


class RefillStatusResult(_Model):
    refill: Int
    status: RefillStatusField = None
    error: OptText = None


class CancelResult(_Model):
    order: Int
    ok: bool = False
    error: OptText = None


# --- answer readers: one per action, raising AnswerShapeError on an unexpected shape -------


def _expect_dict(data: Any, action: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise AnswerShapeError(f"{action}: expected an object, got {type(data).__name__}")
    return data


def _expect_list(data: Any, action: str) -> list[Any]:
    if not isinstance(data, list):
        raise AnswerShapeError(f"{action}: expected a list, got {type(data).__name__}")
    return data


def _item_error(value: Any) -> str | None:
    """The message of a per-item ``{"error": "..."}``, if that is what ``value`` is."""
    if isinstance(value, dict) and "error" in value:
        return str(value["error"])
    return None


def read_balance(data: Any) -> Balance:
    return Balance.model_validate(_expect_dict(data, "balance"))


def read_services(data: Any) -> list[Service]:
    """Every well-formed service; one broken entry must not hide the whole catalog."""
    services: list[Service] = []
    skipped: list[Any] = []
    for item in _expect_list(data, "services"):
        try:
            services.append(Service.model_validate(item))
        except ValidationError:
            skipped.append(item.get("service") if isinstance(item, dict) else None)
    if skipped and not services:
        raise AnswerShapeError("services: no well-formed service in the answer")
    if skipped:
        log.warning("skipped %d malformed services (ids %s)", len(skipped), skipped[:10])
    return services


def read_order_id(data: Any) -> int:
    answer = _expect_dict(data, "add")
    if "order" not in answer:
        raise AnswerShapeError("add: no order id in the answer")
    return to_int(answer["order"])


def read_status(order: int, data: Any) -> OrderStatusResult:
    return OrderStatusResult.model_validate({**_expect_dict(data, "status"), "order": order})


def _status_item(order: int, item: Any) -> OrderStatusResult:
    if (error := _item_error(item)) is not None:
        return OrderStatusResult(order=order, error=error)
    try:
        return read_status(order, item)
    except ValueError:
        return OrderStatusResult(order=order, error=INVALID_ITEM)


def read_statuses(orders: Iterable[int], data: Any) -> dict[int, OrderStatusResult]:
    """``{"1": {...}, "10": {"error": ...}}`` → one result per asked id, none dropped."""
    items: dict[int, Any] = {}
    for key, item in _expect_dict(data, "status").items():
        try:
            items[to_int(key)] = item
        except ValueError:
            continue
    return {
        order: _status_item(order, items[order])
        if order in items
        else OrderStatusResult(order=order, error=MISSING_FROM_ANSWER)
        for order in orders
    }


def _list_items(data: Any, action: str, id_key: str, value_key: str) -> dict[int, Any]:
    """``[{"order": 1, "refill": 1}, ...]`` → ``{1: 1, ...}``; entries without ids are skipped."""
    items: dict[int, Any] = {}
    for entry in _expect_list(data, action):
        if isinstance(entry, dict) and id_key in entry:
            try:
                items[to_int(entry[id_key])] = entry.get(value_key)
            except ValueError:
                continue
    return items


def read_refill_id(data: Any) -> int:
    answer = _expect_dict(data, "refill")
    if (error := _item_error(answer.get("refill"))) is not None:
        raise PanelError(error, action="refill")
    if _is_blank(answer.get("refill")):
        raise AnswerShapeError("refill: no refill id in the answer")
    return to_int(answer["refill"])


def _refill_item(order: int, value: Any) -> RefillResult:
    if (error := _item_error(value)) is not None:
        return RefillResult(order=order, error=error)
    try:
        return RefillResult(order=order, refill=to_int(value))
    except ValueError:
        return RefillResult(order=order, error=INVALID_ITEM)


def read_refills(orders: Iterable[int], data: Any) -> dict[int, RefillResult]:
    items = _list_items(data, "refill", "order", "refill")
    return {
        order: _refill_item(order, items[order])
        if order in items
        else RefillResult(order=order, error=MISSING_FROM_ANSWER)
        for order in orders
    }


def read_refill_status(refill: int, data: Any) -> RefillStatusResult:
    answer = _expect_dict(data, "refill_status")
    return RefillStatusResult.model_validate({**answer, "refill": refill})


def _refill_status_item(refill: int, value: Any) -> RefillStatusResult:
    if (error := _item_error(value)) is not None:
        return RefillStatusResult(refill=refill, error=error)
    try:
        return RefillStatusResult.model_validate({"refill": refill, "status": value})
    except ValueError:
        return RefillStatusResult(refill=refill, error=INVALID_ITEM)


def read_refill_statuses(refills: Iterable[int], data: Any) -> dict[int, RefillStatusResult]:
    items = _list_items(data, "refill_status", "refill", "status")
    return {
        refill: _refill_status_item(refill, items[refill])
        if refill in items
        else RefillStatusResult(refill=refill, error=MISSING_FROM_ANSWER)
        for refill in refills
    }


def _cancel_item(order: int, value: Any) -> CancelResult:
    if (error := _item_error(value)) is not None:
        return CancelResult(order=order, error=error)
    return CancelResult(order=order, ok=to_flag(value))


def read_cancels(orders: Iterable[int], data: Any) -> dict[int, CancelResult]:
    items = _list_items(data, "cancel", "order", "cancel")
    return {
        order: _cancel_item(order, items[order])
        if order in items
        else CancelResult(order=order, error=MISSING_FROM_ANSWER)
        for order in orders
    }
