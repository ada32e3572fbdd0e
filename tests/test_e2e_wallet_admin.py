"""End-to-end over HTTP: an admin credits and debits a customer's wallet in reseller mode, the
customer is told in their language, a redelivered command books once, and /wallet, /markup
and /stats show it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram.types import Update

from storage import ledger
from tests.harness import ADMIN, ALICE, BotUnderTest, start_bot, stop_bot


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[BotUnderTest]:
    harness = await start_bot(tmp_path, billing="wallet", shop_currency="USD")
    yield harness
    await stop_bot(harness)


async def test_an_admin_credits_and_debits_a_wallet_and_the_customer_is_told(
    shop: BotUnderTest,
) -> None:
    alice = shop.emulator.user(ALICE, "Juan", username="juan_ph", language_code="fil")
    admin = shop.user(ADMIN, "Ada")
    await alice.send("/start")  # the bot now knows @juan_ph

    reply = await admin.send("/credit @juan_ph 25 GCash ref 7781")
    assert "Added 25.00 USD to the wallet of Juan (@juan_ph, id" in reply.text
    assert "New balance: 25.00 USD." in reply.text
    told = await alice.wait_for(lambda message: "wallet" in message.text)
    assert "Nagdagdag ang isang admin ng 25.00 USD sa iyong wallet." in told.text
    assert "GCash ref 7781" in told.text and "Balanse mo: 25.00 USD" in told.text

    # Telegram delivers the admin's command a second time: nothing more is booked.
    command = admin.send_nowait("/debit @juan_ph 10")
    taken = await admin.wait_for(lambda message: "Took" in message.text)
    assert "New balance: 15.00 USD." in taken.text
    assert shop.dispatcher is not None and shop.bot is not None and shop.services is not None
    again = Update.model_validate(
        {"update_id": 999_999, "message": command.to_telegram()}, context={"bot": shop.bot}
    )
    await shop.dispatcher.feed_update(shop.bot, again)
    repeated = await admin.wait_for(lambda message: message.message_id > taken.message_id)
    assert repeated.text == taken.text
    async with shop.services.sessions() as session:
        assert await ledger.balance(session, ALICE) == 15
        assert len(await ledger.last_entries(session, ALICE)) == 2

    refused = await admin.send("/debit @juan_ph 15.01")
    assert "has 15.00 USD in their wallet" in refused.text and "Nothing was taken" in refused.text
    assert "That is not an amount" in (await admin.send("/credit @juan_ph 1.2.3")).text

    wallet = await admin.send(f"/wallet {ALICE}")
    assert "Balance: 15.00 USD" in wallet.text
    assert "Taken by an admin · -10.00 USD" in wallet.text
    assert "Added by an admin · +25.00 USD · “GCash ref 7781”" in wallet.text

    assert "now 20%" in (await admin.send("/markup service 2001 20")).text
    assert "• 2001: 20%" in (await admin.send("/markup")).text

    stats = await admin.send("/stats")
    assert "Added by admins (less taken): 15.00 USD" in stats.text
    assert "All wallets together (owed to customers): 15.00 USD" in stats.text


async def test_team_mode_answers_in_one_line(running_bot: BotUnderTest) -> None:
    admin = running_bot.user(ADMIN, "Ada")
    reply = await admin.send(f"/credit {ALICE} 5")
    assert reply.text == "This command works in reseller mode only (BILLING=wallet)."
