"""Telegram Stars in the emulator: invoices, pre-checkout queries, payments, refunds and the
bot's Star transactions, with the rules Telegram enforces.

Bot side (methods): sendInvoice (currency XTR only, no provider token, exactly one price, a
payload of 1…128 bytes, a title of 1…32 and a description of 1…255 characters),
answerPreCheckoutQuery (an answer later than `precheckout_timeout` seconds, 10 on Telegram, is
refused and the payment fails), refundStarPayment, getStarTransactions.

User side: `pay()` sends a `pre_checkout_query`, waits for the bot's answer and, on `ok`, sends
the `successful_payment` message; `repeat()` delivers a message's update once more (as after a
crash between Telegram and the bot); `refund_elsewhere()` is a refund the bot did not make (a
`refunded_payment` message). An invoice may be paid again: each payment is a charge of its own.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from playground.telegram.errors import QUERY_TOO_OLD, JsonDict, bad_request
from playground.telegram.markup import check_reply_markup
from playground.telegram.params import int_param
from playground.telegram.users import ChatLog, Message

if TYPE_CHECKING:
    from playground.telegram.server import TelegramEmulator
    from playground.telegram.state import BotState

STARS = "XTR"
PRECHECKOUT_TIMEOUT = 10.0  # seconds Telegram waits for answerPreCheckoutQuery
MAX_PAYLOAD_BYTES = 128
MAX_TITLE = 32
MAX_DESCRIPTION = 255
MAX_STARS = 10_000
ALREADY_REFUNDED = "CHARGE_ALREADY_REFUNDED"
CHARGE_NOT_FOUND = "CHARGE_NOT_FOUND"


class PaymentFailed(Exception):
    """The user could not pay: the bot said no (its error_message), or did not answer the
    pre-checkout query in time."""


@dataclass
class PreCheckout:
    query_id: str
    user_id: int
    invoice: JsonDict
    created: float
    answered: bool = False
    ok: bool = False
    error_message: str = ""


@dataclass
class Charge:
    """One paid invoice: Telegram's `telegram_payment_charge_id` and what was paid."""

    charge_id: str
    user: JsonDict
    chat_id: int
    stars: int
    payload: str
    date: int
    refunded: bool = False


@dataclass
class StarAccount:
    """One bot's Stars: the pre-checkout queries, the charges and the transaction history."""

    queries: dict[str, PreCheckout] = field(default_factory=dict)
    charges: dict[str, Charge] = field(default_factory=dict)
    transactions: list[JsonDict] = field(default_factory=list)


_numbers = itertools.count(1)


def _text_param(params: JsonDict, name: str, limit: int, *, in_bytes: bool = False) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise bad_request(f"{name} is empty")
    size = len(value.encode()) if in_bytes else len(value)
    if size > limit:
        raise bad_request(f"{name.upper()}_INVALID: {name} is longer than {limit}")
    return value


def check_invoice(params: JsonDict) -> JsonDict:
    """The `invoice` of a message, from sendInvoice's parameters, refused like Telegram."""
    title = _text_param(params, "title", MAX_TITLE)
    description = _text_param(params, "description", MAX_DESCRIPTION)
    payload = _text_param(params, "payload", MAX_PAYLOAD_BYTES, in_bytes=True)
    currency = params.get("currency")
    if currency != STARS:
        raise bad_request("CURRENCY_INVALID: the emulator takes Telegram Stars (XTR) only")
    if params.get("provider_token"):
        raise bad_request("PAYMENT_PROVIDER_INVALID: payments in Stars take no provider token")
    prices = params.get("prices")
    if not isinstance(prices, list) or not prices:
        raise bad_request("can't parse prices JSON object")
    if len(prices) != 1:
        raise bad_request("STARS_INVOICE_INVALID: an invoice in Stars has exactly one price")
    price = prices[0]
    amount = price.get("amount") if isinstance(price, dict) else None
    if (
        isinstance(amount, bool)
        or not isinstance(amount, int)
        or not 1 <= amount <= MAX_STARS
        or not isinstance(price.get("label"), str)
    ):
        raise bad_request("CURRENCY_TOTAL_AMOUNT_INVALID")
    invoice: JsonDict = {
        "title": title,
        "description": description,
        "start_parameter": str(params.get("start_parameter") or ""),
        "currency": STARS,
        "total_amount": amount,
    }
    # Kept for the emulator only (a real Message shows no payload): pay() needs it.
    return {"invoice": invoice, "payload": payload}


class StarPayments:
    """The Stars methods of one emulator, and what its users do with invoices."""

    def __init__(self, emulator: TelegramEmulator) -> None:
        self._emu = emulator
        self.precheckout_timeout = PRECHECKOUT_TIMEOUT
        self._accounts: dict[int, StarAccount] = {}
        self._payloads: dict[tuple[int, int, int], str] = {}  # (bot, chat, message) → payload

    def account(self, bot_id: int | None = None) -> StarAccount:
        bot = self._emu.bot_state(bot_id)
        return self._accounts.setdefault(bot.id, StarAccount())

    def methods(self) -> dict[str, Any]:
        return {
            "sendInvoice": self.send_invoice,
            "answerPreCheckoutQuery": self.answer_pre_checkout_query,
            "refundStarPayment": self.refund_star_payment,
            "getStarTransactions": self.get_star_transactions,
        }

    # --- bot side ------------------------------------------------------------------------

    async def send_invoice(self, bot: BotState, params: JsonDict) -> JsonDict:
        log = self._emu.target_chat(bot, params)
        checked = check_invoice(params)
        markup = check_reply_markup(params.get("reply_markup"), inline_only=True)
        self._emu.admit(log)
        message = log.add_message(
            bot.user, "", reply_markup=markup, attachment={"invoice": checked["invoice"]}
        )
        self._payloads[(bot.id, log.chat_id, message.message_id)] = checked["payload"]
        self._emu.stats.sent += 1
        return message.to_telegram()

    async def answer_pre_checkout_query(self, bot: BotState, params: JsonDict) -> bool:
        account = self._accounts.setdefault(bot.id, StarAccount())
        query = account.queries.get(str(params.get("pre_checkout_query_id") or ""))
        if query is None or query.answered:
            raise bad_request(QUERY_TOO_OLD)
        if time.monotonic() - query.created > self.precheckout_timeout:
            raise bad_request(QUERY_TOO_OLD)
        ok = params.get("ok")
        if ok not in (True, False):
            raise bad_request("parameter ok is required")
        error_message = str(params.get("error_message") or "")
        if ok is False and not error_message:
            raise bad_request("ERROR_MESSAGE_EMPTY")
        query.answered, query.ok, query.error_message = True, bool(ok), error_message
        return True

    async def refund_star_payment(self, bot: BotState, params: JsonDict) -> bool:
        user_id = int_param(params, "user_id", "user_id is empty")
        charge_id = str(params.get("telegram_payment_charge_id") or "")
        charge = self._accounts.setdefault(bot.id, StarAccount()).charges.get(charge_id)
        if charge is None or charge.user["id"] != user_id:
            raise bad_request(CHARGE_NOT_FOUND)
        if charge.refunded:
            raise bad_request(ALREADY_REFUNDED)
        self._refund(bot.id, charge)
        return True

    async def get_star_transactions(self, bot: BotState, params: JsonDict) -> JsonDict:
        offset = params.get("offset") or 0
        limit = params.get("limit") or 100
        if not isinstance(offset, int) or offset < 0:
            raise bad_request("invalid offset specified")
        if not isinstance(limit, int) or not 1 <= limit <= 100:
            raise bad_request("invalid limit specified")
        transactions = self._accounts.setdefault(bot.id, StarAccount()).transactions
        return {"transactions": transactions[offset : offset + limit]}

    # --- user side -----------------------------------------------------------------------

    async def pay(
        self,
        chat_id: int,
        user_id: int,
        message_id: int,
        *,
        bot_id: int | None = None,
        deliver: bool = True,
    ) -> Message:
        """The user pays an invoice: pre-checkout query, the bot's answer, then the
        `successful_payment` message (returned). Raises PaymentFailed, ValueError.

        `deliver=False`: the payment happens but its update never reaches the bot (a bot that
        crashed after confirming it), so only getStarTransactions knows of it."""
        bot = self._emu.bot_state(bot_id)
        user, log = self._emu.user_in_chat(bot, user_id, chat_id)
        invoice_message = log.get(message_id)
        payload = self._payloads.get((bot.id, chat_id, message_id))
        if invoice_message is None or invoice_message.invoice is None or payload is None:
            raise ValueError(f"message {message_id} in chat {chat_id} is no invoice")
        invoice = invoice_message.invoice
        account = self.account(bot.id)
        query = PreCheckout(
            str(next(_numbers) + 7_000_000_000), user_id, invoice, time.monotonic()
        )
        account.queries[query.query_id] = query
        bot.enqueue(
            "pre_checkout_query",
            {
                "id": query.query_id,
                "from": user,
                "currency": STARS,
                "total_amount": invoice["total_amount"],
                "invoice_payload": payload,
            },
        )
        self._emu.changed()
        answered = await self._emu.wait_until(lambda: query.answered, self.precheckout_timeout)
        if not answered:
            raise PaymentFailed("the bot did not answer the pre-checkout query in time")
        if not query.ok:
            raise PaymentFailed(query.error_message)
        charge = Charge(
            charge_id=f"stxEMU{next(_numbers):08d}",
            user=user,
            chat_id=chat_id,
            stars=int(invoice["total_amount"]),
            payload=payload,
            date=int(time.time()),
        )
        account.charges[charge.charge_id] = charge
        account.transactions.append(
            {
                "id": charge.charge_id,
                "amount": charge.stars,
                "date": charge.date,
                "source": {
                    "type": "user",
                    "transaction_type": "invoice_payment",
                    "user": user,
                    "invoice_payload": payload,
                },
            }
        )
        paid = {
            "currency": STARS,
            "total_amount": charge.stars,
            "invoice_payload": payload,
            "telegram_payment_charge_id": charge.charge_id,
            "provider_payment_charge_id": "",
        }
        return self._post(bot, log, user, {"successful_payment": paid}, deliver=deliver)

    def refund_elsewhere(self, charge_id: str, *, bot_id: int | None = None) -> Message:
        """A refund the bot did not ask for (Telegram support, a dispute): the Stars go back
        and the bot gets a `refunded_payment` message in the payer's chat."""
        bot = self._emu.bot_state(bot_id)
        charge = self.account(bot.id).charges.get(charge_id)
        if charge is None or charge.refunded:
            raise ValueError(f"no refundable charge {charge_id}")
        self._refund(bot.id, charge)
        log = bot.chats[charge.chat_id]
        refunded = {
            "currency": STARS,
            "total_amount": charge.stars,
            "invoice_payload": charge.payload,
            "telegram_payment_charge_id": charge.charge_id,
        }
        return self._post(bot, log, charge.user, {"refunded_payment": refunded})

    def charges(self, bot_id: int | None = None) -> list[Charge]:
        return list(self.account(bot_id).charges.values())

    def _refund(self, bot_id: int, charge: Charge) -> None:
        charge.refunded = True
        self.account(bot_id).transactions.append(
            {
                "id": charge.charge_id,
                "amount": charge.stars,
                "date": int(time.time()),
                "receiver": {
                    "type": "user",
                    "transaction_type": "invoice_payment",
                    "user": charge.user,
                    "invoice_payload": charge.payload,
                },
            }
        )

    def _post(
        self,
        bot: BotState,
        log: ChatLog,
        user: JsonDict,
        attachment: JsonDict,
        *,
        deliver: bool = True,
    ) -> Message:
        message = log.add_message(user, "", attachment=attachment)
        if deliver:
            bot.enqueue("message", message.to_telegram())
        self._emu.changed()
        return message
