"""Typed answers of the panel API v2, parsed leniently: panels differ in small ways.

Money is Decimal from the wire (``decode_json`` never lets a number pass through float).

Leniency stops where a value could hurt what comes after it. A hostile or broken value makes
its item invalid (a list item is skipped, a batch item carries ``INVALID_ITEM``, a single answer
is an unexpected answer) and never costs more than that item:

- a number with more than ``MAX_NUMBER_DIGITS`` significant digits, an exponent beyond
  ±``MAX_NUMBER_EXPONENT`` or written in more than ``MAX_NUMBER_TEXT`` characters is no number
  (converting ``1e1000000`` to an int takes seconds of the event loop);
- a count (remains, start count, min, max) is a whole number in ``0 ≤ n < MAX_ID``, an id
  (order, refill, service) one in ``0 < n < MAX_ID``: anything else is invalid, never clamped
  into a plausible value;
- an order or refill status longer than ``MAX_STATUS_LENGTH`` (its column) that is not a known
  status is invalid;
- a currency that is not a plain token (``CURRENCY_PATTERN``) is "no currency given";
- names, categories, types and descriptions are clipped to their columns, with a trailing "…";
  error texts to ``MAX_ERROR_LENGTH``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, NoReturn, TypeVar

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from bot.panel.errors import MAX_ERROR_LENGTH, PanelError, clip

log = logging.getLogger("bot.panel")

T = TypeVar("T")
_set_attribute = object.__setattr__  # what pydantic itself sets a model's slots with

MISSING_FROM_ANSWER = "missing from answer"
INVALID_ITEM = "invalid item in answer"

# Numbers: what is sane to convert at all (money, counts and ids alike).
MAX_NUMBER_DIGITS = 24  # significant digits
MAX_NUMBER_EXPONENT = 30  # |exponent| of the decimal representation
MAX_NUMBER_TEXT = 40  # characters of a number written as a string or in the JSON
# Ids and counts: below 2**62, the limit of bot.ids.MAX_ID (bot.panel imports nothing of ours):
# every integer column (SQLite, BIGINT) ends at 2**63.
MAX_ID = 2**62
# Strings: the lengths of the columns they are stored in (storage/models.py).
MAX_NAME_LENGTH = 512  # orders.service_name
MAX_CATEGORY_LENGTH = 255  # orders.category
MAX_TYPE_LENGTH = 64  # orders.service_type
MAX_DESC_LENGTH = 4096  # not stored; Telegram's limit of one message
MAX_STATUS_LENGTH = 32  # orders.status, refills.status
# The currency: 1-10 letters, digits, ".", "_" or "-" ("USD", "USDT-TRC20"); anything else is
# treated as not given, so the caller falls back to its configured currency.
MAX_CURRENCY_LENGTH = 10
CURRENCY_PATTERN = re.compile(rf"[A-Za-z0-9._-]{{1,{MAX_CURRENCY_LENGTH}}}")


class AnswerShapeError(ValueError):
    """The answer is JSON, but not the shape this action answers."""


# --- wire decoding -------------------------------------------------------------------------


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"non-finite number {name} in JSON")


class UnreadableNumber:
    """A JSON number too long to convert: kept as a marker that every converter rejects, so it
    invalidates the one item it is in instead of the whole answer."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<unreadable number>"


UNREADABLE_NUMBER = UnreadableNumber()


def _json_int(text: str) -> int | UnreadableNumber:
    return int(text) if len(text) <= MAX_NUMBER_TEXT else UNREADABLE_NUMBER


def _json_float(text: str) -> Decimal | UnreadableNumber:
    if len(text) > MAX_NUMBER_TEXT:
        return UNREADABLE_NUMBER
    try:
        return Decimal(text)
    except InvalidOperation:  # an exponent beyond what Decimal holds: not a ValueError
        return UNREADABLE_NUMBER


def decode_json(text: str) -> Any:
    """Decode a panel answer; every non-integer number becomes a Decimal, never a float.

    A number longer than ``MAX_NUMBER_TEXT`` characters becomes ``UNREADABLE_NUMBER``. Nesting
    deeper than the interpreter's recursion limit raises RecursionError (not a ValueError).

    (Not orjson: it reads every fraction as a float, and telling first whether a text holds one
    costs a regular-expression scan slower than this whole decoding.)
    """
    return json.loads(
        text, parse_float=_json_float, parse_int=_json_int, parse_constant=_reject_constant
    )


_JSON_WHITESPACE = re.compile(r"[ \t\n\r]*")
_EXACT_DECODER = json.JSONDecoder(
    parse_float=_json_float, parse_int=_json_int, parse_constant=_reject_constant
)


class DecodedOneByOne:
    """A JSON array read one item at a time, so a large answer (the catalog) never exists as
    decoded JSON all at once: each item is decoded when it is reached and gone once read.

    Only made by ``decode_array`` for a text it has read through once already, so reading it
    again cannot fail."""

    __slots__ = ("_clean", "_text")

    def __init__(self, text: str, clean: Callable[[Any], Any]) -> None:
        self._text = text
        self._clean = clean  # what every decoded item goes through (the key's redaction)

    def __iter__(self) -> Iterator[Any]:
        for item in _array_items(self._text):
            yield self._clean(item)


def decode_array(text: str, clean: Callable[[Any], Any]) -> Any:
    """``decode_json(text)``, except that a JSON array comes as a ``DecodedOneByOne``.

    The array is read through once (each item decoded and dropped) to learn that it is one,
    and well-formed; anything else, or an array the item-wise reading does not take, goes to
    ``decode_json``, which decodes it or raises as it always does."""
    try:
        for _ in _array_items(text):
            pass
    except (ValueError, RecursionError, IndexError):
        return clean(decode_json(text))
    return DecodedOneByOne(text, clean)


def _array_items(text: str) -> Iterator[Any]:
    """The items of the JSON array `text` is, decoded as ``decode_json`` decodes them;
    ValueError (or IndexError at a truncated end) when `text` is no well-formed array."""
    position = _JSON_WHITESPACE.match(text, 0).end()  # type: ignore[union-attr]
    if text[position] != "[":
        raise ValueError("not an array")
    position = _JSON_WHITESPACE.match(text, position + 1).end()  # type: ignore[union-attr]
    if text[position] == "]":
        position += 1
    else:
        while True:
            item, position = _EXACT_DECODER.raw_decode(text, position)
            yield item
            position = _JSON_WHITESPACE.match(text, position).end()  # type: ignore[union-attr]
            separator = text[position]
            position = _JSON_WHITESPACE.match(text, position + 1).end()  # type: ignore[union-attr]
            if separator == "]":
                break
            if separator != ",":
                raise ValueError("not an array")
    if _JSON_WHITESPACE.match(text, position).end() != len(text):  # type: ignore[union-attr]
        raise ValueError("text after the array")


# --- lenient scalar coercion ---------------------------------------------------------------


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def to_decimal(value: Any) -> Decimal:
    """Turn "0.90", 0.9 (a Decimal from ``decode_json``) or 8 into an exact, finite Decimal.

    Only a sane number: at most ``MAX_NUMBER_DIGITS`` significant digits, an exponent within
    ±``MAX_NUMBER_EXPONENT``, at most ``MAX_NUMBER_TEXT`` characters as a string.
    """
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, float, str)):
        raise ValueError(f"not a number: {type(value).__name__}")
    if isinstance(value, str) and len(value) > MAX_NUMBER_TEXT:
        raise ValueError(f"not a number: {len(value)} characters")
    if isinstance(value, int) and value.bit_length() > 4 * MAX_NUMBER_DIGITS:
        raise ValueError("not a number: too many digits")  # never format a huge int
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None
    if not number.is_finite():
        raise ValueError("not a finite number")
    _sign, digits, exponent = number.as_tuple()
    if len(digits) > MAX_NUMBER_DIGITS or not isinstance(exponent, int):
        raise ValueError("not a number: too many digits")
    if abs(exponent) > MAX_NUMBER_EXPONENT:
        raise ValueError("not a number: exponent out of range")
    return number


def to_int(value: Any) -> int:
    """Turn "157", 157 or 157.0 into 157; a fractional or non-numeric value is an error."""
    number = to_decimal(value)
    if number != number.to_integral_value():
        raise ValueError(f"not a whole number: {value!r}")
    return int(number)


def to_count(value: Any) -> int:
    """A count (remains, start count, min, max): a whole number with ``0 <= n < MAX_ID``."""
    number = to_int(value)
    if not 0 <= number < MAX_ID:
        raise ValueError("count out of range")
    return number


def to_id(value: Any) -> int:
    """An id the panel gives (order, refill): a whole number with ``0 < n < MAX_ID``."""
    number = to_int(value)
    if not 0 < number < MAX_ID:
        raise ValueError("id out of range")
    return number


def to_service_id(value: Any) -> int:
    """A service id: ``0 < n < MAX_ID`` (orders.service_id is a BIGINT)."""
    number = to_int(value)
    if not 0 < number < MAX_ID:
        raise ValueError("service id out of range")
    return number


def to_currency(value: Any) -> str | None:
    """A plain currency token ("USD", "USDT-TRC20"), stripped; anything else is None."""
    if not isinstance(value, str) or len(value) > 4 * MAX_CURRENCY_LENGTH:
        return None
    text = value.strip()
    return text if CURRENCY_PATTERN.fullmatch(text) else None


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


def _clipped(limit: int) -> Callable[[Any], str]:
    """Text clipped to ``limit`` characters (a trailing "…" where clipped): deterministic, so
    one long category always clips to the same group."""

    def inner(value: Any) -> str:
        return clip(_to_text(value), limit)

    return inner


def _interned(convert: Callable[[Any], str]) -> Callable[[Any], str]:
    def inner(value: Any) -> str:
        return sys.intern(convert(value))

    return inner


def _currency_or_blank(value: Any) -> str:
    return to_currency(value) or ""


Money = Annotated[Decimal, BeforeValidator(to_decimal)]
OptMoney = Annotated[Decimal | None, BeforeValidator(_optional(to_decimal))]
Int = Annotated[int, BeforeValidator(to_int)]
Count = Annotated[int, BeforeValidator(to_count)]
OptCount = Annotated[int | None, BeforeValidator(_optional(to_count))]
ServiceId = Annotated[int, BeforeValidator(to_service_id)]
Flag = Annotated[bool, BeforeValidator(to_flag)]
Name = Annotated[str, BeforeValidator(_clipped(MAX_NAME_LENGTH))]
# Interned: a catalog's services share a few categories (and types), one string each.
Category = Annotated[str, BeforeValidator(_interned(_clipped(MAX_CATEGORY_LENGTH)))]
OptDesc = Annotated[str | None, BeforeValidator(_optional(_clipped(MAX_DESC_LENGTH)))]
OptErrorText = Annotated[str | None, BeforeValidator(_optional(_clipped(MAX_ERROR_LENGTH)))]
# "No currency given" is None in a status and "" in a balance (as when the panel sends none).
OptCurrency = Annotated[str | None, BeforeValidator(to_currency)]
Currency = Annotated[str, BeforeValidator(_currency_or_blank)]


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


_ORDER_STATUS_TEXTS: dict[str, OrderStatus] = {status.value: status for status in OrderStatus}


def parse_order_status(raw: str) -> OrderStatus | str:
    """The canonical status when known, else the raw string (stripped): unknown is not fatal."""
    # The API's own spelling (what the database holds) is a lookup, not a normalisation.
    known = _ORDER_STATUS_TEXTS.get(raw)
    return known if known is not None else _ORDER_STATUS_KEYS.get(_status_key(raw), raw.strip())


def parse_refill_status(raw: str) -> RefillStatus | str:
    """The canonical refill status when known, else the raw string (stripped)."""
    return _REFILL_STATUS_KEYS.get(_status_key(raw), raw.strip())


def is_terminal_order_status(status: OrderStatus | str | None) -> bool:
    """Completed, Partial and Canceled are final; an unknown status is not."""
    return isinstance(status, str) and parse_order_status(status) in ORDER_TERMINAL


def is_terminal_refill_status(status: RefillStatus | str | None) -> bool:
    """Completed and Rejected are final; an unknown status is not."""
    return isinstance(status, str) and parse_refill_status(status) in REFILL_TERMINAL


def _fits_status_column(status: T) -> T:
    known = isinstance(status, StrEnum)
    if isinstance(status, str) and not known and len(status) > MAX_STATUS_LENGTH:
        raise ValueError("unknown status longer than its column")
    return status


def _order_status_field(value: Any) -> OrderStatus | str | None:
    return None if _is_blank(value) else _fits_status_column(parse_order_status(_to_text(value)))


def _refill_status_field(value: Any) -> RefillStatus | str | None:
    if _is_blank(value):
        return None
    return _fits_status_column(parse_refill_status(_to_text(value)))


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
    currency: Currency = ""  # "" when not given or not a plain token


def _type_or_default(value: Any) -> Any:
    return "Default" if _is_blank(value) else sys.intern(clip(_to_text(value), MAX_TYPE_LENGTH))


class Service(_Model):
    id: ServiceId = Field(validation_alias=AliasChoices("service", "id"))
    name: Name
    type: Annotated[str, BeforeValidator(_type_or_default)] = "Default"
    category: Category
    rate: Money  # per 1000
    min: Count
    max: Count
    refill: Flag = False
    cancel: Flag = False
    dripfeed: Flag = False
    desc: OptDesc = Field(default=None, validation_alias=AliasChoices("desc", "description"))


# The `order` and `refill` a result is for are the ids the caller asked about; the ids the panel
# gives (an order's refill id, the ids keying a batch answer) are checked with `to_id`.


class OrderStatusResult(_Model):
    order: Int
    status: OrderStatusField = None
    charge: OptMoney = None
    start_count: OptCount = None
    remains: OptCount = None
    currency: OptCurrency = None  # None when not given or not a plain token
    error: OptErrorText = None


class RefillResult(_Model):
    order: Int
    refill: Annotated[int | None, BeforeValidator(_optional(to_id))] = None
    error: OptErrorText = None


class RefillStatusResult(_Model):
    refill: Int
    status: RefillStatusField = None
    error: OptErrorText = None


class CancelResult(_Model):
    order: Int
    ok: bool = False
    error: OptErrorText = None


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
    """The message of a per-item ``{"error": "..."}``, if that is what ``value`` is (clipped)."""
    if isinstance(value, dict) and "error" in value:
        return error_text(value["error"])
    return None


def error_text(value: Any) -> str:
    """A panel's error value as text, clipped to ``MAX_ERROR_LENGTH``; a structure (never
    rendered: it may be nested as deep as the JSON allows) says only that it is one."""
    if value is None or isinstance(value, (str, int, Decimal)):
        return clip(str(value), MAX_ERROR_LENGTH)
    return "unreadable error"


def _loggable(value: Any) -> str:
    """A short repr of a panel value for a log line."""
    if value is None or isinstance(value, (str, int, Decimal, UnreadableNumber)):
        return clip(repr(value), 40)
    return f"<{type(value).__name__}>"


def read_balance(data: Any) -> Balance:
    return Balance.model_validate(_expect_dict(data, "balance"))


def read_services(data: Any) -> list[Service]:
    """Every well-formed service; one broken entry must not hide the whole catalog.

    The client hands its answer over as ``DecodedOneByOne``, so a large catalog is never held
    twice (as JSON objects and as models). Services given the same fields share one set of
    their names."""
    entries = data if isinstance(data, DecodedOneByOne) else _expect_list(data, "services")
    services: list[Service] = []
    skipped: list[Any] = []
    given: dict[frozenset[str], set[str]] = {}
    for item in entries:
        try:
            service = Service.model_validate(item)
        except ValidationError:
            skipped.append(_loggable(item.get("service")) if isinstance(item, dict) else "-")
            continue
        services.append(_shared_fields_set(service, given))
    if skipped and not services:
        raise AnswerShapeError("services: no well-formed service in the answer")
    if skipped:
        ids = ", ".join(skipped[:10])
        log.warning("skipped %d malformed services (ids %s)", len(skipped), ids)
    return services


def _shared_fields_set(service: Service, given: dict[frozenset[str], set[str]]) -> Service:
    """The service holding one set of given fields shared with every service given the same
    fields: a set of eleven names is 700 bytes, per service. Safe for a frozen model, whose
    set nothing changes (a copy gets a set of its own)."""
    fields = service.model_fields_set
    shared = given.setdefault(frozenset(fields), fields)
    if shared is not fields:
        _set_attribute(service, "__pydantic_fields_set__", shared)
    return service


def read_order_id(data: Any) -> int:
    answer = _expect_dict(data, "add")
    if "order" not in answer:
        raise AnswerShapeError("add: no order id in the answer")
    return to_id(answer["order"])


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
    """``{"1": {...}, "10": {"error": ...}}`` → one result per asked id, none dropped.

    The same results as ``read_status`` of each item, without a model validation per order
    (a poll cycle reads 100 per call): see ``_checked_status_item``.
    """
    items: dict[int, Any] = {}
    for key, item in _expect_dict(data, "status").items():
        try:
            items[_key_id(key)] = item
        except ValueError:
            continue
    results: dict[int, OrderStatusResult] = {}
    for order in orders:
        if order not in items:
            results[order] = OrderStatusResult(order=order, error=MISSING_FROM_ANSWER)
            continue
        item = items[order]
        # A key is an id below MAX_ID, which `to_int` keeps as it is: the order needs no check.
        checked = _checked_status_item(order, item) if type(order) is int else None
        results[order] = checked or _status_item(order, item)
    return results


# --- a status item without a model validation ------------------------------------------------

_PLAIN_DIGITS = 18  # "0".."999999999999999999": below MAX_ID, within MAX_NUMBER_DIGITS
_PLAIN_DECIMAL = MAX_NUMBER_DIGITS  # characters of "0.90": digits and exponent within bounds
_STATUS_FIELDS = frozenset(OrderStatusResult.model_fields)
_optional_money = _optional(to_decimal)
_optional_count = _optional(to_count)


def _key_id(key: str) -> int:
    """``to_id`` of a batch answer's key; plain digits skip the Decimal round trip."""
    if len(key) <= _PLAIN_DIGITS and key.isascii() and key.isdigit() and key.strip("0"):
        return int(key)
    return to_id(key)


def _count(value: Any) -> int | None:
    """``OptCount``'s validator; plain digits skip the Decimal round trip."""
    if type(value) is str and len(value) <= _PLAIN_DIGITS and value.isascii() and value.isdigit():
        return int(value)
    return _optional_count(value)


def _money(value: Any) -> Decimal | None:
    """``OptMoney``'s validator; "0.90" (digits, at most one point) skips its checks, which
    such a text passes by its length."""
    if (
        type(value) is str
        and len(value) <= _PLAIN_DECIMAL
        and value.isascii()
        and value.replace(".", "", 1).isdigit()
    ):
        return Decimal(value)
    return _optional_money(value)


def _status(value: Any) -> OrderStatus | str | None:
    """``OrderStatusField``'s validator; a status spelled as the API spells it is a lookup."""
    known = _ORDER_STATUS_TEXTS.get(value) if type(value) is str else None
    return known if known is not None else _order_status_field(value)


def _checked_status_item(order: int, item: Any) -> OrderStatusResult | None:
    """The result ``read_status`` gives for an item that is an answer (no ``error`` key), from
    the fields' own validators without a model validation; None when the validating path
    must judge the item (an error item, not an object, an invalid value)."""
    if type(item) is not dict or "error" in item:
        return None
    try:
        fields = {
            "order": order,
            "status": _status(item.get("status")),
            "charge": _money(item.get("charge")),
            "start_count": _count(item.get("start_count")),
            "remains": _count(item.get("remains")),
            "currency": to_currency(item.get("currency")),
            "error": None,
        }
    except ValueError:
        return None  # invalid: the validating path makes it INVALID_ITEM
    return _status_result(fields, _given_fields(_STATUS_FIELDS.intersection(item)))


# One set of given field names per shape of answer (at most 2**6 of them), shared by the
# results as read_services shares them: a set of six names is 700 bytes, per order polled.
_GIVEN_STATUS_FIELDS: dict[frozenset[str], set[str]] = {}


def _given_fields(names: frozenset[str]) -> set[str]:
    given = _GIVEN_STATUS_FIELDS.get(names)
    if given is None:
        given = _GIVEN_STATUS_FIELDS.setdefault(names, {"order", *names})
    return given


def _status_result(fields: dict[str, Any], given: set[str]) -> OrderStatusResult:
    """What ``model_construct`` builds from every field of this plain model (no aliases,
    private attributes or post-init; tests/test_panel_status_reading.py holds it to
    ``model_validate``), at a fraction of its cost."""
    result = OrderStatusResult.__new__(OrderStatusResult)
    _set_attribute(result, "__dict__", fields)
    _set_attribute(result, "__pydantic_fields_set__", given)
    _set_attribute(result, "__pydantic_extra__", None)
    _set_attribute(result, "__pydantic_private__", None)
    return result


def _list_items(data: Any, action: str, id_key: str, value_key: str) -> dict[int, Any]:
    """``[{"order": 1, "refill": 1}, ...]`` → ``{1: 1, ...}``; entries without ids are skipped."""
    items: dict[int, Any] = {}
    for entry in _expect_list(data, action):
        if isinstance(entry, dict) and id_key in entry:
            try:
                items[to_id(entry[id_key])] = entry.get(value_key)
            except ValueError:
                continue
    return items


def read_refill_id(data: Any) -> int:
    answer = _expect_dict(data, "refill")
    if (error := _item_error(answer.get("refill"))) is not None:
        raise PanelError(error, action="refill")
    if _is_blank(answer.get("refill")):
        raise AnswerShapeError("refill: no refill id in the answer")
    return to_id(answer["refill"])


def _refill_item(order: int, value: Any) -> RefillResult:
    if (error := _item_error(value)) is not None:
        return RefillResult(order=order, error=error)
    try:
        return RefillResult(order=order, refill=to_id(value))
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
