"""Updates pushed without asking, the admin side and spending limits, end to end over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.harness import ADMIN, ALICE, BOB, GROUP, BotUnderTest, start_bot, stop_bot

SECOND_ADMIN = 1003
LINK = "https://instagram.com/some.account"


@pytest.fixture
async def fast_bot(tmp_path: Path) -> AsyncIterator[BotUnderTest]:
    bot = await start_bot(
        tmp_path,
        poll_interval=0.2,
        notify_chat_ids=[GROUP],
        admin_ids=[ADMIN, SECOND_ADMIN],
        outbox_chat_interval=0.05,
        outbox_group_per_minute=600,
    )
    bot.emulator.add_group(GROUP, "Team")
    yield bot
    await stop_bot(bot)


async def place_followers(bot: BotUnderTest, user_id: int, quantity: str = "100") -> str:
    user = bot.user(user_id, "Customer")
    await user.send("/order")
    await user.press("Instagram (1)")
    await user.press("Instagram Followers")
    await user.send(LINK)
    await user.send(quantity)
    reply = await user.press("Confirm")
    return reply.text


async def test_completion_reaches_the_chat_and_the_group(fast_bot: BotUnderTest) -> None:
    placed = await place_followers(fast_bot, ALICE)
    assert "23501" in placed
    alice = fast_bot.user(ALICE, "Alice")
    fast_bot.sandbox.advance(3600)
    notice = await alice.wait_for(
        lambda m: "23501" in m.text and ("Completed" in m.text or "Partial" in m.text), timeout=10
    )
    assert "23501" in notice.text and "Pending" not in notice.text
    await fast_bot.emulator.wait_until(
        lambda: any("23501" in m.text for m in fast_bot.emulator.messages(GROUP)), 10
    )


async def test_notify_here_subscribes_a_group(fast_bot: BotUnderTest) -> None:
    other_group = -100888
    admin_in_group = fast_bot.emulator.user(ADMIN, first_name="Ada").in_group(other_group, "Ops")
    reply = await admin_in_group.send("/notify_here")
    assert "will be told" in reply.text
    await place_followers(fast_bot, ALICE)
    fast_bot.sandbox.advance(3600)
    await fast_bot.emulator.wait_until(
        lambda: any("23501" in m.text for m in fast_bot.emulator.messages(other_group)), 10
    )


async def test_balance_for_admins_only(fast_bot: BotUnderTest) -> None:
    admin = fast_bot.user(ADMIN, "Ada")
    reply = await admin.send("/balance")
    assert "100.84292" in reply.text and "USD" in reply.text
    bob = fast_bot.user(BOB, "Bob")
    reply = await bob.send("/balance")
    assert not any(ch.isdigit() for ch in reply.text)
    assert "balance" not in reply.text.lower()
    reply = await bob.send("/stats")
    assert not any(ch.isdigit() for ch in reply.text)


async def test_order_over_the_limit_waits_for_one_approval(tmp_path: Path) -> None:
    bot = await start_bot(
        tmp_path, admin_ids=[ADMIN, SECOND_ADMIN], max_order_price=Decimal("0.50")
    )
    try:
        waiting = await place_followers(bot, ALICE, quantity="1000")  # 0.90 > 0.50
        assert "approval" in waiting
        assert not any(r.action == "add" for r in bot.sandbox.request_log)
        admin = bot.user(ADMIN, "Ada")
        request = await admin.wait_for(lambda m: "Approve" in str(m.buttons), timeout=10)
        other = bot.user(SECOND_ADMIN, "Bo")
        other_request = await other.wait_for(lambda m: "Approve" in str(m.buttons), timeout=10)
        decided = await admin.press("Approve", message=request)
        assert "23501" in decided.text
        late = await other.press("Approve", message=other_request)
        assert "Already decided" in late.text
        assert sum(1 for r in bot.sandbox.request_log if r.action == "add") == 1
        alice = bot.user(ALICE, "Alice")
        told = await alice.wait_for(lambda m: "23501" in m.text, timeout=10)
        assert "Order placed" in told.text
    finally:
        await stop_bot(bot)


async def test_blocked_chat_is_skipped_until_it_writes_again(fast_bot: BotUnderTest) -> None:
    from storage import people

    await place_followers(fast_bot, ALICE)
    fast_bot.emulator.block(ALICE)
    fast_bot.sandbox.advance(3600)
    assert fast_bot.services is not None
    sessions = fast_bot.services.sessions

    async def blocked() -> bool:
        async with sessions() as session:
            chat = await people.get_chat(session, ALICE)
            return chat is not None and chat.blocked

    for _ in range(100):
        if await blocked():
            break
        await asyncio.sleep(0.1)
    assert await blocked()
    fast_bot.emulator.unblock(ALICE)
    alice = fast_bot.user(ALICE, "Alice")
    await alice.send("/help")
    assert not await blocked()


async def test_a_push_says_the_news_first_and_carries_order_again(
    fast_bot: BotUnderTest,
) -> None:
    await place_followers(fast_bot, ALICE, quantity="150")
    alice = fast_bot.user(ALICE, "Alice")
    fast_bot.sandbox.advance(3600)
    push = await alice.wait_for(lambda m: m.text.startswith("✅ Order #23501"), timeout=10)
    assert push.text.splitlines()[0] in ("✅ Order #23501: Completed", "✅ Order #23501: Partial")
    assert {"Details", "Order again"} <= {
        b.text.split(" ", 1)[1] for row in push.buttons for b in row
    }
    group = await fast_bot.emulator.wait_until(
        lambda: any("23501" in m.text for m in fast_bot.emulator.messages(GROUP)), 10
    )
    assert group
    [notice] = [m for m in fast_bot.emulator.messages(GROUP) if "23501" in m.text]
    assert "Ordered by Customer" in notice.text and LINK in notice.text and "150" in notice.text

    summary = await alice.press("Order again", message=push)
    assert "Please check your order" in summary.text
    assert LINK in summary.text and "150" in summary.text
    assert "Change link" in str(summary.buttons)
    placed = await alice.press("Confirm")
    assert "Order placed" in placed.text
    adds = [r for r in fast_bot.sandbox.request_log if r.action == "add"]
    assert len(adds) == 2
    first, second = (dict(r.params) for r in adds)
    assert {k: v for k, v in first.items() if k != "key"} == {
        k: v for k, v in second.items() if k != "key"
    }


async def test_the_card_offers_order_again_and_a_changed_quantity(fast_bot: BotUnderTest) -> None:
    await place_followers(fast_bot, ALICE)
    alice = fast_bot.user(ALICE, "Alice")
    card = await alice.send("/status 23501")
    assert "Order again" in str(card.buttons)
    summary = await alice.press("Order again", message=card)
    prompt = await alice.press("Change quantity", message=summary)
    assert "quantity" in prompt.text
    changed = await alice.send("300")
    assert "Please check your order" in changed.text and "300" in changed.text
