"""Ordering end to end: a person in a chat orders through the real bot, the Telegram emulator
and the sandbox panel, over HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from playground.sandbox import SandboxPanel
from playground.telegram import ChatUser
from tests.harness import ALICE, BOB, STRANGER, BotUnderTest, start_bot, stop_bot

LINK = "https://instagram.com/some.account"


def add_calls(bot: BotUnderTest) -> int:
    return sum(1 for request in bot.sandbox.request_log if request.action == "add")


async def open_service(user: ChatUser, category: str, service: str) -> str:
    reply = await user.send("/order")
    assert category in " ".join(b.text for row in reply.buttons for b in row)
    await user.press(category)
    prompt = await user.press(service)
    return prompt.text


async def test_default_order_with_dripfeed_skipped(running_bot: BotUnderTest) -> None:
    alice = running_bot.user(ALICE, "Alice")
    prompt = await open_service(alice, "Instagram Followers", "Instagram Followers [Real")
    assert "link" in prompt
    reply = await alice.send(LINK)
    assert "quantity" in reply.text and "100" in reply.text and "50,000" in reply.text
    assert "per run" in reply.text  # the quantity of a drip-feed service is per run
    reply = await alice.send("1000")
    assert any("Skip" in b.text for row in reply.buttons for b in row)
    summary = await alice.press("Skip")
    assert "Instagram Followers [Real, 30 days refill]" in summary.text
    assert LINK in summary.text and "1,000" in summary.text
    assert "1.25 USD" in summary.text
    placed = await alice.press("Confirm")
    assert "23501" in placed.text
    assert add_calls(running_bot) == 1
    order = running_bot.sandbox.orders[23501]
    assert order.quantity == 1000


async def test_dripfeed_order_multiplies_by_runs(running_bot: BotUnderTest) -> None:
    alice = running_bot.user(ALICE, "Alice")
    await open_service(alice, "Instagram Auto", "Instagram Reel Views")
    await alice.send(LINK)
    await alice.send("1000")
    reply = await alice.press("Yes")
    assert "runs" in reply.text
    await alice.send("3")
    summary = await alice.send("10")
    assert "3 runs" in summary.text and "10 minutes" in summary.text
    assert "1,000 per run × 3 runs = 3,000 in total" in summary.text
    assert "0.045 USD" in summary.text
    placed = await alice.press("Confirm")
    assert "23501" in placed.text
    logged = next(r for r in running_bot.sandbox.request_log if r.action == "add")
    assert logged.params["runs"] == "3" and logged.params["interval"] == "10"


async def test_custom_comments_quantity_is_the_number_of_lines(
    running_bot: BotUnderTest,
) -> None:
    alice = running_bot.user(ALICE, "Alice")
    await open_service(alice, "Facebook", "Facebook Comments")
    reply = await alice.send("https://facebook.com/post/1")
    assert "comment" in reply.text
    comments = "\n".join(f"Great post number {n} <3" for n in range(12))
    summary = await alice.send(comments)
    assert "Quantity: 12" in summary.text
    assert "0.096 USD" in summary.text  # 8 × 12 / 1000
    assert "Great post number 0 &lt;3" not in summary.text  # escaped on the wire, shown plain
    assert "Great post number 0 <3" in summary.text
    placed = await alice.press("Confirm")
    assert "23501" in placed.text
    logged = next(r for r in running_bot.sandbox.request_log if r.action == "add")
    assert logged.params["comments"].count("\n") == 11
    assert "quantity" not in logged.params


async def test_package_costs_its_rate(running_bot: BotUnderTest) -> None:
    alice = running_bot.user(ALICE, "Alice")
    await open_service(alice, "Instagram Likes", "Instagram Likes Package")
    summary = await alice.send("https://instagram.com/p/abc")
    assert "2.50 USD" in summary.text
    placed = await alice.press("Confirm")
    assert "23501" in placed.text


async def test_categories_paginate_and_search_finds(running_bot: BotUnderTest) -> None:
    alice = running_bot.user(ALICE, "Alice")
    first = await alice.send("/order")
    names = [b.text for row in first.buttons for b in row]
    assert any("Instagram" in name for name in names)
    assert not any("Spotify" in name for name in names)
    second = await alice.press("Next")
    assert any("Spotify" in b.text for row in second.buttons for b in row)
    prompt = await alice.press("Search")
    assert "search" in prompt.text.lower()
    results = await alice.send("tiktok views")
    assert any("TikTok Views" in b.text for row in results.buttons for b in row)
    card = await alice.press("TikTok Views")
    assert "link" in card.text


async def test_validation_errors_keep_the_step(running_bot: BotUnderTest) -> None:
    alice = running_bot.user(ALICE, "Alice")
    await open_service(alice, "Instagram (1)", "Instagram Followers")
    error = await alice.send("not a link")
    assert "link" in error.text.lower()
    again = await alice.send("https://instagram.com/ok")
    assert "quantity" in again.text
    for bad in ("abc", "12.5", "-3", "5", "99999999"):
        error = await alice.send(bad)
        assert "quantity" in error.text  # the step's question is repeated
        assert "Please" in error.text or "must be from 50 to 10000" in error.text
    summary = await alice.send("1 000")
    assert "Confirm" in " ".join(b.text for row in summary.buttons for b in row)
    assert "0.90 USD" in summary.text


async def test_double_confirm_places_one_order(running_bot: BotUnderTest) -> None:
    alice = running_bot.user(ALICE, "Alice")
    await open_service(alice, "Instagram (1)", "Instagram Followers")
    await alice.send(LINK)
    summary = await alice.send("100")
    alice.press_nowait("Confirm", message=summary)
    alice.press_nowait("Confirm", message=summary)
    await running_bot.emulator.settle(idle=0.5)
    assert add_calls(running_bot) == 1
    assert any("23501" in m.text for m in alice.bot_messages)


async def test_stale_service_button_says_gone(running_bot: BotUnderTest) -> None:
    alice = running_bot.user(ALICE, "Alice")
    await alice.send("/order")
    services = await alice.press("TikTok")
    running_bot.sandbox.remove_service(2101)  # the panel drops TikTok Views
    assert running_bot.services is not None
    await running_bot.services.catalog.refresh()
    answer = await alice.press("TikTok Views", message=services)
    assert "no longer available" in answer.text
    assert add_calls(running_bot) == 0


async def test_not_enough_funds_is_explained(running_bot: BotUnderTest) -> None:
    alice = running_bot.user(ALICE, "Alice")
    running_bot.sandbox.fail_next_add("Not enough funds on balance")
    await open_service(alice, "Instagram (1)", "Instagram Followers")
    await alice.send(LINK)
    await alice.send("100")
    reply = await alice.press("Confirm")
    assert "funds" in reply.text
    assert "23501" not in reply.text


async def test_other_panel_error_is_quoted_escaped(running_bot: BotUnderTest) -> None:
    alice = running_bot.user(ALICE, "Alice")
    running_bot.sandbox.fail_next_add("Link <b>is</b> banned")
    await open_service(alice, "Instagram (1)", "Instagram Followers")
    await alice.send(LINK)
    await alice.send("100")
    reply = await alice.press("Confirm")
    assert "Link <b>is</b> banned" in reply.text  # shown literally, not as markup


async def test_unknown_outcome_is_not_confirmed(running_bot: BotUnderTest) -> None:
    alice = running_bot.user(ALICE, "Alice")
    running_bot.sandbox.delay_next("add", 5)  # longer than PANEL_TIMEOUT (2 s)
    await open_service(alice, "Instagram (1)", "Instagram Followers")
    await alice.send(LINK)
    await alice.send("100")
    alice.press_nowait("Confirm")
    reply = await alice.wait_for(lambda m: "not confirm" in m.text, timeout=8)
    assert "do not order it again" in reply.text
    assert add_calls(running_bot) == 1


async def test_card_refresh_refill_and_cancel(running_bot: BotUnderTest) -> None:
    alice = running_bot.user(ALICE, "Alice")
    # A cancellable order (TikTok Followers) and a refillable one (Instagram 1448).
    await open_service(alice, "TikTok", "TikTok Followers")
    await alice.send("https://tiktok.com/@me")
    await alice.send("100")
    await alice.press("Confirm")
    listing = await alice.send("/orders")
    assert "23501" in listing.text
    card = await alice.press("#23501")
    assert "Refresh" in str(card.buttons) and "Cancel order" in str(card.buttons)
    question = await alice.press("Cancel order")
    assert "Cancel order #23501?" in question.text
    assert "cancel" not in running_bot.sandbox.actions()  # one tap never cancels
    kept = await alice.press("No")
    assert "Cancel order" in str(kept.buttons) and "cancel" not in running_bot.sandbox.actions()
    await alice.press("Cancel order")
    cancelled = await alice.press("Yes")
    assert "Cancellation requested" in cancelled.text
    assert "Cancel order" not in str(cancelled.buttons)  # the panel accepted it: asked once
    assert running_bot.sandbox.orders[23501].status == "Canceled"

    await open_service(alice, "Instagram (1)", "Instagram Followers")
    await alice.send(LINK)
    await alice.send("100")
    await alice.press("Confirm")
    running_bot.sandbox.advance(3600)
    card = await alice.send("/status 23502")
    assert "Refill" in str(card.buttons)
    assert "Completed" in card.text or "Partial" in card.text
    refilled = await alice.press("Refill")
    assert "Refill requested" in refilled.text


async def test_another_chats_order_reveals_nothing(running_bot: BotUnderTest) -> None:
    alice = running_bot.user(ALICE, "Alice")
    await open_service(alice, "Instagram (1)", "Instagram Followers")
    await alice.send(LINK)
    await alice.send("100")
    await alice.press("Confirm")
    bob = running_bot.user(BOB, "Bob")
    reply = await bob.send("/status 23501")
    assert reply.text == "There is no order #23501 in this chat."
    missing = await bob.send("/status 99999")
    assert missing.text == "There is no order #99999 in this chat."
    refill = await bob.send("/refill 23501")
    assert "There is no order #23501" in refill.text


async def test_stranger_is_refused_with_their_id(running_bot: BotUnderTest) -> None:
    stranger = running_bot.user(STRANGER, "Eve")
    reply = await stranger.send("/order")
    assert str(STRANGER) in reply.text and "admin" in reply.text
    assert [b.text for row in reply.buttons for b in row] == ["🙋 Ask for access"]  # no menu
    assert add_calls(running_bot) == 0


async def test_cancel_leaves_the_flow(running_bot: BotUnderTest) -> None:
    alice = running_bot.user(ALICE, "Alice")
    await open_service(alice, "Instagram (1)", "Instagram Followers")
    reply = await alice.send("/cancel")
    assert "Cancelled" in reply.text
    reply = await alice.send("https://instagram.com/after")
    assert "did not understand" in reply.text


async def test_commands_are_never_taken_as_answers(running_bot: BotUnderTest) -> None:
    alice = running_bot.user(ALICE, "Alice")
    await open_service(alice, "Instagram (1)", "Instagram Followers")
    reply = await alice.send("/orders")
    assert "no orders yet" in reply.text
    reply = await alice.send(LINK)  # still on the link step
    assert "quantity" in reply.text


async def test_conversation_resumes_after_restart(tmp_path: Path) -> None:
    bot = await start_bot(tmp_path)
    try:
        alice = bot.user(ALICE, "Alice")
        await open_service(alice, "Instagram (1)", "Instagram Followers")
        await alice.send(LINK)
        await bot.restart()
        summary = await alice.send("100")
        assert LINK in summary.text and "0.09 USD" in summary.text
    finally:
        await stop_bot(bot)


async def test_back_returns_to_the_previous_step(running_bot: BotUnderTest) -> None:
    alice = running_bot.user(ALICE, "Alice")
    await open_service(alice, "Instagram (1)", "Instagram Followers")
    await alice.send(LINK)
    reply = await alice.press("Back")
    assert "link" in reply.text
    reply = await alice.send("https://instagram.com/other")
    summary = await alice.send("200")
    assert "instagram.com/other" in summary.text


@pytest.mark.parametrize("group_user", [BOB])
async def test_group_order_uses_force_reply(running_bot: BotUnderTest, group_user: int) -> None:
    bob = running_bot.emulator.user(group_user, first_name="Bob").in_group(-100777, title="Team")
    await bob.send("/order")
    await bob.press("Instagram (1)")
    await bob.press("Instagram Followers")
    await running_bot.emulator.settle()
    question = next(m for m in reversed(bob.bot_messages) if m.force_reply)
    assert "link" in question.text
    reply = await bob.reply_to(question, LINK)
    assert "quantity" in reply.text and reply.force_reply
    await bob.reply_to(reply, "100")
    await running_bot.emulator.settle()
    await bob.press("Confirm")
    await asyncio.sleep(0)
    assert add_calls(running_bot) == 1


async def test_a_group_members_menu_is_theirs(running_bot: BotUnderTest) -> None:
    group = running_bot.emulator
    alice = group.user(ALICE, first_name="Alice").in_group(-100777, title="Team")
    bob = group.user(BOB, first_name="Bob").in_group(-100777, title="Team")
    menu = await alice.send("/order")
    answer = await bob.press("TikTok", message=menu)
    assert "someone else" in answer.text
    services = await alice.press("TikTok", message=menu)
    assert "TikTok Views" in str(services.buttons)


async def test_catalog_unavailable_is_explained_and_recovers(tmp_path: Path) -> None:
    """The panel is down as the bot starts: start-up goes on without the catalog, the first
    menu (which joins the load start-up began) says so, and a later one shows the catalog."""
    sandbox = SandboxPanel(api_key="sandbox-key")
    for _ in range(4):  # the load start-up begins: its first try and every retry fail
        sandbox.fail_next_http("services", status=502)
    bot = await start_bot(tmp_path, sandbox=sandbox)
    try:
        alice = bot.user(ALICE, "Alice")
        reply = await alice.send("/order", timeout=15)
        assert "not available right now" in reply.text
        reply = await alice.send("/order")
        assert "Choose a category" in reply.text
        assert not bot.emulator.errors
    finally:
        await stop_bot(bot)


@pytest.mark.parametrize("currency", ["<USD>", "<u>$</u>"])
async def test_a_currency_with_markup_breaks_nothing(tmp_path: Path, currency: str) -> None:
    """Telegram refuses a message with stray markup: nobody could have ordered."""
    bot = await start_bot(tmp_path, sandbox=SandboxPanel(api_key="sandbox-key", currency=currency))
    try:
        alice = bot.user(ALICE, "Alice")
        await open_service(alice, "Instagram (1)", "Instagram Followers")
        await alice.send(LINK)
        summary = await alice.send("100")
        assert "Please check your order" in summary.text and "<u>" not in summary.html
        placed = await alice.press("Confirm")
        assert "Order placed" in placed.text
        assert not bot.emulator.errors, bot.emulator.errors
    finally:
        await stop_bot(bot)
