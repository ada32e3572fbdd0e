"""Confirm and Back (or Cancel) pressed on one summary: one order, and never back to the form."""

from __future__ import annotations

import asyncio

import pytest
from aiogram.types import Message

from tests.rig import ALICE, Rig, alerts, last_menu, sent_messages

FOLLOWERS = 1448


async def summary_of(rig: Rig) -> Message:
    snapshot = await rig.services.catalog.get()
    service = snapshot.service(FOLLOWERS)
    assert service is not None
    categories = last_menu(await rig.send(ALICE, "/order"))
    key = snapshot.category_key(service.category)
    services = last_menu(await rig.press_data(ALICE, categories, f"sp:{key}:0:{ALICE}"))
    await rig.press_data(ALICE, services, f"sv:{FOLLOWERS}:{ALICE}")
    await rig.send(ALICE, "https://instagram.com/alice")
    return last_menu(await rig.send(ALICE, "1000"))


@pytest.mark.parametrize("second", ["Back", "Cancel"])
async def test_a_press_after_confirm_never_reopens_the_form(rig: Rig, second: str) -> None:
    summary = await summary_of(rig)
    assert "Please check your order" in (summary.text or "")
    sandbox = rig.services.sandbox
    assert sandbox is not None
    sandbox.delay_next("add", 0.5)
    confirming = asyncio.create_task(rig.press(ALICE, summary, "Confirm"))
    for _ in range(500):  # until Confirm took the draft and `add` is on its way
        if "add" in sandbox.actions():
            break
        await asyncio.sleep(0.01)
    pressed = await rig.press(ALICE, summary, second)
    assert alerts(pressed) == ["This order is being placed right now."]
    assert sent_messages(pressed) == []  # neither the quantity step nor "cancelled"
    placed = await confirming
    assert any("Order placed" in (m.text or "") for m in sent_messages(placed))
    assert sandbox.actions().count("add") == 1
    state, _ = await rig.state_of(ALICE)
    assert state is None  # the form is over: typing a number orders nothing
    await rig.send(ALICE, "1000")
    assert sandbox.actions().count("add") == 1


async def test_back_on_a_placed_summary_shows_the_order(rig: Rig) -> None:
    summary = await summary_of(rig)
    await rig.press(ALICE, summary, "Confirm")
    # The stale summary (say, on another device) is pressed again: its FSM data is gone, so
    # the press is stale; a Cancel on it shows the real order instead of "cancelled".
    shown = await rig.press(ALICE, summary, "Cancel")
    texts = [m.text or "" for m in sent_messages(shown)]
    assert not any("Order cancelled" in text for text in texts), texts
