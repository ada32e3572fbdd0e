"""Telegram Stars in the emulator, driven by a real aiogram Bot and Dispatcher over HTTP:
invoices refused like Telegram, pre-checkout answers (late ones fail), payments, repeated
updates, refunds and the transaction history."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.types import LabeledPrice, PreCheckoutQuery
from aiogram.types import Message as TgMessage
from aiohttp import ClientSession

from playground.telegram import PaymentFailed, TelegramEmulator

TOKEN = "123456:TEST-token"
ALICE = 1001


class ShopState:
    """What the tiny shop bot saw: payments by charge id, and whether to say no."""

    def __init__(self) -> None:
        self.paid: list[str] = []
        self.refunded: list[str] = []
        self.refuse: str | None = None
        self.silent = False


def shop_router(shop: ShopState) -> Router:
    router = Router()

    @router.message(Command("buy"))
    async def buy(message: TgMessage) -> None:
        await message.answer_invoice(
            title="Top-up",
            description="5 USD for your wallet",
            payload="topup:1",
            currency="XTR",
            prices=[LabeledPrice(label="Top-up", amount=50)],
            start_parameter="topup-1",
        )

    @router.pre_checkout_query()
    async def check(query: PreCheckoutQuery) -> None:
        if shop.silent:
            return
        if shop.refuse:
            await query.answer(ok=False, error_message=shop.refuse)
        else:
            await query.answer(ok=True)

    @router.message(F.successful_payment)
    async def paid(message: TgMessage) -> None:
        assert message.successful_payment is not None
        shop.paid.append(message.successful_payment.telegram_payment_charge_id)
        await message.answer(f"Paid {message.successful_payment.total_amount} Stars")

    @router.message(F.refunded_payment)
    async def refunded(message: TgMessage) -> None:
        assert message.refunded_payment is not None
        shop.refunded.append(message.refunded_payment.telegram_payment_charge_id)

    return router


@pytest.fixture
async def emulator() -> AsyncIterator[TelegramEmulator]:
    emu = TelegramEmulator(token=TOKEN)
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
async def tg_bot(emulator: TelegramEmulator) -> AsyncIterator[Bot]:
    bot = Bot(
        TOKEN,
        session=AiohttpSession(api=TelegramAPIServer.from_base(emulator.url)),
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )
    yield bot
    await bot.session.close()


@pytest.fixture
async def shop(emulator: TelegramEmulator, tg_bot: Bot) -> AsyncIterator[ShopState]:
    state = ShopState()
    dispatcher = Dispatcher()
    dispatcher.include_router(shop_router(state))
    task = asyncio.create_task(
        dispatcher.start_polling(
            tg_bot, handle_signals=False, close_bot_session=False, polling_timeout=1
        )
    )
    assert await emulator.wait_until(lambda: bool(emulator.calls("getUpdates")), 5)
    yield state
    await dispatcher.stop_polling()
    await task


# --- sendInvoice ---------------------------------------------------------------------------


async def test_an_invoice_is_a_message_with_its_stars(
    emulator: TelegramEmulator, tg_bot: Bot
) -> None:
    emulator.user(ALICE)
    sent = await tg_bot.send_invoice(
        ALICE, "Top-up", "5 USD", "topup:1", "XTR", [LabeledPrice(label="x", amount=50)]
    )
    assert sent.invoice is not None
    assert (sent.invoice.currency, sent.invoice.total_amount) == ("XTR", 50)
    stored = emulator.messages(ALICE)[-1]
    assert stored.invoice is not None and stored.invoice["total_amount"] == 50


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({"provider_token": "284685063:TEST:abc"}, "PAYMENT_PROVIDER_INVALID"),
        ({"prices": 2}, "STARS_INVOICE_INVALID"),
        ({"payload": "p" * 129}, "PAYLOAD_INVALID"),
        ({"title": "t" * 33}, "TITLE_INVALID"),
        ({"description": "d" * 256}, "DESCRIPTION_INVALID"),
        ({"currency": "USD"}, "CURRENCY_INVALID"),
        ({"amount": 0}, "CURRENCY_TOTAL_AMOUNT_INVALID"),
    ],
)
async def test_sendinvoice_refuses_what_telegram_refuses(
    emulator: TelegramEmulator, tg_bot: Bot, change: dict[str, object], refusal: str
) -> None:
    emulator.user(ALICE)
    amount = int(str(change.get("amount", 50)))
    prices = [
        LabeledPrice(label=f"p{i}", amount=amount)
        for i in range(int(str(change.get("prices", 1))))
    ]
    with pytest.raises(TelegramBadRequest, match=refusal):
        await tg_bot.send_invoice(
            ALICE,
            title=str(change.get("title", "Top-up")),
            description=str(change.get("description", "5 USD")),
            payload=str(change.get("payload", "topup:1")),
            currency=str(change.get("currency", "XTR")),
            prices=prices,
            provider_token=str(change["provider_token"]) if "provider_token" in change else None,
        )
    assert not [m for m in emulator.messages(ALICE) if m.invoice]


async def test_a_payload_of_128_bytes_is_taken(emulator: TelegramEmulator, tg_bot: Bot) -> None:
    emulator.user(ALICE)
    payload = "é" * 64  # 128 bytes in UTF-8
    await tg_bot.send_invoice(ALICE, "T", "D", payload, "XTR", [LabeledPrice(label="x", amount=1)])
    assert emulator.messages(ALICE)[-1].invoice is not None


# --- paying --------------------------------------------------------------------------------


async def test_paying_asks_the_bot_then_sends_the_payment(
    emulator: TelegramEmulator, shop: ShopState
) -> None:
    alice = emulator.user(ALICE)
    invoice = await alice.send("/buy")
    assert invoice.invoice is not None

    reply = await alice.pay(invoice)

    assert reply.text == "Paid 50 Stars"
    assert [c["pre_checkout_query_id"] for c in emulator.calls("answerPreCheckoutQuery")]
    payment = alice.last_payment
    assert payment is not None and payment.attachment is not None
    charge_id = payment.attachment["successful_payment"]["telegram_payment_charge_id"]
    assert shop.paid == [charge_id]


async def test_a_repeated_payment_update_reaches_the_bot_again(
    emulator: TelegramEmulator, shop: ShopState
) -> None:
    alice = emulator.user(ALICE)
    invoice = await alice.send("/buy")
    await alice.pay(invoice)
    assert alice.last_payment is not None

    alice.repeat(alice.last_payment)
    await alice.wait_for(lambda m: m.text == "Paid 50 Stars")

    assert len(shop.paid) == 2 and shop.paid[0] == shop.paid[1]


async def test_one_invoice_paid_twice_is_two_charges(
    emulator: TelegramEmulator, shop: ShopState
) -> None:
    alice = emulator.user(ALICE)
    invoice = await alice.send("/buy")

    await alice.pay(invoice)
    await alice.pay(invoice)

    assert len(set(shop.paid)) == 2
    assert len(emulator.payments.charges()) == 2


async def test_a_refused_pre_checkout_fails_the_payment(
    emulator: TelegramEmulator, shop: ShopState
) -> None:
    alice = emulator.user(ALICE)
    invoice = await alice.send("/buy")
    shop.refuse = "This top-up is not yours"

    with pytest.raises(PaymentFailed, match="not yours"):
        await alice.pay(invoice)
    await emulator.settle()
    assert shop.paid == [] and emulator.payments.charges() == []


async def test_an_answer_after_the_deadline_fails_the_payment(
    emulator: TelegramEmulator, shop: ShopState, tg_bot: Bot
) -> None:
    emulator.payments.precheckout_timeout = 0.3  # Telegram's 10 s, shortened for the test
    alice = emulator.user(ALICE)
    invoice = await alice.send("/buy")
    shop.silent = True

    with pytest.raises(PaymentFailed, match="in time"):
        await alice.pay(invoice)
    query = next(iter(emulator.payments.account().queries))
    with pytest.raises(TelegramBadRequest, match="too old"):
        await tg_bot.answer_pre_checkout_query(query, ok=True)
    assert emulator.payments.charges() == []


async def test_an_unknown_pre_checkout_query_is_refused(tg_bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="too old"):
        await tg_bot.answer_pre_checkout_query("12345", ok=True)


# --- refunds and transactions --------------------------------------------------------------


async def test_a_refund_is_taken_once(
    emulator: TelegramEmulator, shop: ShopState, tg_bot: Bot
) -> None:
    alice = emulator.user(ALICE)
    await alice.pay(await alice.send("/buy"))
    charge = shop.paid[0]

    assert await tg_bot.refund_star_payment(ALICE, charge) is True
    with pytest.raises(TelegramBadRequest, match="CHARGE_ALREADY_REFUNDED"):
        await tg_bot.refund_star_payment(ALICE, charge)
    with pytest.raises(TelegramBadRequest, match="CHARGE_NOT_FOUND"):
        await tg_bot.refund_star_payment(ALICE, "stxNOPE")
    assert emulator.payments.charges()[0].refunded


async def test_a_refund_elsewhere_sends_a_refunded_payment(
    emulator: TelegramEmulator, shop: ShopState
) -> None:
    alice = emulator.user(ALICE)
    await alice.pay(await alice.send("/buy"))

    emulator.payments.refund_elsewhere(shop.paid[0])

    assert await emulator.wait_until(lambda: shop.refunded == shop.paid, 5)


async def test_star_transactions_list_payments_and_refunds(
    emulator: TelegramEmulator, shop: ShopState, tg_bot: Bot
) -> None:
    alice = emulator.user(ALICE)
    invoice = await alice.send("/buy")
    await alice.pay(invoice)
    await alice.pay(invoice)
    await tg_bot.refund_star_payment(ALICE, shop.paid[0])

    history = await tg_bot.get_star_transactions()
    first_only = await tg_bot.get_star_transactions(offset=0, limit=1)

    assert [t.id for t in history.transactions] == [shop.paid[0], shop.paid[1], shop.paid[0]]
    assert history.transactions[0].source is not None
    assert history.transactions[2].receiver is not None
    assert [t.amount for t in history.transactions] == [50, 50, 50]
    assert len(first_only.transactions) == 1


async def test_the_web_chat_pays_over_http(emulator: TelegramEmulator, shop: ShopState) -> None:
    alice = emulator.user(ALICE)
    invoice = await alice.send("/buy")
    async with ClientSession() as http:
        body = {"user_id": ALICE, "chat_id": ALICE, "message_id": invoice.message_id}
        async with http.post(f"{emulator.url}/user-api/pay", json=body) as response:
            answer = await response.json()
        shop.refuse = "no"
        async with http.post(f"{emulator.url}/user-api/pay", json=body) as response:
            refused = await response.json()
    assert answer["paid"] is True
    assert answer["message"]["attachment"]["successful_payment"]["total_amount"] == 50
    assert refused == {"ok": True, "paid": False, "error": "no"}
