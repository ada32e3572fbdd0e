"""Confirm and Back (or Cancel) pressed on one summary: one order, and never back to the form.

On one instance a member's updates are handled one at a time (events isolation), so the second
press sees the order placed; on two instances (or devices racing) it can come while `add` is in
flight, and must not reopen the form either.
"""

from __future__ import annotations

import asyncio

import pytest
from aiogram.types import Message

from bot.app import create_dispatcher
from tests.rig import ALICE, Rig, alerts, buttons, last_menu, sent_messages

FOLLOWERS = 1448


async def summary_of(rig: Rig) -> Message:
    snapshot = await rig.services.catalog.get()
    service = snapshot.service(FOLLOWERS)
    assert service is not None
    key = snapshot.category_key(service.category)
    categories = last_menu(await rig.send(ALICE, "/order"))
    [category] = [b for b in buttons(categories) if f":{key}:" in (b.callback_data or "")]
    services = last_menu(await rig.press_data(ALICE, categories, category.callback_data or ""))
    [picked] = [b for b in buttons(services) if f"sv:{FOLLOWERS}:" in (b.callback_data or "")]
    await rig.press_data(ALICE, services, picked.callback_data or "")
    await rig.send(ALICE, "https://instagram.com/alice")
    summary = last_menu(await rig.send(ALICE, "1000"))
    assert "Please check your order" in (summary.text or "")
    return summary


async def until_add_is_sent(rig: Rig) -> None:
    sandbox = rig.services.sandbox
    assert sandbox is not None
    for _ in range(500):
        if "add" in sandbox.actions():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("Confirm never called add")


@pytest.mark.parametrize("second", ["Back", "Cancel"])
async def test_a_press_on_another_instance_during_add_never_reopens_the_form(
    rig: Rig, second: str
) -> None:
    summary = await summary_of(rig)
    sandbox = rig.services.sandbox
    assert sandbox is not None
    sandbox.delay_next("add", 0.5)
    confirming = asyncio.create_task(rig.press(ALICE, summary, "Confirm"))
    await until_add_is_sent(rig)
    # Instances share the conversation state (Redis, or a database they all write through);
    # SQLite's, written behind, reaches the other dispatcher once flushed.
    await rig.dispatcher.storage.close()
    rig.dispatcher, first = create_dispatcher(rig.services), rig.dispatcher  # instance two
    pressed = await rig.press(ALICE, summary, second)
    rig.dispatcher = first
    assert alerts(pressed) == ["This order is being placed right now."]
    assert sent_messages(pressed) == []  # neither the quantity step nor "cancelled"
    placed = await confirming
    assert any("Order placed" in (m.text or "") for m in sent_messages(placed))
    assert sandbox.actions().count("add") == 1
    assert (await rig.state_of(ALICE))[0] is None  # the form is over
    await rig.send(ALICE, "1000")
    assert sandbox.actions().count("add") == 1


async def test_back_after_confirm_on_one_instance_waits_and_finds_the_flow_over(rig: Rig) -> None:
    summary = await summary_of(rig)
    sandbox = rig.services.sandbox
    assert sandbox is not None
    sandbox.delay_next("add", 0.3)
    confirming = asyncio.create_task(rig.press(ALICE, summary, "Confirm"))
    await until_add_is_sent(rig)
    pressed = await rig.press(ALICE, summary, "Back")  # waits for Confirm to finish
    await confirming
    texts = [m.text or "" for m in sent_messages(pressed)]
    assert not any("quantity" in text for text in texts), texts
    assert sandbox.actions().count("add") == 1


async def test_cancel_on_a_placed_summary_shows_the_order(rig: Rig) -> None:
    summary = await summary_of(rig)
    await rig.press(ALICE, summary, "Confirm")
    # The same summary seen on another device, its Cancel pressed: the real order is shown.
    shown = await rig.press(ALICE, summary, "Cancel")
    [card] = sent_messages(shown)
    assert "Order #" in (card.text or "") and "Cancelled" not in (card.text or "")
