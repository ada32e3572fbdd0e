"""Reseller mode's rules: customer prices rounded once up to the cent, the most specific markup,
exact refunds (Partial plain and drip-feed, Canceled, hostile remains), Stars counts, the
settings, and the wallet units of work of `Billing`."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.billing import (
    MAX_STARS_PER_INVOICE,
    Billing,
    InvalidAmount,
    InvalidRemains,
    Markups,
    NotOffered,
    ShopCurrencyMismatch,
    admin_reference,
    charge_reference,
    check_shop_currency,
    customer_price,
    invoice_accepts,
    is_offered,
    late_charge_reference,
    ordered_quantity,
    partial_refund,
    refund_reference,
    rest_of_price,
    stars_for,
    stars_reference,
    stars_refund_reference,
)
from bot.config import ConfigError, Settings, load_settings
from bot.money import price_of
from migrations import upgrade_database
from playground.telegram import TelegramEmulator
from storage import ledger
from storage.db import create_engine, create_session_factory
from storage.models import LedgerKind, MarkupScope
from tests.factories import make_settings
from tests.test_cli import TOKEN, _assert_one_clear_line, _finish, _run

D = Decimal
Sessions = async_sessionmaker[AsyncSession]

# --- customer prices ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("panel", "rate", "markup", "expected"),
    [
        ("0.90", "1", "0", "0.90"),  # a whole cent stays as it is
        ("2.5", "1", "0", "2.50"),
        ("0.333", "1", "0", "0.34"),  # up, never down
        ("0.0001", "1", "0", "0.01"),  # the smallest order still costs a cent
        ("0", "1", "0", "0.00"),
        ("1.00", "56.5", "10", "62.15"),  # USD panel, PHP shop, 10 % on top
        ("0.123", "56.5", "15", "8.00"),  # 7.991925: half-up would say 7.99
    ],
)
def test_customer_price_is_rounded_up_to_the_cent(
    panel: str, rate: str, markup: str, expected: str
) -> None:
    price = customer_price(D(panel), D(rate), D(markup))
    assert price == D(expected)
    assert price.as_tuple().exponent == -2


def test_customer_price_is_rounded_once_on_the_total() -> None:
    # 0.001 × 1.004 = 0.001004 → 0.01; rounding the converted price first (0.01) and then the
    # markup (0.01004 → 0.02) would charge a cent more.
    assert customer_price(D("0.001"), D(1), D("0.4")) == D("0.01")
    # Priced per unit and rounded, 3000 units at 0.0011 per 1000 would be 3 × 0.01 = 0.03;
    # on the order's total (0.0033) it is 0.01.
    assert customer_price(price_of(D("0.0011"), 3000), D(1), D(0)) == D("0.01")


def test_customer_price_keeps_every_digit() -> None:
    # 10000000.00000000000000000001 exactly: Decimal's 28 digits would round it to a whole
    # 10000000.00 before the ceiling and lose the cent.
    panel = price_of(D(10), 1_000_000_000)
    assert customer_price(panel, D("1.000000000000000000000000001"), D(0)) == D("10000000.01")
    assert customer_price(panel, D(1), D(0)) == D("10000000.00")


def test_a_negative_panel_price_is_not_offered() -> None:
    with pytest.raises(NotOffered):
        customer_price(D("-0.01"), D(1), D(0))
    assert is_offered(D("0.90")) and is_offered(D(0))
    assert not is_offered(D("-0.01")) and not is_offered(D("NaN"))
    with pytest.raises(ValueError, match="exchange rate"):
        customer_price(D(1), D(0), D(0))


def test_the_most_specific_markup_wins() -> None:
    markups = Markups(services={7: D(30)}, categories={"Instagram": D(20)}, overall=D(10))
    assert markups.percent_for(7, "Instagram", default=D(5)) == 30
    assert markups.percent_for(8, "Instagram", default=D(5)) == 20
    assert markups.percent_for(8, "TikTok", default=D(5)) == 10
    assert Markups().percent_for(8, "TikTok", default=D(5)) == 5
    zero = Markups(services={7: D(0)}, overall=D(10))  # a markup of 0 is a markup, not unset
    assert zero.percent_for(7, "x", default=D(5)) == 0


async def test_markups_set_with_the_command_are_resolved_from_the_database(
    sessions: Sessions,
) -> None:
    billing = Billing(
        sessions,
        make_settings(billing="wallet", shop_currency="PHP", exchange_rate="50", markup_percent=5),
    )
    assert billing.price(D(1), 7, "Instagram", await billing.markups()) == D("52.50")
    await billing.set_markup(MarkupScope.GLOBAL, "ignored", D(10))
    await billing.set_markup(MarkupScope.CATEGORY, "Instagram", D(20))
    await billing.set_markup(MarkupScope.SERVICE, "7", D("12.5"))
    markups = await billing.markups()
    assert billing.price(D(1), 7, "Instagram", markups) == D("56.25")
    assert billing.price(D(1), 8, "Instagram", markups) == D("60.00")
    assert billing.price(D(1), 8, "TikTok", markups) == D("55.00")
    await billing.set_markup(MarkupScope.SERVICE, "7", D(0))  # replaced, not added
    assert await billing.clear_markup(MarkupScope.CATEGORY, "Instagram")
    assert not await billing.clear_markup(MarkupScope.CATEGORY, "Instagram")
    markups = await billing.markups()
    assert billing.price(D(1), 7, "Instagram", markups) == D("50.00")
    assert billing.price(D(1), 8, "Instagram", markups) == D("55.00")
    with pytest.raises(InvalidAmount):
        await billing.set_markup(MarkupScope.GLOBAL, "", D(-1))


# --- refunds -----------------------------------------------------------------------------------


def test_partial_refunds_the_share_not_delivered() -> None:
    assert partial_refund(D("9.00"), remains=250, ordered=1000, refunded=D(0)) == D("2.25")
    assert partial_refund(D("9.00"), remains=0, ordered=1000, refunded=D(0)) == D("0.00")
    assert partial_refund(D("9.00"), remains=1000, ordered=1000, refunded=D(0)) == D("9.00")


def test_partial_rounds_half_up_to_the_cent() -> None:
    assert partial_refund(D("1.00"), remains=1, ordered=8, refunded=D(0)) == D("0.13")  # 0.125
    assert partial_refund(D("1.00"), remains=1, ordered=3, refunded=D(0)) == D("0.33")
    assert partial_refund(D("1.00"), remains=2, ordered=3, refunded=D(0)) == D("0.67")


def test_partial_never_refunds_more_than_is_left() -> None:
    assert partial_refund(D("1.00"), remains=500, ordered=1000, refunded=D("0.95")) == D("0.05")
    assert partial_refund(D("1.00"), remains=500, ordered=1000, refunded=D("1.00")) == 0


def test_drip_feed_refunds_against_quantity_times_runs() -> None:
    ordered = ordered_quantity(quantity=100, runs=5)
    assert ordered == 500
    assert partial_refund(D("5.00"), remains=100, ordered=ordered, refunded=D(0)) == D("1.00")
    assert ordered_quantity(quantity=100, runs=None) == 100
    assert ordered_quantity(quantity=None, runs=None) is None  # a package: only Canceled


@pytest.mark.parametrize(
    ("remains", "ordered"),
    [(-1, 1000), (1001, 1000), (10**30, 1000), (0, 0), (5, -5)],
)
def test_hostile_remains_are_invalid(remains: int, ordered: int) -> None:
    with pytest.raises(InvalidRemains):
        partial_refund(D("9.00"), remains=remains, ordered=ordered, refunded=D(0))


def test_canceled_refunds_the_rest() -> None:
    assert rest_of_price(D("5.00"), refunded=D(0)) == D("5.00")
    assert rest_of_price(D("5.00"), refunded=D("1.25")) == D("3.75")
    assert rest_of_price(D("5.00"), refunded=D("6.00")) == 0


# --- Stars and references ----------------------------------------------------------------------


def test_stars_are_rounded_up_to_a_whole_star() -> None:
    assert stars_for(D(1), D("0.013")) == 77  # 76.92…
    assert stars_for(D(1), D("0.5")) == 2
    assert stars_for(D("0.01"), D(100)) == 1
    assert invoice_accepts(1) and invoice_accepts(MAX_STARS_PER_INVOICE)
    assert not invoice_accepts(0) and not invoice_accepts(MAX_STARS_PER_INVOICE + 1)


def test_references_name_their_event() -> None:
    assert charge_reference(7, 2) == "order:7:charge:2"
    assert refund_reference(7, 2) == "order:7:refund:2"
    assert late_charge_reference(7) == "order:7:late-charge"
    assert stars_reference("tg_1") == "stars:tg_1"
    assert stars_refund_reference("tg_1") == "stars:tg_1:refund"
    assert admin_reference(-100, 55) == "admin:-100:55"


# --- settings ----------------------------------------------------------------------------------


def wallet_settings(**values: str) -> Settings:
    return load_settings(
        _env_file=None, bot_token="1:x", panel_api_url="sandbox", billing="wallet", **values
    )


def test_team_mode_is_the_default() -> None:
    settings = load_settings(_env_file=None, bot_token="1:x", panel_api_url="sandbox")
    assert settings.billing == "off" and not settings.wallet_mode
    assert settings.shop_currency is None


def test_wallet_defaults() -> None:
    settings = load_settings(
        _env_file=None, bot_token="1:x", panel_api_url="sandbox", billing="wallet",
        shop_currency="php",
    )  # fmt: skip
    assert settings.wallet_mode and settings.shop_currency == "PHP"
    assert (settings.exchange_rate, settings.markup_percent) == (1, 0)
    assert settings.topup_amounts == [1, 5, 10, 25]
    assert settings.star_price is None and settings.min_topup is None


def test_wallet_mode_needs_a_shop_currency() -> None:
    with pytest.raises(ConfigError, match="SHOP_CURRENCY is missing") as error:
        wallet_settings()
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"exchange_rate": "0"}, "EXCHANGE_RATE"),
        ({"exchange_rate": "NaN"}, "EXCHANGE_RATE"),
        ({"markup_percent": "-1"}, "MARKUP_PERCENT"),
        ({"star_price": "0"}, "STAR_PRICE"),
        ({"topup_amounts": "1,0"}, "TOPUP_AMOUNTS"),
        ({"topup_amounts": "1,2.505"}, "TOPUP_AMOUNTS"),
        ({"topup_amounts": "1,five"}, "TOPUP_AMOUNTS"),
        ({"min_topup": "-2"}, "MIN_TOPUP"),
        ({"shop_currency": "<b>"}, "SHOP_CURRENCY"),
    ],
)
def test_a_bad_billing_setting_is_named(values: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named) as error:
        wallet_settings(**({"shop_currency": "USD"} | values))
    assert "\n" not in str(error.value)


def test_top_ups_must_fit_one_invoice() -> None:
    ok = wallet_settings(shop_currency="USD", star_price="0.013", topup_amounts="1,130")
    assert ok.topup_amounts == [1, 130]
    with pytest.raises(ConfigError, match="TOPUP_AMOUNTS has 500, which is 38462 Stars"):
        wallet_settings(shop_currency="USD", star_price="0.013", topup_amounts="1,500")
    with pytest.raises(ConfigError, match="MIN_TOPUP"):
        wallet_settings(shop_currency="USD", star_price="0.013", min_topup="131")
    # Without STAR_PRICE there is no invoice to check; in team mode nothing is checked.
    wallet_settings(shop_currency="USD", topup_amounts="500")
    load_settings(
        _env_file=None, bot_token="1:x", panel_api_url="sandbox", star_price="0.013",
        topup_amounts="500",
    )  # fmt: skip


# --- wallet units of work ----------------------------------------------------------------------


def billing_for(sessions: Sessions) -> Billing:
    return Billing(sessions, make_settings(billing="wallet", shop_currency="USD"))


async def test_a_top_up_is_credited_once(sessions: Sessions) -> None:
    billing = billing_for(sessions)
    first = await billing.topup(1, D("5.00"), stars_reference("tg-1"))
    again = await billing.topup(1, D("5.00"), stars_reference("tg-1"))
    assert (first.booked, first.balance, first.currency) == (True, D(5), "USD")
    assert (again.booked, again.balance) == (False, D(5))


async def test_admin_credit_and_debit(sessions: Sessions) -> None:
    billing = billing_for(sessions)
    await billing.credit(1, D("10"), admin_id=9, reference=admin_reference(9, 1), note="GCash")
    done = await billing.debit(1, D("2.50"), admin_id=9, reference=admin_reference(9, 2))
    assert done.balance == D("7.50")
    with pytest.raises(ledger.InsufficientFunds):
        await billing.debit(1, D("7.51"), admin_id=9, reference=admin_reference(9, 3))
    redelivered = await billing.credit(1, D("10"), admin_id=9, reference=admin_reference(9, 1))
    assert not redelivered.booked and redelivered.balance == D("7.50")
    view = await billing.wallet(1)
    assert view.balance == D("7.50") and view.currency == "USD"
    assert [(e.kind, e.amount, e.admin_id) for e in view.entries] == [
        (LedgerKind.DEBIT, D("-2.50"), 9),
        (LedgerKind.CREDIT, D(10), 9),
    ]
    assert view.entries[1].note == "GCash"


async def test_wallet_amounts_are_whole_cents_above_zero(sessions: Sessions) -> None:
    billing = billing_for(sessions)
    for bad in (D(0), D("-1"), D("0.001"), D("NaN"), D("1e20")):
        with pytest.raises(InvalidAmount):
            await billing.credit(1, bad, admin_id=9, reference=f"admin:9:{bad}")
    empty = await billing.wallet(1)
    assert (empty.balance, empty.entries) == (0, [])


async def test_the_shop_currency_must_be_the_wallets_one(sessions: Sessions) -> None:
    await check_shop_currency(sessions, "USD")  # no wallets yet: any currency will do
    await billing_for(sessions).topup(1, D(1), "stars:1")
    await check_shop_currency(sessions, "USD")
    with pytest.raises(
        ShopCurrencyMismatch, match="SHOP_CURRENCY is PHP but the wallets hold USD"
    ):
        await check_shop_currency(sessions, "PHP")


# --- start-up ----------------------------------------------------------------------------------


async def test_python_m_bot_without_shop_currency_exits_2(tmp_path: Path) -> None:
    process = await _run(tmp_path, BOT_TOKEN=TOKEN, PANEL_API_URL="sandbox", BILLING="wallet")
    stdout, stderr = await _finish(process)
    assert process.returncode == 2
    _assert_one_clear_line(stdout, stderr, "SHOP_CURRENCY")


async def test_python_m_bot_refuses_another_currency_than_the_wallets(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/b.db"  # the database test_cli's processes use
    await upgrade_database(url)
    engine = create_engine(url)
    await billing_for(create_session_factory(engine)).topup(1, D(1), "stars:1")
    await engine.dispose()
    emulator = TelegramEmulator(token=TOKEN)
    api = await emulator.start()
    try:
        process = await _run(
            tmp_path, BOT_TOKEN=TOKEN, TELEGRAM_API_URL=api, PANEL_API_URL="sandbox",
            BILLING="wallet", SHOP_CURRENCY="PHP", LOG_LEVEL="WARNING",  # no "Signed in" line
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(_finish(process), 90)
    finally:
        await emulator.stop()
    assert process.returncode == 2
    _assert_one_clear_line(stdout, stderr, "SHOP_CURRENCY is PHP but the wallets hold USD")


def test_the_reseller_settings_are_documented() -> None:
    root = Path(__file__).resolve().parent.parent
    example = (root / ".env.example").read_text(encoding="utf-8")
    readme = (root / "README.md").read_text(encoding="utf-8")
    names = ["BILLING", "SHOP_CURRENCY", "EXCHANGE_RATE", "MARKUP_PERCENT", "STAR_PRICE"]
    names += ["TOPUP_AMOUNTS", "MIN_TOPUP", "SUPPORT_CONTACT", "TERMS_TEXT"]
    for name in names:
        assert name.lower() in Settings.model_fields, name
        assert f"\n{name}=" in example, name
        assert f"`{name}`" in readme, name
