"""Callback data: short, and crafted values are refused before any handler sees them."""

from __future__ import annotations

import pytest

from handlers.callbacks import CategoriesPage, FormAction, OrderAction, ServicePick, ServicesPage


@pytest.mark.parametrize(
    "data",
    ["oa:show:99999999999999999999", "oa:show:-1", "cp:-5:0", "fa:delay:-7", "sv:abc:0"],
)
def test_crafted_values_do_not_unpack(data: str) -> None:
    kind = {"oa": OrderAction, "cp": CategoriesPage, "fa": FormAction, "sv": ServicePick}[
        data.split(":")[0]
    ]
    with pytest.raises(ValueError):
        kind.unpack(data)


def test_packed_buttons_stay_under_64_bytes() -> None:
    widest = [
        ServicesPage(category="A9-VfA5Q", page=100_000, by=2**62 - 1).pack(),
        ServicePick(service=2**62 - 1, by=2**62 - 1).pack(),
        OrderAction(action="refresh", order=2**62 - 1).pack(),
    ]
    assert all(len(data.encode()) <= 64 for data in widest), widest
