"""Reseller mode end to end: orders paid from the customer's wallet and refunded exactly, over
HTTP through the real bot, the Telegram emulator and the sandbox panel."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.app import Services, create_services
from bot.notify import Notifier
from bot.ordering import give_up_interrupted_submissions
from playground.sandbox import SandboxOrder
from playground.telegram import ChatUser
from storage import ledger, outbox
from storage.db import utcnow
from storage.models import LedgerKind, MarkupScope
from tests.harness import ADMIN, ALICE, STRANGER, BotUnderTest, start_bot, stop_bot

LINK = "https://tiktok.com/@me"
_references = itertools.count(1)


def wallet_bot(tmp_path: Path, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "billing": "wallet",
        "shop_currency": "USD",
        "poll_interval": 0.2,
        "outbox_chat_interval": 0.05,
    }
    return start_bot(tmp_path, **(values | overrides))


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[BotUnderTest]:
    bot = await wallet_bot(tmp_path)
    try:
        yield bot
    finally:
        await stop_bot(bot)


def services_of(bot: BotUnderTest) -> Services:
    assert bot.services is not None
    return bot.services


async def fund(bot: BotUnderTest, user_id: int, amount: str) -> None:
    """Credit the wallet, and wait until the person's "an admin added" message has left the
    outbox: arriving in the middle of a conversation it would be taken for the bot's answer."""
    services = services_of(bot)
    await services.billing.credit(
        user_id, Decimal(amount), admin_id=ADMIN, reference=f"admin:test:{next(_references)}"
    )

    async def told() -> bool:
        async with services.sessions() as session:
            return not await outbox.pending(session, user_id)

    for _ in range(100):
        if await told():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the credit's message to {user_id} never left the outbox")


async def balance(bot: BotUnderTest, user_id: int = ALICE) -> Decimal:
    return (await services_of(bot).billing.wallet(user_id)).balance


async def kinds(bot: BotUnderTest, user_id: int = ALICE) -> list[str]:
    """The user's entries, oldest first: kind and amount."""
    view = await services_of(bot).billing.wallet(user_id, last=50)
    return [f"{entry.kind} {entry.amount}" for entry in reversed(view.entries)]


def add_calls(bot: BotUnderTest) -> int:
    return sum(1 for request in bot.sandbox.request_log if request.action == "add")


async def confirm_placed(user: ChatUser) -> None:
    """Press Confirm and wait for "Order placed" (the press may come back with the callback's
    early answer alone while `add` is still on its way, on a slow machine)."""
    reply = await user.press("Confirm")
    if "Order placed" not in getattr(reply, "text", ""):
        await user.wait_for(lambda m: "Order placed" in m.text)


async def summary_of(user: ChatUser, quantity: str = "1000") -> Any:
    """TikTok Followers (2.10 per 1000, cancellable) up to its summary."""
    await user.send("/order")
    await user.press("TikTok")
    await user.press("TikTok Followers")
    await user.send(LINK)
    return await user.send(quantity)


def end_on_panel(order: SandboxOrder, *, remains: int) -> None:
    """Make the sandbox finish this order at its next look: Partial with `remains` left (or
    Completed with 0)."""
    order.partial_remains = remains
    order.created_at = -1e9


async def test_an_order_is_paid_from_the_wallet(shop: BotUnderTest) -> None:
    await fund(shop, ALICE, "10.00")
    alice = shop.user(ALICE, "Alice")
    summary = await summary_of(alice)
    assert "2.10 USD" in summary.text
    placed = await alice.press("Confirm")
    assert "23501" in placed.text and "2.10 USD" in placed.text
    assert add_calls(shop) == 1
    assert await balance(shop) == Decimal("7.90")
    assert await kinds(shop) == ["credit 10.00", "charge -2.10"]


async def test_a_short_balance_places_nothing_and_offers_a_top_up(shop: BotUnderTest) -> None:
    await fund(shop, ALICE, "1.00")
    alice = shop.user(ALICE, "Alice")
    summary = await summary_of(alice)
    reply = await alice.press("Confirm")
    assert "balance" in reply.text and "1.00 USD" in reply.text and "2.10 USD" in reply.text
    assert any("Top up" in button.text for row in reply.buttons for button in row)
    assert add_calls(shop) == 0
    assert await balance(shop) == Decimal("1.00")
    await fund(shop, ALICE, "5.00")
    placed = await alice.press("Confirm", message=summary)  # the same summary, confirmable
    assert "23501" in placed.text
    assert await balance(shop) == Decimal("3.90")


async def test_a_refusal_is_refunded_at_once(shop: BotUnderTest) -> None:
    await fund(shop, ALICE, "10.00")
    alice = shop.user(ALICE, "Alice")
    shop.sandbox.fail_next_add("Link is banned")
    await summary_of(alice)
    reply = await alice.press("Confirm")
    assert "back in your wallet" in reply.text and "10.00 USD" in reply.text
    assert await balance(shop) == Decimal("10.00")
    assert await kinds(shop) == ["credit 10.00", "charge -2.10", "refund 2.10"]


async def test_the_panels_own_funds_stay_hidden(shop: BotUnderTest) -> None:
    await fund(shop, ALICE, "10.00")
    alice = shop.user(ALICE, "Alice")
    admin = shop.user(ADMIN, "Admin")
    shop.sandbox.fail_next_add("Not enough funds on balance")
    await summary_of(alice)
    reply = await alice.press("Confirm")
    assert "temporarily unavailable" in reply.text and "back in your wallet" in reply.text
    assert "funds" not in reply.text
    await admin.wait_for(lambda m: "not enough funds" in m.text)
    assert await balance(shop) == Decimal("10.00")
    card = await alice.send("/orders")
    assert "funds" not in card.text


async def test_a_request_that_never_left_is_refunded_and_charged_again(
    shop: BotUnderTest,
) -> None:
    await fund(shop, ALICE, "10.00")
    alice = shop.user(ALICE, "Alice")
    summary = await summary_of(alice)
    url = shop.sandbox.base_url
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    await shop.sandbox.stop()  # nothing listens: the connection is never made
    try:
        reply = await alice.press("Confirm")
        assert "nothing was ordered" in reply.text and "back in your wallet" in reply.text
    finally:
        await shop.sandbox.start(port=port)
    assert await balance(shop) == Decimal("10.00")
    placed = await alice.press("Confirm", message=summary)
    assert "23501" in placed.text
    assert await balance(shop) == Decimal("7.90")
    async with services_of(shop).sessions() as session:
        order_id = (await ledger.last_entries(session, ALICE, 1))[0].order_id
        assert order_id is not None
        references = [e.reference for e in await ledger.entries_for_order(session, order_id)]
    assert references == [
        f"order:{order_id}:charge:1",
        f"order:{order_id}:refund:1",
        f"order:{order_id}:charge:2",
    ]


async def unknown_order(bot: BotUnderTest, alice: ChatUser) -> int:
    bot.sandbox.delay_next("add", 5)  # longer than PANEL_TIMEOUT (2 s)
    await summary_of(alice)
    alice.press_nowait("Confirm")
    await alice.wait_for(lambda m: "not confirm" in m.text, timeout=8)
    unknown, _ = await services_of(bot).reconciliation.unknown_orders()
    return unknown[0].id


async def test_an_unknown_outcome_is_held_then_refunded_when_failed(shop: BotUnderTest) -> None:
    await fund(shop, ALICE, "10.00")
    alice = shop.user(ALICE, "Alice")
    order_id = await unknown_order(shop, alice)
    assert await balance(shop) == Decimal("7.90")  # held until an admin settles it
    await services_of(shop).reconciliation.mark_failed(order_id, admin_id=ADMIN)
    told = await alice.wait_for(lambda m: "back in your wallet" in m.text)
    assert "2.10 USD" in told.text
    assert await balance(shop) == Decimal("10.00")


async def test_an_unknown_outcome_found_placed_keeps_the_money(shop: BotUnderTest) -> None:
    await fund(shop, ALICE, "10.00")
    alice = shop.user(ALICE, "Alice")
    order_id = await unknown_order(shop, alice)
    await services_of(shop).reconciliation.mark_placed(order_id, 23501, admin_id=ADMIN)
    await alice.wait_for(lambda m: "is confirmed" in m.text)
    assert await balance(shop) == Decimal("7.90")
    assert await kinds(shop) == ["credit 10.00", "charge -2.10"]


async def test_a_late_id_after_a_refund_charges_again(tmp_path: Path) -> None:
    bot = await wallet_bot(tmp_path, panel_timeout=8.0)
    try:
        services = services_of(bot)
        await fund(bot, ALICE, "2.50")
        alice = bot.user(ALICE, "Alice")
        admin = bot.user(ADMIN, "Admin")
        bot.sandbox.delay_next("add", 3)  # answered, but late
        await summary_of(alice)
        alice.press_nowait("Confirm")
        await bot.emulator.wait_until(lambda: add_calls(bot) == 1, 5)
        # Given up on meanwhile (as after a restart), and an admin found nothing yet.
        notifier = Notifier(services.settings, services.i18n)
        later = utcnow() + timedelta(seconds=1)
        [order_id] = await give_up_interrupted_submissions(services.sessions, notifier, later)
        await services.reconciliation.mark_failed(order_id, admin_id=ADMIN)
        assert await balance(bot) == Decimal("2.50")
        # Spend it elsewhere meanwhile: the late charge may take the wallet below zero.
        await services.billing.debit(ALICE, Decimal("2.00"), admin_id=ADMIN, reference="a:1")
        await alice.wait_for(lambda m: "charged again" in m.text, timeout=10)
        await admin.wait_for(lambda m: "placed on the panel after all" in m.text)
        await alice.wait_for(lambda m: "is confirmed" in m.text)
        assert await balance(bot) == Decimal("-1.60")
        assert (await kinds(bot))[-1] == "late_charge -2.10"
        blocked = await summary_of(alice, "100")
        reply = await alice.press("Confirm", message=blocked)
        assert "balance" in reply.text and add_calls(bot) == 1  # negative: no new orders
    finally:
        await stop_bot(bot)


async def test_a_partial_order_refunds_its_remains(shop: BotUnderTest) -> None:
    await fund(shop, ALICE, "10.00")
    alice = shop.user(ALICE, "Alice")
    await summary_of(alice)
    await confirm_placed(alice)
    end_on_panel(shop.sandbox.orders[23501], remains=333)
    push = await alice.wait_for(lambda m: "Partial" in m.text, timeout=10)
    # 2.10 × 333 / 1000 = 0.6993 → 0.70
    assert "0.70 USD is back in your wallet" in push.text and "8.60 USD" in push.text
    assert "Charged by the panel" not in push.text
    assert await balance(shop) == Decimal("8.60")


async def test_a_partial_dripfeed_refunds_of_the_whole_quantity(tmp_path: Path) -> None:
    bot = await wallet_bot(tmp_path, exchange_rate=Decimal(50))
    try:
        await fund(bot, ALICE, "10.00")
        alice = bot.user(ALICE, "Alice")
        await alice.send("/order")
        await alice.press("Instagram Auto")
        await alice.press("Instagram Reel Views")
        await alice.send("https://instagram.com/reel/abc")
        await alice.send("1000")
        await alice.press("Yes")
        await alice.send("3")
        summary = await alice.send("10")
        assert "2.25 USD" in summary.text  # 0.015 × 3000 / 1000 × 50
        await confirm_placed(alice)
        end_on_panel(bot.sandbox.orders[23501], remains=1000)  # a third of 3 × 1000
        push = await alice.wait_for(lambda m: "Partial" in m.text, timeout=10)
        assert "0.75 USD is back in your wallet" in push.text
        assert await balance(bot) == Decimal("8.50")
    finally:
        await stop_bot(bot)


async def test_a_canceled_order_refunds_the_rest(shop: BotUnderTest) -> None:
    await fund(shop, ALICE, "10.00")
    alice = shop.user(ALICE, "Alice")
    await summary_of(alice)
    await confirm_placed(alice)
    card = await alice.send("/status 23501")
    assert "Charged by the panel" not in card.text
    await alice.press("Cancel order")
    await alice.press("Yes")
    push = await alice.wait_for(lambda m: "back in your wallet" in m.text, timeout=10)
    assert "2.10 USD is back" in push.text and "10.00 USD" in push.text
    assert await balance(shop) == Decimal("10.00")


async def test_hostile_remains_book_nothing_and_tell_the_admins(shop: BotUnderTest) -> None:
    await fund(shop, ALICE, "10.00")
    alice = shop.user(ALICE, "Alice")
    admin = shop.user(ADMIN, "Admin")
    await summary_of(alice)
    await confirm_placed(alice)
    end_on_panel(shop.sandbox.orders[23501], remains=5000)  # more than the 1000 ordered
    await admin.wait_for(lambda m: "no refund was booked" in m.text, timeout=10)
    assert await balance(shop) == Decimal("7.90")


async def test_markups_at_every_level_and_an_exchange_rate(tmp_path: Path) -> None:
    bot = await wallet_bot(tmp_path, exchange_rate=Decimal("56.5"), markup_percent=Decimal(10))
    try:
        billing = services_of(bot).billing
        alice = bot.user(ALICE, "Alice")
        # 2.10 × 56.5 = 118.65; × 1.10 = 130.515 → 130.52 (MARKUP_PERCENT)
        assert "130.52 USD" in (await summary_of(alice)).text
        await billing.set_markup(MarkupScope.GLOBAL, "", Decimal(20))  # 142.38
        assert "142.38 USD" in (await summary_of(alice)).text
        await billing.set_markup(MarkupScope.CATEGORY, "TikTok", Decimal(0))  # 118.65
        assert "118.65 USD" in (await summary_of(alice)).text
        await billing.set_markup(MarkupScope.SERVICE, "2100", Decimal("33.3"))
        # 118.65 × 1.333 = 158.16045 → 158.17
        summary = await summary_of(alice)
        assert "158.17 USD" in summary.text
        await fund(bot, ALICE, "200.00")
        await alice.press("Confirm", message=summary)
        assert await balance(bot) == Decimal("41.83")  # exactly the summary's price
    finally:
        await stop_bot(bot)


async def test_service_buttons_and_cards_show_the_customers_rate(tmp_path: Path) -> None:
    bot = await wallet_bot(
        tmp_path, shop_currency="PHP", exchange_rate=Decimal("56.5"), markup_percent=Decimal(10)
    )
    try:
        alice = bot.user(ALICE, "Alice")
        await alice.send("/order")
        services = await alice.press("TikTok")
        # 2.10 USD per 1000 on the panel: 2.10 × 56.5 × 1.10 = 130.515 → 130.52 PHP
        labels = [button.text for row in services.buttons for button in row]
        [followers] = [label for label in labels if label.startswith("TikTok Followers")]
        assert "130.52 PHP/1000" in followers and "USD" not in followers
        card = await alice.press("TikTok Followers")
        assert "Price: 130.52 PHP per 1000" in card.text and "2.10" not in card.text
    finally:
        await stop_bot(bot)


async def test_a_negative_rate_is_not_offered(tmp_path: Path) -> None:
    bot = await wallet_bot(tmp_path)
    try:
        await services_of(bot).catalog.get()  # the load start-up began, before the change
        bot.sandbox.set_rate(2101, "-1")
        await services_of(bot).catalog.refresh()
        alice = bot.user(ALICE, "Alice")
        await alice.send("/order")
        services = await alice.press("TikTok")
        names = " ".join(button.text for row in services.buttons for button in row)
        assert "TikTok Followers" in names and "TikTok Views" not in names
    finally:
        await stop_bot(bot)


async def test_approvals_hold_the_money_and_a_rejection_refunds(tmp_path: Path) -> None:
    bot = await wallet_bot(tmp_path, max_order_price=Decimal("5"))
    try:
        await fund(bot, STRANGER, "20.00")  # anyone may order in reseller mode
        stranger = bot.user(STRANGER, "Sam")
        admin = bot.user(ADMIN, "Admin")
        summary = await summary_of(stranger, "3000")  # 6.30 USD: over the limit
        reply = await stranger.press("Confirm", message=summary)
        assert "approval" in reply.text
        assert await balance(bot, STRANGER) == Decimal("13.70")  # held while it waits
        request = await admin.wait_for(lambda m: "waits for your approval" in m.text)
        await admin.press("Reject", message=request)
        told = await stranger.wait_for(lambda m: "did not approve" in m.text)
        assert "6.30 USD is back in your wallet" in told.text
        assert await balance(bot, STRANGER) == Decimal("20.00")
        assert add_calls(bot) == 0

        summary = await summary_of(stranger, "3000")
        await stranger.press("Confirm", message=summary)
        request = await admin.wait_for(lambda m: "waits for your approval" in m.text)
        await admin.press("Approve", message=request)
        await stranger.wait_for(lambda m: "Order placed" in m.text)
        assert await balance(bot, STRANGER) == Decimal("13.70")
        assert add_calls(bot) == 1
    finally:
        await stop_bot(bot)


async def test_a_denied_user_may_not_order(shop: BotUnderTest) -> None:
    await fund(shop, STRANGER, "20.00")
    await services_of(shop).people.set_access(STRANGER, False)
    stranger = shop.user(STRANGER, "Sam")
    reply = await stranger.send("/order")
    assert "TikTok" not in " ".join(b.text for row in reply.buttons for b in row)


async def test_two_instances_book_one_partial_refund(tmp_path: Path, database_url: str) -> None:
    """Two instances on one PostgreSQL see the same final status at once: one refund."""
    if not database_url.startswith("postgresql"):
        pytest.skip("two instances share a PostgreSQL database (TEST_DATABASE_URL)")
    first = await wallet_bot(tmp_path, database_url=database_url, poll_interval=60.0)
    try:
        await fund(first, ALICE, "10.00")
        alice = first.user(ALICE, "Alice")
        await summary_of(alice)
        await confirm_placed(alice)
        end_on_panel(first.sandbox.orders[23501], remains=500)
        one = services_of(first)
        two = await create_services(one.settings)  # a second instance: its own pools
        order = await one.ordering.find(ALICE, 1)
        assert order is not None
        results = await asyncio.gather(
            one.ordering.refresh(ALICE, order.id), two.ordering.refresh(ALICE, order.id)
        )
        assert all(result is not None and result.status == "Partial" for result in results)
        async with one.sessions() as session:
            refunds = [
                e
                for e in await ledger.entries_for_order(session, order.id)
                if e.kind == LedgerKind.REFUND
            ]
        assert [str(e.amount) for e in refunds] == ["1.05"]
        assert await balance(first) == Decimal("8.95")
        await two.close()
    finally:
        await stop_bot(first)
