"""The admin side of reseller mode: /credit, /debit, /wallet <user>, /markup and the reseller
figures of /stats (in-process, see tests/rig.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from aiogram.methods import SendMessage
from aiogram.types import Update
from sqlalchemy import update

from bot.billing import Markups, parse_amount, parse_percent
from storage import ledger, outbox
from storage import people as people_store
from storage.models import LedgerEntry, LedgerKind, Order, SubmissionState
from tests.rig import ADMIN, ALICE, BOB, GROUP, MakeRig, Rig

USD = "USD"


@pytest.fixture
async def rig(make_rig: MakeRig) -> Rig:
    rig = await make_rig(billing="wallet", shop_currency=USD)
    await rig.send(ALICE, "/start")  # Alice is known, and so is her chat
    async with rig.services.sessions.begin() as session:
        await people_store.remember_user(session, ALICE, "alice_smm", "Alice", "en")
    return rig


def texts(sent: list[Any]) -> list[str]:
    return [str(request.text) for request in sent if isinstance(request, SendMessage)]


async def answer(rig: Rig, user_id: int, text: str, chat: int | None = None) -> str:
    [reply] = texts(await rig.send(user_id, text, chat=chat))
    return reply


async def redeliver(rig: Rig, user_id: int, text: str, message_id: int) -> str:
    """The same command message again, as Telegram redelivers an update it thinks was lost."""
    before = len(rig.session.requests)
    raw = {
        "update_id": 900_000 + message_id,
        "message": {
            "message_id": message_id,
            "date": datetime.now(UTC),
            "chat": {"id": user_id, "type": "private", "first_name": "Ada"},
            "from": {"id": user_id, "is_bot": False, "first_name": "Ada", "language_code": "en"},
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}],
        },
    }
    update_ = Update.model_validate(raw, context={"bot": rig.bot})
    await rig.dispatcher.feed_update(rig.bot, update_)
    [reply] = texts(rig.session.requests[before:])
    return reply


async def balance(rig: Rig, user_id: int) -> Decimal:
    async with rig.services.sessions() as session:
        return await ledger.balance(session, user_id)


async def entries(rig: Rig, user_id: int) -> list[LedgerEntry]:
    async with rig.services.sessions() as session:
        return await ledger.last_entries(session, user_id, 50)


async def told(rig: Rig, chat_id: int) -> list[str]:
    async with rig.services.sessions() as session:
        return [row.text for row in await outbox.pending(session) if row.chat_id == chat_id]


# --- /credit and /debit --------------------------------------------------------------------


async def test_a_credit_by_id_books_once_tells_the_person_and_names_them(rig: Rig) -> None:
    reply = await answer(rig, ADMIN, f"/credit {ALICE} 10.50 bank transfer 42")
    assert "Added 10.50 USD to the wallet of Alice (@alice_smm, id" in reply
    assert "New balance: <b>10.50 USD</b>" in reply
    assert await balance(rig, ALICE) == Decimal("10.50")
    [entry] = await entries(rig, ALICE)
    assert entry.kind == LedgerKind.CREDIT and entry.admin_id == ADMIN
    assert entry.note == "bank transfer 42" and entry.reference.startswith(f"admin:{ADMIN}:")
    [notice] = await told(rig, ALICE)
    assert "An admin added <b>10.50 USD</b> to your wallet." in notice
    assert "bank transfer 42" in notice and "Your balance: <b>10.50 USD</b>" in notice


async def test_a_redelivered_command_books_nothing_and_answers_the_same(rig: Rig) -> None:
    first = await redeliver(rig, ADMIN, "/credit @alice_smm 5", message_id=7001)
    again = await redeliver(rig, ADMIN, "/credit @alice_smm 5", message_id=7001)
    assert first == again and "New balance: <b>5.00 USD</b>" in first
    assert len(await entries(rig, ALICE)) == 1 and await balance(rig, ALICE) == Decimal(5)
    assert len(await told(rig, ALICE)) == 1
    # A debit redelivered after the wallet changed is still the one booking it was.
    taken = await redeliver(rig, ADMIN, "/debit alice_smm 5", message_id=7002)
    assert "Took 5.00 USD from the wallet of Alice" in taken and "<b>0.00 USD</b>" in taken
    assert await redeliver(rig, ADMIN, "/debit alice_smm 5", message_id=7002) == taken
    assert [e.kind for e in await entries(rig, ALICE)] == [LedgerKind.DEBIT, LedgerKind.CREDIT]
    assert await balance(rig, ALICE) == Decimal(0)


async def test_a_debit_never_takes_a_wallet_below_zero(rig: Rig) -> None:
    await answer(rig, ADMIN, f"/credit {ALICE} 3")
    reply = await answer(rig, ADMIN, f"/debit {ALICE} 3.01")
    assert "Alice (@alice_smm, id" in reply and "has 3.00 USD in their wallet" in reply
    assert "below zero. Nothing was taken." in reply
    assert await balance(rig, ALICE) == Decimal(3) and len(await entries(rig, ALICE)) == 1
    # Someone without a wallet: the same refusal, and no wallet appears.
    assert "has 0.00 USD" in await answer(rig, ADMIN, f"/debit {BOB} 1")
    async with rig.services.sessions() as session:
        assert await ledger.get_wallet(session, BOB) is None
    reply = await answer(rig, ADMIN, f"/debit {ALICE} 3")
    assert "New balance: <b>0.00 USD</b>" in reply
    assert "An admin took <b>3.00 USD</b> from your wallet." in (await told(rig, ALICE))[-1]


async def test_a_username_is_found_in_any_case_only_once_its_owner_wrote(rig: Rig) -> None:
    assert "New balance" in await answer(rig, ADMIN, "/credit @Alice_SMM 1")
    reply = await answer(rig, ADMIN, "/credit @nobody_here 1")
    assert reply.startswith("I do not know @nobody_here: a username is known once its owner")
    assert "I do not know" in await answer(rig, ADMIN, "/credit @x! 1")
    assert await balance(rig, ALICE) == Decimal(1)


async def test_the_username_rule_is_the_one_of_allow(rig: Rig) -> None:
    assert "may no longer place orders" in await answer(rig, ADMIN, "/deny @alice_smm")
    assert "I do not know @ghost_user" in await answer(rig, ADMIN, "/allow @ghost_user")


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        ("ten", "That is not an amount. Send a number like 10 or 10.50."),
        ("1,50", "That is not an amount. Send a number like 10 or 10.50."),
        ("1e3", "That is not an amount. Send a number like 10 or 10.50."),
        ("NaN", "That is not an amount. Send a number like 10 or 10.50."),
        ("0", "The amount must be above zero."),
        ("-5", "The amount must be above zero."),
        ("1.005", "The amount can have at most two decimals, like 10.50."),
        ("9" * 25, "That amount is too large."),
    ],
)
async def test_bad_amounts_are_refused_clearly(rig: Rig, typed: str, error: str) -> None:
    assert await answer(rig, ADMIN, f"/credit {ALICE} {typed}") == error
    assert await answer(rig, ADMIN, f"/debit {ALICE} {typed}") == error
    assert await entries(rig, ALICE) == []


async def test_usage_is_explained_and_customers_cannot_credit(rig: Rig) -> None:
    assert (await answer(rig, ADMIN, "/credit")).startswith("Usage: /credit followed by")
    assert (await answer(rig, ADMIN, f"/debit {ALICE}")).startswith("Usage: /debit followed")
    await rig.send(ALICE, f"/credit {ALICE} 100")
    assert await entries(rig, ALICE) == []


async def test_wallet_figures_asked_in_a_group_stay_private(rig: Rig) -> None:
    for command in (f"/credit {ALICE} 5", f"/wallet {ALICE}", "/markup 10"):
        reply = await answer(rig, ADMIN, command, chat=GROUP)
        assert reply == "Figures are shown in a private chat only."
    assert await entries(rig, ALICE) == []


# --- /wallet <user> --------------------------------------------------------------------------


async def test_an_admin_sees_anyones_wallet_with_its_entries_in_words(rig: Rig) -> None:
    await answer(rig, ADMIN, f"/credit {ALICE} 20 cash")
    await answer(rig, ADMIN, f"/debit {ALICE} 2.50")
    async with rig.services.sessions.begin() as session:
        paid = ledger.Entry(ALICE, LedgerKind.CHARGE, Decimal("4"), USD, "order:9:charge:1", 9)
        await ledger.book(session, paid)
    reply = await answer(rig, ADMIN, "/wallet @alice_smm")
    assert "<b>Wallet of Alice (@alice_smm, id" in reply
    assert "Balance: <b>13.50 USD</b>" in reply
    lines = [line for line in reply.splitlines() if line.startswith("• ")]
    assert len(lines) == 3
    assert "Order payment · -4.00 USD · order ref. 9" in lines[0]
    assert "Taken by an admin · -2.50 USD" in lines[1]
    assert "Added by an admin · +20.00 USD · “cash”" in lines[2]
    assert "order:9" not in reply and "admin:" not in reply  # references stay hidden


async def test_wallet_of_someone_without_entries_and_of_nobody(rig: Rig) -> None:
    reply = await answer(rig, ADMIN, f"/wallet {BOB}")
    assert "Balance: <b>0.00 USD</b>" in reply and "No entries yet." in reply
    assert "I do not know @nobody_here" in await answer(rig, ADMIN, "/wallet @nobody_here")
    assert (await answer(rig, ADMIN, "/wallet 1 2")).startswith("Usage: /wallet followed by")


async def test_a_customers_wallet_argument_shows_no_one_elses_wallet(rig: Rig) -> None:
    await answer(rig, ADMIN, f"/credit {ALICE} 20")
    for reply in texts(await rig.send(BOB, f"/wallet {ALICE}")):
        assert "20.00" not in reply and "Alice" not in reply


# --- /markup ---------------------------------------------------------------------------------


async def markups(rig: Rig) -> Markups:
    return await rig.services.billing.markups()


async def test_markups_are_set_shown_and_cleared_at_every_level(rig: Rig) -> None:
    shown = await answer(rig, ADMIN, "/markup")
    assert "Default (MARKUP_PERCENT): 0%" in shown
    assert "Global: not set (the default applies)" in shown

    assert (
        await answer(rig, ADMIN, "/markup 15") == "The markup of all services (global) is now 15%."
    )
    reply = await answer(rig, ADMIN, "/markup category instagram followers 10")
    assert reply == "The markup of category “Instagram Followers” is now 10%."
    reply = await answer(rig, ADMIN, "/markup service 2001 12.5%")
    assert reply == "The markup of service 2001 is now 12.5%."
    assert await markups(rig) == Markups(
        {2001: Decimal("12.5")}, {"Instagram Followers": Decimal(10)}, Decimal(15)
    )
    shown = await answer(rig, ADMIN, "/markup")
    assert "Global: 15%" in shown
    assert "• Instagram Followers: 10%" in shown and "• 2001: 12.5%" in shown

    assert await answer(rig, ADMIN, "/markup service 2001 off") == (
        "The markup of service 2001 is cleared."
    )
    reply = await answer(rig, ADMIN, "/markup category INSTAGRAM FOLLOWERS off")
    assert reply == "The markup of category “INSTAGRAM FOLLOWERS” is cleared."
    assert (
        await answer(rig, ADMIN, "/markup off")
        == "The markup of all services (global) is cleared."
    )
    assert await markups(rig) == Markups()
    assert await answer(rig, ADMIN, "/markup service 2001 off") == (
        "No markup was set for service 2001."
    )


async def test_a_markup_changes_the_price_a_customer_is_quoted(rig: Rig) -> None:
    await answer(rig, ADMIN, "/markup 100")
    await answer(rig, ADMIN, "/markup service 2001 50")
    found = await markups(rig)
    billing = rig.services.billing
    assert billing.price(Decimal("1.25"), 2001, "Instagram Followers", found) == Decimal("1.88")
    assert billing.price(Decimal("1.25"), 2002, "Instagram Followers", found) == Decimal("2.50")


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ("/markup -5", "A markup must be zero or more."),
        ("/markup 1.234", "A markup can have at most two decimals, like 12.5."),
        ("/markup 20000", "That markup is too large."),
        ("/markup service 999999 10", "The panel offers no service 999999."),
        (
            "/markup category Myspace Friends 10",
            "No category is named “Myspace Friends”. Use the name shown in /order.",
        ),
    ],
)
async def test_bad_markups_are_refused(rig: Rig, command: str, error: str) -> None:
    assert await answer(rig, ADMIN, command) == error
    assert await markups(rig) == Markups()


async def test_markup_usage_is_shown_for_what_it_cannot_read(rig: Rig) -> None:
    for command in ("/markup service abc 10", "/markup brand x 10", "/markup category 10"):
        assert (await answer(rig, ADMIN, command)).startswith("/markup — show every markup")
    assert (await answer(rig, ADMIN, "/markup lots")).startswith("That is not a percent.")


def test_typed_numbers_are_decimals() -> None:
    assert parse_amount(" 10.5 ") == Decimal("10.5")
    assert parse_percent("0") == Decimal(0) and parse_percent("7.25%") == Decimal("7.25")


# --- /stats ----------------------------------------------------------------------------------


async def book(rig: Rig, kind: LedgerKind, amount: str, reference: str, **extra: Any) -> None:
    async with rig.services.sessions.begin() as session:
        entry = ledger.Entry(ALICE, kind, Decimal(amount), USD, reference, **extra)
        assert await ledger.book(session, entry)


async def placed_order(rig: Rig, price: str, charge: str | None) -> int:
    async with rig.services.sessions.begin() as session:
        order = Order(
            chat_id=ALICE,
            user_id=ALICE,
            service_id=2001,
            service_name="Instagram Followers",
            service_type="Default",
            service_rate=Decimal("1.25"),
            quantity=1000,
            price=Decimal(price),
            charge=None if charge is None else Decimal(charge),
            currency=USD,
            state=str(SubmissionState.PLACED),
            placed_at=datetime.now(UTC),
        )
        session.add(order)
        await session.flush()
        return order.id


async def backdate(rig: Rig, reference: str, days: int) -> None:
    async with rig.services.sessions.begin() as session:
        moment = datetime.now(UTC) - timedelta(days=days)
        await session.execute(
            update(LedgerEntry).where(LedgerEntry.reference == reference).values(created_at=moment)
        )


async def test_stats_show_the_reseller_figures_by_period(rig: Rig) -> None:
    await book(rig, LedgerKind.TOPUP, "50", "stars:a")
    await book(rig, LedgerKind.TOPUP, "30", "stars:old")
    await backdate(rig, "stars:old", days=10)  # in the 30 days only
    await answer(rig, ADMIN, f"/credit {ALICE} 5")
    partial = await placed_order(rig, "1.25", "0.5")  # the panel took 0.50 of 1.25
    await book(rig, LedgerKind.CHARGE, "3", f"order:{partial}:charge:1", order_id=partial)
    await book(rig, LedgerKind.REFUND, "1.80", f"order:{partial}:refund:1", order_id=partial)
    week_old = await placed_order(rig, "2", None)  # no charge known yet: its price
    await book(rig, LedgerKind.CHARGE, "4", f"order:{week_old}:charge:1", order_id=week_old)
    await backdate(rig, f"order:{week_old}:charge:1", days=3)

    report = await rig.services.stats.collect()
    assert report.reseller is not None
    today, week, month = report.reseller.today, report.reseller.week, report.reseller.month
    assert (today.topups, week.topups, month.topups) == (Decimal(50), Decimal(50), Decimal(80))
    assert today.admin_credits == Decimal(5)
    assert (today.revenue, week.revenue) == (Decimal("1.20"), Decimal("5.20"))
    assert today.panel_cost == {USD: Decimal("0.5")} and week.panel_cost == {USD: Decimal("2.5")}
    assert (today.margin, week.margin) == (Decimal("0.70"), Decimal("2.70"))
    assert report.reseller.owed == Decimal("79.80")  # 80 + 5 - 3 + 1.80 - 4

    shown = await answer(rig, ADMIN, "/stats")
    assert "<b>Reseller mode</b>" in shown
    assert "Top-ups: 50.00 USD" in shown and "Top-ups: 80.00 USD" in shown
    assert "Revenue (payments less refunds): 1.20 USD" in shown
    assert "Panel cost: 0.50 USD" in shown and "Margin: 2.70 USD" in shown
    assert "All wallets together (owed to customers): <b>79.80 USD</b>" in shown


async def test_the_margin_reads_the_panel_cost_at_the_exchange_rate(make_rig: MakeRig) -> None:
    rig = await make_rig(billing="wallet", shop_currency="PHP", exchange_rate="56")
    await rig.send(ALICE, "/start")
    order = await placed_order(rig, "1", "1")
    async with rig.services.sessions.begin() as session:
        charge = ledger.Entry(ALICE, LedgerKind.CREDIT, Decimal(100), "PHP", "admin:1:1")
        await ledger.book(session, charge)
        paid = ledger.Entry(ALICE, LedgerKind.CHARGE, Decimal(70), "PHP", "o:1", order)
        await ledger.book(session, paid)
    report = await rig.services.stats.collect()
    assert report.reseller is not None
    assert report.reseller.today.margin == Decimal(14) and report.reseller.currency == "PHP"


# --- team mode and /help -------------------------------------------------------------------


async def test_team_mode_says_the_commands_need_wallet_mode(make_rig: MakeRig) -> None:
    rig = await make_rig()
    for command in (f"/credit {ALICE} 5", f"/debit {ALICE} 5", f"/wallet {ALICE}", "/markup"):
        reply = await answer(rig, ADMIN, command)
        assert reply == "This command works in reseller mode only (BILLING=wallet)."
    assert "Reseller mode" not in await answer(rig, ADMIN, "/stats")
    assert "/credit" not in await answer(rig, ADMIN, "/help")


async def test_help_lists_the_wallet_commands_for_admins_only(rig: Rig) -> None:
    shown = await answer(rig, ADMIN, "/help")
    for command in ("/credit &lt;user&gt;", "/debit", "/wallet &lt;user&gt;", "/markup"):
        assert command in shown
    assert "/credit" not in await answer(rig, ALICE, "/help")
