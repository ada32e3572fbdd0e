"""Reseller mode in a real browser, as `BILLING=wallet SHOP_CURRENCY=USD make run` shows it: the
Customer tops up with Stars from /wallet (the invoice card's Pay button), orders from the
wallet, and hears of a Partial ending with the refunded amount and the new balance; in English
and in Filipino.

The same rules as tests/test_browser.py: Chromium from the system, skipped without it (failed
when CI=true). `make screenshot` saves docs/wallet.png (the wallet and a paid invoice) and
docs/refund.png (the refund push) from the English run.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from playground.run import Playground
from tests import test_browser as browser
from tests.test_browser import (
    NOTICE_MS,
    STEP_MS,
    answers,
    bot_message,
    inline_button,
    take_screenshot,
    type_message,
)

if TYPE_CHECKING:
    from playwright.async_api import Page

# The browser fixtures of tests/test_browser.py; `page` starts the `playground` below.
chromium = browser.chromium
page = browser.page
screenshots = browser.screenshots

LINK = "https://instagram.com/some.account"
WALLET_SETTINGS = {"billing": "wallet", "shop_currency": "USD"}  # STAR_PRICE: the playground's


@dataclass(frozen=True)
class Texts:
    """What the bot says in one language, as much as the test looks for."""

    language: str
    wallet: str
    balance: str
    added: str
    confirm: str
    skip: str
    partial: str
    back: str


ENGLISH = Texts(
    "en", "Your wallet", "Balance:", "added to your wallet", "Confirm", "Skip", "Partial",
    "is back in your wallet",
)  # fmt: skip
FILIPINO = Texts(
    "fil", "Ang iyong wallet", "Balanse:", "Naidagdag ang", "Kumpirmahin", "Laktawan",
    "Bahagya", "Naibalik sa iyong wallet",
)  # fmt: skip


@pytest.fixture(params=[ENGLISH, FILIPINO], ids=lambda texts: texts.language)
def texts(request: pytest.FixtureRequest) -> Texts:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def playground(tmp_path: Path, texts: Texts) -> AsyncIterator[Playground]:
    """The playground in reseller mode (overrides conftest's), speaking the test's language."""
    user = WALLET_SETTINGS | {"default_language": texts.language}
    world = Playground(database_path=tmp_path / "data" / "playground.db", user=user)
    await world.start(port=0)
    yield world
    await world.stop()


async def test_top_up_with_stars_order_and_hear_of_a_partial_refund(
    page: Page, screenshots: Path, texts: Texts
) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=STEP_MS)
    await expect(page.get_by_test_id("settings-note")).to_contain_text("BILLING=wallet")
    await page.get_by_test_id("start-button").click()
    await expect(page.get_by_test_id("reply-button").filter(has_text="Wallet")).to_be_visible()

    await type_message(page, "/wallet")
    wallet = answers(page).last
    await expect(wallet).to_contain_text(texts.wallet)
    await expect(wallet).to_contain_text(f"{texts.balance} 0.00 USD")
    for amount in ("1.00", "5.00", "10.00", "25.00"):
        await expect(inline_button(page, f"⭐ {amount} USD")).to_be_visible()

    # 5.00 USD at the playground's 0.02 USD a Star: an invoice of 250 Stars.
    await page.get_by_test_id("inline-button").filter(has_text=re.compile(r"^⭐ 5\.00")).click()
    invoice = page.get_by_test_id("invoice").last
    await expect(invoice).to_contain_text("5.00 USD")
    pay = invoice.get_by_test_id("invoice-pay")
    await expect(pay).to_have_text("Pay ⭐ 250")
    await pay.click()
    credited = bot_message(page, texts.added).last
    await expect(credited).to_contain_text("5.00 USD")
    await expect(credited).to_contain_text(f"{texts.balance} 5.00 USD")
    await expect(pay).to_have_text("✓ Paid ⭐ 250")  # paid once: no second Pay button
    await expect(pay).to_be_disabled()
    if texts is ENGLISH:
        await take_screenshot(page, screenshots / "wallet.png")

    # The next order ends Partial: 142 of 1,000 are not delivered, 1.25 × 142 / 1000 ≈ 0.18.
    await page.get_by_test_id("sandbox-partial-next").click()
    await expect(page.get_by_test_id("sandbox-orders")).to_contain_text("the next ends Partial")
    await type_message(page, "/order")
    await inline_button(page, "Instagram Followers (").click()
    await inline_button(page, "Instagram Followers [Real").click()
    await type_message(page, LINK)
    await type_message(page, "1000")
    question = answers(page).last
    await expect(question).to_be_visible()
    skip = question.get_by_test_id("inline-button").filter(has_text=texts.skip)
    if await skip.count():  # services with drip-feed may ask about it first
        await skip.click()
    summary = bot_message(page, "1.25 USD").filter(has=inline_button(page, texts.confirm))
    await expect(summary).to_contain_text(LINK)
    await inline_button(page, texts.confirm).click()
    await expect(bot_message(page, "23501").last).to_be_visible()
    await expect(page.get_by_test_id("sandbox-orders")).to_contain_text("1 order")

    await page.get_by_test_id("sandbox-finish").click()
    push = bot_message(page, texts.back).last
    await expect(push).to_be_visible(timeout=NOTICE_MS)
    await expect(push).to_contain_text(f"Order #23501: {texts.partial}")
    await expect(push).to_contain_text("0.18 USD")
    await expect(push).to_contain_text(f"{texts.balance} 3.93 USD")  # 5.00 − 1.25 + 0.18
    if texts is ENGLISH:
        await take_screenshot(page, screenshots / "refund.png")

    await type_message(page, "/wallet")
    await expect(answers(page).last).to_contain_text(f"{texts.balance} 3.93 USD")
    await expect(answers(page).last).to_contain_text("+0.18 USD")
