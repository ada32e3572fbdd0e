"""Callback data: short, and crafted values are refused before any handler sees them."""

from __future__ import annotations

import pytest

from handlers.callbacks import (
    CategoriesPage,
    DraftAction,
    DraftStep,
    FormAction,
    OrderAction,
    OrderStep,
    ServicePick,
    ServicesPage,
    member_of,
)


@pytest.mark.parametrize(
    "data",
    [
        "oa:show:99999999999999999999:5",
        "oa:show:-1:5",
        "oa:explode:1:5",
        "cp:-5:1:5",
        "cp:0:1000000:5",  # flows are numbered below a million
        "fa:delay:-7:1:5",
        "sv:abc:1:5",
        "sv:1:1:0",  # a member is a real user id
        "sv:1:1:-5",
    ],
)
def test_crafted_values_do_not_unpack(data: str) -> None:
    kind = {"oa": OrderAction, "cp": CategoriesPage, "fa": FormAction, "sv": ServicePick}[
        data.split(":")[0]
    ]
    with pytest.raises(ValueError):
        kind.unpack(data)


def test_packed_buttons_stay_under_64_bytes() -> None:
    widest = [
        ServicesPage(category="A9-VfA5Q", page=100_000, flow=999_999, by=2**62 - 1).pack(),
        ServicePick(service=2**62 - 1, flow=999_999, by=2**62 - 1).pack(),
        OrderAction(action=OrderStep.CANCEL_YES, order=2**62 - 1, by=2**62 - 1).pack(),
        DraftAction(action=DraftStep.CONFIRM, order=2**62 - 1, by=2**62 - 1).pack(),
    ]
    assert all(len(data.encode()) <= 64 for data in widest), widest


def test_buttons_packed_before_members_were_recorded_name_nobody() -> None:
    """Keyboards sent before `by` existed reach the stale-button handler, never act for anyone."""
    for old in ("fa:back:0", "dr:confirm:12", "oa:refill:7", "op:1", "cp:0:0", "sp:A9-VfA5Q:0:0"):
        # (and the first member-bound ones, "cp:0:1001", "fa:back:0:1001": one field short)
        assert member_of(old) is None, old
    assert member_of(FormAction(action="back", value=0, flow=7, by=42).pack()) == 42
