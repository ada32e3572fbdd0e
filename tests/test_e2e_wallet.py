"""Stars top-ups of the customer wallet end to end (BILLING=wallet): the real bot, the Telegram
emulator's invoices and payments, and the ledger, over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from playground.telegram import ChatUser, Message, PaymentFailed
from tests.harness import ADMIN, ALICE, GROUP, BotUnderTest, start_bot, stop_bot


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[BotUnderTest]:
    bot = await start_bot(
        tmp_path,
        billing="wallet",
        shop_currency="USD",
        star_price=Decimal("0.1"),
        min_topup=Decimal(2),
        support_contact="@shop_support",
        terms_text="Top-ups are final unless the order fails.",
    )
    yield bot
    await stop_bot(bot)


async def balance(bot: BotUnderTest, user_id: int) -> Decimal:
    assert bot.services is not None
    return (await bot.services.billing.wallet(user_id)).balance


def charge_of(user: ChatUser) -> str:
    assert user.last_payment is not None and user.last_payment.attachment is not None
    return str(user.last_payment.attachment["successful_payment"]["telegram_payment_charge_id"])


async def top_up(bot: BotUnderTest, user: ChatUser, button: str) -> Message:
    await user.send("/wallet")
    invoice = await user.press(button)
    assert invoice.invoice is not None, user.transcript()
    return invoice


async def test_a_stars_top_up_credits_the_amount_pressed_once(shop: BotUnderTest) -> None:
    alice = shop.user(ALICE, "Alice")

    wallet = await alice.send("/wallet")
    assert "Balance: 0.00 USD" in wallet.text
    labels = [b.text for row in wallet.buttons for b in row]
    for amount in ("1.00 USD", "5.00 USD", "10.00 USD", "25.00 USD"):
        assert any(amount in label and label.startswith("⭐ ") for label in labels), labels

    invoice = await alice.press("⭐ 5.00 USD")
    sent = shop.emulator.calls("sendInvoice")[-1]
    assert sent["chat_id"] == ALICE and sent["currency"] == "XTR"
    assert [p["amount"] for p in sent["prices"]] == [50]
    assert not sent.get("provider_token") and sent["start_parameter"]
    assert len(sent["payload"].encode()) <= 128

    reply = await alice.pay(invoice)
    answer = shop.emulator.calls("answerPreCheckoutQuery")[-1]
    assert answer["ok"] is True
    assert "5.00 USD" in reply.text and "Balance: 5.00 USD" in reply.text
    assert await balance(shop, ALICE) == Decimal(5)

    # The same payment update once more (a redelivery): nothing more is credited.
    assert alice.last_payment is not None
    alice.repeat(alice.last_payment)
    await alice.wait_for(lambda m: "Balance" in m.text)
    await shop.emulator.settle()
    assert await balance(shop, ALICE) == Decimal(5)

    # A second payment of the same invoice is a payment of its own: credited too.
    again = await alice.pay(invoice)
    assert "Balance: 10.00 USD" in again.text
    assert await balance(shop, ALICE) == Decimal(10)
    wallet = await alice.send("/wallet")
    assert "10.00 USD" in wallet.text and "Top-up (Stars)" in wallet.text


async def test_a_denied_user_cannot_pay(shop: BotUnderTest) -> None:
    alice = shop.user(ALICE, "Alice")
    admin = shop.user(ADMIN, "Admin")
    invoice = await top_up(shop, alice, "⭐ 1.00 USD")
    await admin.send(f"/deny {ALICE}")

    with pytest.raises(PaymentFailed, match="may not top up"):
        await alice.pay(invoice)
    assert await balance(shop, ALICE) == 0


async def test_other_amount_is_checked_and_stays_on_the_step(shop: BotUnderTest) -> None:
    alice = shop.user(ALICE, "Alice")
    await alice.send("/wallet")
    prompt = await alice.press("Other amount")
    assert "at least 2.00 USD" in prompt.text

    assert "not an amount" in (await alice.send("lots")).text
    assert "least top-up is 2.00 USD" in (await alice.send("1.5")).text
    assert "not an amount" in (await alice.send("2.555")).text
    invoice = await alice.send("7,50")

    assert invoice.invoice is not None and invoice.invoice["total_amount"] == 75
    reply = await alice.pay(invoice)
    assert "Balance: 7.50 USD" in reply.text
    # The step is over: a number typed now is no top-up.
    await alice.send("9")
    assert len(shop.emulator.calls("sendInvoice")) == 1


async def test_top_ups_happen_in_private_chats_only(shop: BotUnderTest) -> None:
    alice = shop.user(ALICE, "Alice")
    in_group = alice.in_group(GROUP, "Team")

    wallet = await in_group.send("/wallet")

    assert "Balance: 0.00 USD" in wallet.text and "private chat" in wallet.text
    assert wallet.buttons == []
    assert shop.emulator.calls("sendInvoice") == []


async def test_paysupport_and_terms(shop: BotUnderTest) -> None:
    alice = shop.user(ALICE, "Alice")
    assert "@shop_support" in (await alice.send("/paysupport")).text
    assert "Top-ups are final" in (await alice.send("/terms")).text


async def test_an_admin_refunds_stars_once(shop: BotUnderTest) -> None:
    alice = shop.user(ALICE, "Alice")
    admin = shop.user(ADMIN, "Admin")
    await alice.pay(await top_up(shop, alice, "⭐ 5.00 USD"))
    charge = charge_of(alice)
    shop.emulator.fail_next("refundStarPayment", error_code=502)  # no answer: retried

    reply = await admin.send(f"/refund_stars {charge}")

    assert "Refunded" in reply.text and "0.00 USD" in reply.text
    assert await balance(shop, ALICE) == 0
    assert shop.emulator.payments.charges()[0].refunded
    again = await admin.send(f"/refund_stars {charge}")  # Telegram: already refunded
    assert "Refunded" in again.text
    assert await balance(shop, ALICE) == 0


async def test_a_refused_stars_refund_puts_the_money_back(shop: BotUnderTest) -> None:
    alice = shop.user(ALICE, "Alice")
    admin = shop.user(ADMIN, "Admin")
    await alice.pay(await top_up(shop, alice, "⭐ 5.00 USD"))
    shop.emulator.fail_next(
        "refundStarPayment", error_code=400, description="Bad Request: REFUND_NOT_ALLOWED"
    )

    reply = await admin.send(f"/refund_stars {charge_of(alice)}")

    assert "refused" in reply.text and "5.00 USD" in reply.text
    assert await balance(shop, ALICE) == Decimal(5)
    assert not shop.emulator.payments.charges()[0].refunded


async def test_a_refund_of_spent_money_is_not_made(shop: BotUnderTest) -> None:
    alice = shop.user(ALICE, "Alice")
    admin = shop.user(ADMIN, "Admin")
    await alice.pay(await top_up(shop, alice, "⭐ 5.00 USD"))
    assert shop.services is not None
    await shop.services.billing.debit(ALICE, Decimal(3), admin_id=ADMIN, reference="test:spend")

    reply = await admin.send(f"/refund_stars {charge_of(alice)}")

    assert "nothing was refunded" in reply.text
    assert await balance(shop, ALICE) == Decimal(2)
    assert shop.emulator.calls("refundStarPayment") == []


async def test_a_refund_made_elsewhere_is_booked_once(shop: BotUnderTest) -> None:
    alice = shop.user(ALICE, "Alice")
    admin = shop.user(ADMIN, "Admin")
    await alice.pay(await top_up(shop, alice, "⭐ 5.00 USD"))
    charge = charge_of(alice)

    refunded = shop.emulator.payments.refund_elsewhere(charge)
    await shop.emulator.settle()
    assert await balance(shop, ALICE) == 0
    alice.repeat(refunded)
    await shop.emulator.settle()
    reply = await admin.send(f"/refund_stars {charge}")

    assert "Refunded" in reply.text
    assert await balance(shop, ALICE) == 0


async def test_the_daily_comparison_finds_an_unbooked_payment(shop: BotUnderTest) -> None:
    alice = shop.user(ALICE, "Alice")
    admin = shop.user(ADMIN, "Admin")
    await admin.send("/start")
    await alice.pay(await top_up(shop, alice, "⭐ 1.00 USD"))  # booked
    invoice = await top_up(shop, alice, "⭐ 5.00 USD")
    lost = await shop.emulator.payments.pay(ALICE, ALICE, invoice.message_id, deliver=False)
    assert lost.attachment is not None
    charge = lost.attachment["successful_payment"]["telegram_payment_charge_id"]
    assert shop.services is not None and shop.bot is not None

    missing = await shop.services.payments.unbooked_payments(shop.bot)

    assert missing == [charge]
    notice = await admin.wait_for(lambda m: charge in m.text)
    assert "50 Stars" in notice.text and str(ALICE) in notice.text
    assert await shop.services.payments.unbooked_payments(shop.bot) == [charge]
    await shop.emulator.settle()
    assert len([m for m in admin.bot_messages if charge in m.text]) == 1  # told once


def test_the_playground_runs_the_shop_with_stars() -> None:
    from playground.run import check_user_settings

    settings = check_user_settings({"billing": "wallet", "shop_currency": "PHP"})
    assert settings.wallet_mode and settings.shop_currency == "PHP"
    assert settings.star_price == Decimal("0.02")
    own_price = check_user_settings(
        {"billing": "wallet", "shop_currency": "USD", "star_price": "0.5"}
    )
    assert own_price.star_price == Decimal("0.5")
    assert check_user_settings({}).star_price is None  # team mode: no Stars


async def test_a_short_balance_tops_up_and_comes_back_to_the_same_summary(
    shop: BotUnderTest,
) -> None:
    alice = shop.user(ALICE, "Alice")
    await alice.send("/order")
    await alice.press("TikTok")
    await alice.press("TikTok Followers")
    await alice.send("https://tiktok.com/@me")
    summary = await alice.send("1000")  # 2.10 USD
    short = await alice.press("Confirm", message=summary)
    assert "balance" in short.text.lower() and "0.00 USD" in short.text
    assert not [r for r in shop.sandbox.request_log if r.action == "add"]

    wallet = await alice.press("Top up")
    assert "Balance: 0.00 USD" in wallet.text
    invoice = await alice.press("⭐ 5.00 USD")
    paid = await alice.pay(invoice)
    assert "Balance: 5.00 USD" in paid.text
    back = await alice.press("Back to your order", message=paid)
    assert "Please check your order" in back.text and "2.10 USD" in back.text
    placed = await alice.press("Confirm", message=back)
    assert "Order placed" in placed.text
    assert "Paid from your wallet. Balance: 2.90 USD" in placed.text
    assert len([r for r in shop.sandbox.request_log if r.action == "add"]) == 1
    assert await balance(shop, ALICE) == Decimal("2.90")


async def test_the_command_menu_and_help_name_the_wallet(shop: BotUnderTest) -> None:
    menus = shop.emulator.calls("setMyCommands")
    english = next(call for call in menus if not call.get("language_code"))
    names = [command["command"] for command in english["commands"]]
    assert {"wallet", "paysupport", "terms"} <= set(names), names
    alice = shop.user(ALICE, "Alice")
    help_text = (await alice.send("/help")).text
    assert "/wallet" in help_text and "/paysupport" in help_text and "/terms" in help_text


async def test_a_stranger_tops_up_and_orders_without_being_allowed(shop: BotUnderTest) -> None:
    """In reseller mode anyone pays first, so no /allow is needed (unless an admin denies)."""
    stranger = shop.user(1999, "Sam")
    welcome = await stranger.send("/start")
    assert any("Wallet" in label for row in welcome.keyboard for label in row), welcome.keyboard
    invoice = await top_up(shop, stranger, "⭐ 5.00 USD")
    await stranger.pay(invoice)
    await stranger.send("/order")
    await stranger.press("TikTok")
    await stranger.press("TikTok Followers")
    await stranger.send("https://tiktok.com/@sam")
    summary = await stranger.send("1000")
    placed = await stranger.press("Confirm", message=summary)
    assert "Order placed" in placed.text
    assert await balance(shop, 1999) == Decimal("2.90")
