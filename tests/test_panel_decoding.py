"""Decoding panel answers: exactly what the standard library with its hooks gives (no float
ever), item by item for the catalog, and the key never passes on, written plainly or escaped."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from bot.panel.client import REDACTED, _decode
from bot.panel.errors import PanelUnavailable
from bot.panel.models import (
    UNREADABLE_NUMBER,
    _json_float,
    _json_int,
    _reject_constant,
    decode_json,
)

KEY = "k3y-0f-the-panel"


def exact(text: str) -> Any:
    return json.loads(
        text, parse_float=_json_float, parse_int=_json_int, parse_constant=_reject_constant
    )


def kinds(value: Any) -> Any:
    """The value with every leaf's type beside it (1 == 1.0 == Decimal(1) otherwise)."""
    if isinstance(value, dict):
        return {key: kinds(item) for key, item in value.items()}
    if isinstance(value, list):
        return [kinds(item) for item in value]
    return (type(value).__name__, value)


TEXTS = [
    '{"1": {"charge": "0.90", "remains": "5", "status": "In progress"}}',
    '{"charge": 0.27819, "remains": 157}',
    '{"a": 1e5}',
    '{"a": 1E-5}',
    "[-0.5, 3]",
    "0.5",
    " 7 ",
    "18446744073709551616",
    '{"a": 18446744073709551616}',
    '{"a": -9223372036854775809}',
    '{"a": 9223372036854775807}',
    '{"a": 1234567890123456789}',
    '{"a": ' + "9" * 60 + "}",
    '{"name": "Followers, 1.5k", "n": 3}',
    '{"a": [1, 2, [3, {"b": null, "c": true, "d": false}]]}',
    '{"a": 1, "a": 2}',
    '{"a": "\\u00e9\\/x", "\\u0041": 1}',
    '{"a": -0}',
    '{"a": "x", "b": 1}\n',
    '"\\ud800"',  # a lone surrogate: the standard library takes it
]


@pytest.mark.parametrize("text", TEXTS)
def test_every_answer_decodes_as_the_standard_library_with_hooks_does(text: str) -> None:
    assert kinds(decode_json(text)) == kinds(exact(text))


@pytest.mark.parametrize("text", ["NaN", '{"a": Infinity}', "", "{", "[1,]", "\ufeff{}"])
def test_what_the_standard_library_refuses_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        exact(text)
    with pytest.raises(ValueError):
        decode_json(text)


def test_numbers_never_become_floats() -> None:
    data = decode_json('{"a": 0.1, "b": ' + "1" * 25 + ', "c": ' + "1" * 50 + "}")
    assert data == {"a": Decimal("0.1"), "b": int("1" * 25), "c": UNREADABLE_NUMBER}


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"error": f"bad key {KEY}"}),
        json.dumps({"error": "bad key " + "".join(f"\\u{ord(c):04x}" for c in KEY)}).replace(
            "\\\\", "\\"
        ),
        json.dumps({KEY: {"status": "x"}}),
        '{"1": {"status": "' + KEY[:4] + "\\u" + f"{ord(KEY[4]):04x}" + KEY[5:] + '"}}',
    ],
)
def test_the_key_never_passes_on_written_plainly_or_escaped(text: str) -> None:
    assert KEY in str(exact(text))  # the answer does carry it
    try:
        data = _decode("status", 200, text, PanelUnavailable, secret=KEY)
    except Exception as error:  # a refusal names the error text
        assert KEY not in str(error) and REDACTED in str(error)
        return
    assert KEY not in str(data) and REDACTED in str(data)


# --- the catalog's memory -----------------------------------------------------------------------

CATALOG = [
    {"service": 1, "name": "A", "category": "Likes", "rate": "0.5", "min": 1, "max": 9},
    {"service": 2, "name": "B", "category": "Likes", "rate": "0.7", "min": 1, "max": 9},
    {"service": 3, "name": "C", "category": "Views", "rate": "1", "min": 1, "max": 9, "desc": "d"},
    {"service": "x", "name": "broken"},
]


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(CATALOG),
        json.dumps(CATALOG, indent=2),
        " [ ] ",
        "[1, [2, 3], {}]",
        '[{"a": 0.5}, "x"]',
        '{"error": "Incorrect key"}',
        "[1, 2",
        "[1 2]",
        "[1,]",
        "[1] x",
        "[",
        "",
        '"text"',
        "[NaN]",
    ],
)
def test_an_answer_read_item_by_item_is_what_decoding_it_whole_gives(text: str) -> None:
    from bot.panel.models import DecodedOneByOne, decode_array

    try:
        whole = exact(text)
    except ValueError:
        with pytest.raises(ValueError):
            decode_array(text, lambda item: item)
        return
    decoded = decode_array(text, lambda item: item)
    if isinstance(whole, list):
        assert isinstance(decoded, DecodedOneByOne)
        assert kinds(list(decoded)) == kinds(whole)
        assert kinds(list(decoded)) == kinds(whole)  # read again: the same
    else:
        assert kinds(decoded) == kinds(whole)


def test_a_catalog_read_item_by_item_gives_the_services_of_the_whole() -> None:
    from bot.panel.models import decode_array, read_services

    text = json.dumps(CATALOG)
    assert read_services(decode_array(text, lambda item: item)) == read_services(exact(text))


def test_services_given_the_same_fields_share_one_set_that_a_copy_does_not() -> None:
    from bot.panel.models import read_services

    first, second, third = read_services(json.loads(json.dumps(CATALOG)))
    assert first.model_fields_set is second.model_fields_set
    assert third.model_fields_set == first.model_fields_set | {"desc"}
    changed = first.model_copy(update={"desc": "new"})
    assert "desc" in changed.model_fields_set and "desc" not in second.model_fields_set
    assert first.category is second.category  # one string per category


@pytest.mark.parametrize("escaped", [False, True])
def test_a_catalog_read_item_by_item_never_passes_the_key_on(escaped: bool) -> None:
    name = "".join(f"\\u{ord(c):04x}" for c in KEY) if escaped else KEY
    text = '[{"service": 1, "name": "' + name + '", "category": "c", "rate": "1", "min": 1}]'
    assert KEY in str(exact(text))
    data = _decode("services", 200, text, PanelUnavailable, secret=KEY)
    items = list(data)
    assert KEY not in str(items) and REDACTED in str(items)
