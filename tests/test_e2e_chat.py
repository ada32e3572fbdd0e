"""The chat experience end to end over HTTP: superseded keyboards retired, the reply keyboard in
a new language, a group cleaned up after an order, search typed at the category step, costs
after a cancel, asking for access, and favourites."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from playground.telegram import ChatUser
from playground.telegram.users import Message
from tests.harness import ADMIN, ALICE, BOB, GROUP, STRANGER, BotUnderTest, start_bot, stop_bot

LINK = "https://instagram.com/some.account"


@pytest.fixture
async def chat_bot(tmp_path: Path) -> AsyncIterator[BotUnderTest]:
    bot = await start_bot(tmp_path, poll_interval=0.2, outbox_chat_interval=0.05)
    yield bot
    await stop_bot(bot)


def labels(message: Message) -> list[str]:
    return [button.text for row in message.buttons for button in row]


def live_keyboards(user: ChatUser) -> list[Message]:
    """The bot's messages in the chat that still carry inline buttons."""
    return [m for m in user.bot_messages if m.buttons]


async def test_superseded_prompts_and_menus_lose_their_buttons(chat_bot: BotUnderTest) -> None:
    alice = chat_bot.user(ALICE, "Alice")
    await alice.send("/order")
    await alice.press("Instagram (1)")
    await alice.press("Instagram Followers")
    error = await alice.send("not a link")
    assert "link" in error.text.lower()
    await chat_bot.emulator.settle()
    [live] = live_keyboards(alice)  # only the newest prompt can still be pressed
    assert live.message_id == alice.bot_messages[-1].message_id

    first_menu = await alice.send("/order")
    await chat_bot.emulator.settle()
    second_menu = await alice.send("/order")
    await chat_bot.emulator.settle()
    assert [m.message_id for m in live_keyboards(alice)] == [second_menu.message_id]
    retired = alice.chat.get(first_menu.message_id)
    assert retired is not None and retired.buttons == []


async def test_the_reply_keyboard_follows_a_new_language(chat_bot: BotUnderTest) -> None:
    alice = chat_bot.user(ALICE, "Alice")
    welcome = await alice.send("/start")
    assert welcome.keyboard == [["🛒 New order", "📋 My orders"]]
    await alice.send("/language")
    await alice.press("Filipino")
    await chat_bot.emulator.settle()
    keyboards = [m.keyboard for m in alice.bot_messages if m.keyboard]
    assert keyboards[-1] == [["🛒 Bagong order", "📋 Mga order ko"]]


async def test_a_group_order_leaves_no_prompts_behind(chat_bot: BotUnderTest) -> None:
    bob = chat_bot.emulator.user(BOB, first_name="Bob").in_group(GROUP, title="Team")
    await bob.send("/order")
    await bob.press("Instagram (1)")
    await bob.press("Instagram Followers")
    await chat_bot.emulator.settle()
    question = next(m for m in reversed(bob.bot_messages) if m.force_reply)
    assert question.text.startswith("Bob, ") and "link" in question.text
    quantity = await bob.reply_to(question, LINK)
    assert quantity.force_reply and quantity.text.startswith("Bob, ")
    await bob.reply_to(quantity, "100")
    await chat_bot.emulator.settle()
    placed = await bob.press("Confirm")
    assert "23501" in placed.text
    await chat_bot.emulator.settle()
    deleted = {e.item.message_id for e in bob.chat.events if e.kind == "deleted"}
    assert {question.message_id, quantity.message_id} <= deleted
    left = [m for m in bob.bot_messages if m.force_reply or m.text.startswith("⬇️")]
    assert left == [], [m.text for m in left]


async def test_words_typed_at_the_category_step_search(chat_bot: BotUnderTest) -> None:
    alice = chat_bot.user(ALICE, "Alice")
    await alice.send("/order")
    found = await alice.send("tiktok")
    assert "Choose a service" in found.text
    assert any("TikTok Views" in label for label in labels(found))
    card = await alice.press("TikTok Views")
    assert "link" in card.text


async def test_a_cancelled_order_costs_nothing_in_stats(chat_bot: BotUnderTest) -> None:
    alice = chat_bot.user(ALICE, "Alice")
    await alice.send("/order")
    await alice.press("TikTok")
    await alice.press("TikTok Followers")
    await alice.send("https://tiktok.com/@me")
    await alice.send("1000")
    placed = await alice.press("Confirm")
    assert "23501" in placed.text
    admin = chat_bot.user(ADMIN, "Ada")
    before = await admin.send("/stats")
    assert "Spent today (UTC): 0.00 USD" not in before.text  # the quoted price until known

    card = await alice.send("/status 23501")
    await alice.press("Cancel order", message=card)
    await alice.press("Yes")
    await alice.wait_for(lambda m: "23501" in m.text and "Canceled" in m.text, timeout=10)
    after = await admin.send("/stats")
    assert "Spent today (UTC): 0.00 USD" in after.text, after.text


async def test_a_stranger_asks_for_access_and_is_let_in(chat_bot: BotUnderTest) -> None:
    admin = chat_bot.user(ADMIN, "Ada")
    await admin.send("/start")  # Telegram lets a bot write only to people who started it
    stranger = chat_bot.user(STRANGER, "Sam <3")
    refusal = await stranger.send("/order")
    assert "Ask for access" in str(refusal.buttons)
    asked = await stranger.press("Ask for access")
    assert "went to the admins" in asked.text
    again = await stranger.press("Ask for access", message=refusal)
    assert "asked already today" in again.text

    request = await admin.wait_for(lambda m: "asks to be allowed to order" in m.text)
    assert "Sam <3" in request.text and str(STRANGER) in request.text  # shown, escaped
    assert {"Allow", "Deny"} <= {label.split(" ", 1)[-1] for label in labels(request)}
    assert len([m for m in admin.bot_messages if "asks to be allowed" in m.text]) == 1
    await admin.press("Allow", message=request)
    told = await stranger.wait_for(lambda m: "You may now place orders" in m.text)
    assert "/order" in told.text
    menu = await stranger.send("/order")
    assert "Choose a category" in menu.text


async def test_favourites_are_one_tap_to_add_and_to_remove(chat_bot: BotUnderTest) -> None:
    alice = chat_bot.user(ALICE, "Alice")
    menu = await alice.send("/order")
    assert not any("Favourites" in label for label in labels(menu))
    await alice.press("Instagram (1)")
    card = await alice.press("Instagram Followers")
    starred = await alice.press("Add to favourites", message=card)
    assert "In favourites" in str(starred.buttons)

    menu = await alice.send("/order")
    assert labels(menu)[0] == "★ Favourites"
    favourites = await alice.press("★ Favourites")
    assert any("Instagram Followers" in label for label in labels(favourites))
    card = await alice.press("Instagram Followers", message=favourites)
    assert "link" in card.text
    await alice.press("In favourites", message=card)
    menu = await alice.send("/order")
    assert not any("Favourites" in label for label in labels(menu))


async def test_a_placed_order_offers_its_card_and_the_next_order(chat_bot: BotUnderTest) -> None:
    alice = chat_bot.user(ALICE, "Alice")
    await alice.send("/order")
    await alice.press("TikTok")
    await alice.press("TikTok Followers")
    await alice.send("https://tiktok.com/@me")
    await alice.send("100")
    placed = await alice.press("Confirm")
    assert "Order placed" in placed.text
    assert labels(placed) == ["📄 Details", "🛒 New order"]
    card = await alice.press("Details", message=placed)  # the card, in place
    assert card.message_id == placed.message_id
    assert "23501" in card.text and "Cancel order" in str(card.buttons)  # a mistake undone
