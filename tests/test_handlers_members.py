"""Every button knows whom it serves: in a group, another member's press changes nothing.

In-process: real updates through the real dispatcher (see `tests/rig.py`).
"""

from __future__ import annotations

from aiogram.types import Message

from handlers.callbacks import OrderAction, OrderStep, member_of
from tests.rig import ALICE, BOB, GROUP, Rig, alerts, buttons, changes, last_menu, sent_messages

FOLLOWERS = 2001  # a Default service with drip-feed, refill and cancel


async def _category_menu_of(rig: Rig, service_id: int) -> tuple[Message, str]:
    menu = last_menu(await rig.send(ALICE, "/order", chat=GROUP))
    snapshot = await rig.services.catalog.get()
    service = snapshot.service(service_id)
    assert service is not None
    return menu, snapshot.category_key(service.category)


async def _alice_screens(rig: Rig) -> list[Message]:
    """Alice walks through an order in the group; every screen with buttons she was shown."""
    screens: list[Message] = []
    categories, key = await _category_menu_of(rig, FOLLOWERS)
    screens.append(categories)
    category = next(b for b in buttons(categories) if f":{key}:" in (b.callback_data or ""))
    services = last_menu(await rig.press_data(ALICE, categories, category.callback_data or ""))
    screens.append(services)
    picked = next(b for b in buttons(services) if f"sv:{FOLLOWERS}:" in (b.callback_data or ""))
    screens.append(last_menu(await rig.press_data(ALICE, services, picked.callback_data or "")))
    screens.append(last_menu(await rig.send(ALICE, "https://instagram.com/alice", chat=GROUP)))
    screens.append(last_menu(await rig.send(ALICE, "1000", chat=GROUP)))  # drip-feed?
    summary = last_menu(await rig.press(ALICE, screens[-1], "Skip"))
    assert "Please check your order" in (summary.text or "")
    screens.append(summary)
    return screens


async def test_another_member_changes_nothing_in_someone_elses_order(rig: Rig) -> None:
    screens = await _alice_screens(rig)
    alice_before = await rig.state_of(ALICE, GROUP)
    for screen in screens:
        for pressed in buttons(screen):
            assert member_of(pressed.callback_data) == ALICE, pressed
            requests = await rig.press_data(BOB, screen, pressed.callback_data or "")
            assert changes(requests) == [], (pressed.text, requests)
            assert alerts(requests) == [
                "These buttons are for someone else. Send /order to start your own."
            ], pressed.text
    assert await rig.state_of(ALICE, GROUP) == alice_before
    assert await rig.state_of(BOB, GROUP) == (None, {})
    sandbox = rig.services.sandbox
    assert sandbox is not None and "add" not in sandbox.actions()  # nothing was ordered


async def test_another_member_cannot_act_on_someone_elses_order_card(rig: Rig) -> None:
    screens = await _alice_screens(rig)
    placed = await rig.press(ALICE, screens[-1], "Confirm")
    assert any("Order placed" in (m.text or "") for m in sent_messages(placed)), placed
    listing = last_menu(await rig.send(ALICE, "/orders", chat=GROUP))
    card = last_menu(await rig.press(ALICE, listing, "#"))
    assert any("Cancel order" in b.text for b in buttons(card)), buttons(card)
    sandbox = rig.services.sandbox
    assert sandbox is not None
    calls_before = sandbox.actions()
    for pressed in buttons(card):
        requests = await rig.press_data(BOB, card, pressed.callback_data or "")
        assert changes(requests) == [] and alerts(requests), pressed.text
    assert sandbox.actions() == calls_before  # no refresh, refill or cancel reached the panel

    # Bob's own /orders in the group lists the chat's orders, but a cancel is not his to make.
    own = last_menu(await rig.send(BOB, "/orders", chat=GROUP))
    order_id = OrderAction.unpack(buttons(own)[0].callback_data or "").order
    for step in (OrderStep.CANCEL, OrderStep.CANCEL_YES):  # the question, or a forged answer
        cancel = OrderAction(action=step, order=order_id, by=BOB).pack()
        requests = await rig.press_data(BOB, own, cancel)
        shown = [m.text or "" for m in sent_messages(requests)] + alerts(requests)
        assert any("Only the person who placed this order" in text for text in shown), shown
    assert "cancel" not in sandbox.actions()


async def test_a_button_from_before_members_were_recorded_offers_a_fresh_start(rig: Rig) -> None:
    menu = last_menu(await rig.send(ALICE, "/order"))
    requests = await rig.press_data(ALICE, menu, "fa:cancel:0")  # packed without a member
    [offer] = sent_messages(requests)
    assert "out of date" in (offer.text or "")
    assert [member_of(b.callback_data) for b in buttons(offer)] == [ALICE, ALICE]
    fresh = last_menu(await rig.press(ALICE, offer, "New order"))
    assert "Choose a category" in (fresh.text or "")
    assert {member_of(b.callback_data) for b in buttons(fresh)} == {ALICE}
