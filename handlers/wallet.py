"""The customer's wallet in reseller mode: /wallet and 💳, Stars top-ups (invoice,
pre-checkout, payment), /paysupport and /terms, and the admins' /refund_stars.

The payment router comes first of all routers: a payment must be credited whatever step the
conversation is on; the wallet router comes just before the catch-all.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from aiogram import Bot, F, Router, html
from aiogram.filters import Command, CommandObject, Filter
from aiogram.fsm.context import FSMContext
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    PreCheckoutQuery,
    TelegramObject,
)
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from bot.billing import Billing, InvalidAmount, WalletView
from bot.catalog import Catalog
from bot.config import Settings
from bot.money import format_money
from bot.ordering import Ordering
from bot.payments import (
    BelowMinimum,
    Credited,
    Payments,
    Quote,
    RefundOutcome,
    Refusal,
    StarsRefund,
    TopupRefused,
)
from handlers.callbacks import SummaryReturn, TopupOther, TopupPick, WalletOpen
from handlers.filters import IsAdmin, MenuButton, PressedOn
from handlers.ordering import show_draft
from handlers.screens import member
from handlers.states import TopupForm

CENTS = Decimal(100)
RETURN_TO = "topup_return"  # FSM data: the summary an "Other amount" top-up returns to
MAX_TYPED = 32  # characters of a typed amount worth parsing


class InWalletMode(Filter):
    """Reseller mode (BILLING=wallet): without it there are no wallets to show."""

    async def __call__(self, event: TelegramObject, settings: Settings) -> bool:
        return settings.wallet_mode


# --- what the user sees ----------------------------------------------------------------------


def _kind_label(kind: str) -> str:
    labels = {
        "topup": _("Top-up (Stars)"),
        "charge": _("Order"),
        "refund": _("Refund"),
        "credit": _("Credit"),
        "debit": _("Debit"),
        "stars_refund": _("Stars refunded"),
        "late_charge": _("Late charge"),
    }
    return labels.get(kind, kind)


def wallet_text(view: WalletView, *, private: bool, stars: bool) -> str:
    lines = [
        _("💳 <b>Your wallet</b>"),
        _("Balance: {balance}").format(balance=format_money(view.balance, view.currency)),
    ]
    if view.entries:
        lines += ["", _("Last entries:")]
        for entry in view.entries:
            sign = "+" if entry.amount > 0 else "−"
            amount = format_money(abs(entry.amount), entry.currency)
            # Our reference, not the panel's id: "#" names the panel's order everywhere else.
            order = ""
            if entry.order_id:
                order = " " + _("ref. {number}").format(number=entry.order_id)
            day = entry.created_at.strftime("%Y-%m-%d")
            lines.append(f"{day} {sign}{amount} · {_kind_label(entry.kind)}{order}")
    if not stars:
        return "\n".join(lines)
    lines.append("")
    if private:
        lines.append(_("Top up with Telegram Stars:"))
    else:
        lines.append(_("Top-ups happen in a private chat with me: open it and send /wallet."))
    return "\n".join(lines)


def topup_keyboard(
    amounts: list[Decimal], currency: str, order: int, by: int
) -> InlineKeyboardMarkup:
    rows = []
    for amount in amounts:
        data = TopupPick(cents=int(amount * CENTS), order=order, by=by).pack()
        text = "⭐ " + format_money(amount, currency, markup=False)
        rows.append([InlineKeyboardButton(text=text, callback_data=data)])
    other = TopupOther(order=order, by=by).pack()
    rows.append([InlineKeyboardButton(text=_("Other amount"), callback_data=other)])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def describe_invoice(quote: Quote) -> tuple[str, str]:
    """The invoice's title (≤ 32 characters) and description (≤ 255), in the user's language."""
    amount = format_money(quote.amount, quote.currency, markup=False)
    title = _("Wallet top-up")[:32]
    description = _("{amount} for your wallet, paid with {stars} Telegram Stars.").format(
        amount=amount, stars=quote.stars
    )
    return title, description[:255]


def refusal_text(refusal: Refusal) -> str:
    texts = {
        Refusal.NOT_STARS: _("This invoice is not paid in Telegram Stars."),
        Refusal.UNKNOWN: _("This invoice is not yours. Send /wallet to top up your own wallet."),
        Refusal.CHANGED: _("This invoice is out of date. Send /wallet for a new one."),
        Refusal.DENIED: _("Sorry, you may not top up here."),
    }
    return texts[refusal]


def credited_text(credited: Credited) -> str:
    if not credited.matched:
        return _(
            "Your payment arrived, but it matches no top-up of yours. The admins were told "
            "and will settle it."
        )
    return _("✅ {amount} added to your wallet. Balance: {balance}").format(
        amount=format_money(credited.amount, credited.currency),
        balance=format_money(credited.balance, credited.currency),
    )


def _amount_prompt(payments: Payments) -> str:
    least = format_money(payments.min_topup, payments.currency)
    return _("Send the amount to top up, in {currency} (at least {least}).").format(
        currency=payments.currency, least=least
    )


def _topup_error(error: InvalidAmount, payments: Payments) -> str:
    if isinstance(error, BelowMinimum):
        least = format_money(payments.min_topup, payments.currency)
        return _("The least top-up is {least}. Send another amount.").format(least=least)
    return _("That is not an amount. Send a number like 5 or 12.50.")


# --- the wallet ---------------------------------------------------------------------------


async def _show_wallet(
    target: Message, by: int, billing: Billing, payments: Payments, order: int = 0
) -> None:
    view = await billing.wallet(by)
    private = target.chat.type == "private"
    text = wallet_text(view, private=private, stars=payments.offered)
    markup = None
    if private and payments.offered:
        markup = topup_keyboard(payments.topup_amounts(), view.currency, order, by)
    await target.answer(text, reply_markup=markup)


async def wallet_command(message: Message, billing: Billing, payments: Payments) -> None:
    await _show_wallet(message, member(message), billing, payments)


async def wallet_button(message: Message, billing: Billing, payments: Payments) -> None:
    await _show_wallet(message, member(message), billing, payments)


async def open_wallet(
    query: CallbackQuery,
    callback_data: WalletOpen,
    message: Message,
    billing: Billing,
    payments: Payments,
) -> None:
    """From a short-balance summary: the wallet as a new message, the summary kept."""
    await _show_wallet(message, query.from_user.id, billing, payments, callback_data.order)


# --- top-ups ------------------------------------------------------------------------------


async def _invoice(
    bot: Bot, message: Message, user_id: int, amount: Decimal, order: int, payments: Payments
) -> str | None:
    """Send the invoice; None when sent, else why not (in the user's language)."""
    try:
        await payments.start_topup(
            bot, message.chat.id, user_id, amount, describe_invoice, return_order=order
        )
    except InvalidAmount as error:
        return _topup_error(error, payments)
    except TopupRefused:
        return _("Sorry, that top-up is not possible here.")
    return None


async def pick_amount(
    query: CallbackQuery,
    callback_data: TopupPick,
    callback_answer: CallbackAnswer,
    message: Message,
    bot: Bot,
    payments: Payments,
) -> None:
    amount = Decimal(callback_data.cents) / CENTS
    problem = await _invoice(
        bot, message, query.from_user.id, amount, callback_data.order, payments
    )
    if problem is not None:
        callback_answer.text, callback_answer.show_alert = problem, True


async def ask_amount(
    query: CallbackQuery,
    callback_data: TopupOther,
    message: Message,
    state: FSMContext,
    payments: Payments,
) -> None:
    await state.set_state(TopupForm.amount)
    await state.update_data({RETURN_TO: callback_data.order})
    await message.answer(_amount_prompt(payments))


def _parse_amount(text: str) -> Decimal | None:
    cleaned = text.strip().replace(",", ".")
    if not cleaned or len(cleaned) > MAX_TYPED:
        return None
    try:
        return Decimal(cleaned)
    except InvalidOperation:
        return None


async def typed_amount(message: Message, state: FSMContext, bot: Bot, payments: Payments) -> None:
    amount = _parse_amount(message.text or "")
    data = await state.get_data()
    order = int(data.get(RETURN_TO) or 0)
    if amount is None:
        await message.answer(_("That is not an amount. Send a number like 5 or 12.50."))
        return
    problem = await _invoice(bot, message, member(message), amount, order, payments)
    if problem is not None:
        await message.answer(problem)  # the same step: the user types again
        return
    await state.set_state(None)


async def typed_not_text(message: Message, payments: Payments) -> None:
    await message.answer(_amount_prompt(payments))


async def topup_in_group(query: CallbackQuery, callback_answer: CallbackAnswer) -> None:
    callback_answer.text = _("Top-ups happen in a private chat with me: open it and send /wallet.")
    callback_answer.show_alert = True


async def back_to_summary(
    query: CallbackQuery,
    callback_data: SummaryReturn,
    callback_answer: CallbackAnswer,
    message: Message,
    state: FSMContext,
    catalog: Catalog,
    ordering: Ordering,
) -> None:
    shown = await show_draft(
        message, state, catalog, ordering, callback_data.order, query.from_user.id
    )
    if not shown:
        callback_answer.text = _("That order is no longer waiting. Send /order to start again.")
        callback_answer.show_alert = True


# --- payments (answered inside the handler: Telegram waits 10 s for a pre-checkout) -------


async def pre_checkout(query: PreCheckoutQuery, payments: Payments) -> None:
    refusal = await payments.pre_checkout(
        query.from_user.id, query.invoice_payload, query.currency, query.total_amount
    )
    if refusal is None:
        await query.answer(ok=True)
    else:
        await query.answer(ok=False, error_message=refusal_text(refusal))


async def successful_payment(message: Message, payments: Payments) -> None:
    paid = message.successful_payment
    if paid is None or message.from_user is None:
        return
    credited = await payments.paid(
        message.from_user.id,
        paid.invoice_payload,
        paid.total_amount,
        paid.telegram_payment_charge_id,
    )
    markup = None
    if credited.return_order:
        data = SummaryReturn(order=credited.return_order, by=message.from_user.id).pack()
        button = InlineKeyboardButton(text=_("↩️ Back to your order"), callback_data=data)
        markup = InlineKeyboardMarkup(inline_keyboard=[[button]])
    await message.answer(credited_text(credited), reply_markup=markup)


async def refunded_payment(message: Message, payments: Payments) -> None:
    refunded = message.refunded_payment
    if refunded is None or message.from_user is None:
        return
    await payments.refunded_elsewhere(message.from_user.id, refunded.telegram_payment_charge_id)


# --- Telegram's rules for Stars, and the admins' refund ----------------------------------


async def pay_support(message: Message, settings: Settings) -> None:
    contact = settings.support_contact
    if contact:
        await message.answer(
            _("Questions about a payment? Contact {contact}.").format(contact=contact)
        )
    else:
        await message.answer(_("Questions about a payment? Write to the admins of this bot."))


async def terms(message: Message, settings: Settings) -> None:
    await message.answer(settings.terms_text or _("No terms have been published yet."))


def _refund_text(charge: str, result: StarsRefund) -> str:
    amount = format_money(result.amount, result.currency) if result.amount is not None else ""
    balance = format_money(result.balance, result.currency) if result.balance is not None else ""
    texts = {
        RefundOutcome.REFUNDED: _(
            "Refunded: the Stars of {charge} went back to user {user}; {amount} was taken from "
            "the wallet (balance {balance})."
        ),
        RefundOutcome.REFUSED: _(
            "Telegram refused the refund of {charge} ({detail}); the {amount} taken from the "
            "wallet was put back (balance {balance})."
        ),
        RefundOutcome.REFUSED_BEFORE: _(
            "Telegram refused the refund of {charge} before; nothing was tried again."
        ),
        RefundOutcome.PENDING: _(
            "Telegram did not answer for {charge}; {amount} stays taken from the wallet. Send "
            "the same /refund_stars again later."
        ),
        RefundOutcome.SPENT: _(
            "The wallet of user {user} holds {balance}, less than the {amount} of {charge}: "
            "nothing was refunded."
        ),
        RefundOutcome.UNKNOWN_CHARGE: _("No Stars top-up was booked under {charge}."),
    }
    return texts[result.outcome].format(
        charge=charge, user=result.user_id, amount=amount, balance=balance, detail=result.detail
    )


async def refund_stars(
    message: Message, command: CommandObject, bot: Bot, payments: Payments
) -> None:
    charge = (command.args or "").strip()
    if not charge or len(charge) > 100 or " " in charge:
        await message.answer(_("Send /refund_stars &lt;charge id&gt; (from the payment)."))
        return
    result = await payments.refund(bot, charge, member(message))
    await message.answer(_refund_text(html.quote(charge), result))


# --- routers ------------------------------------------------------------------------------


def create_payments_router() -> Router:
    """Payment updates, whatever the conversation's step (included first)."""
    router = Router(name=f"{__name__}.payments")
    router.pre_checkout_query.filter(InWalletMode())
    router.message.filter(InWalletMode())
    router.pre_checkout_query.register(pre_checkout)
    router.message.register(successful_payment, F.successful_payment)
    router.message.register(refunded_payment, F.refunded_payment)
    return router


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(InWalletMode())
    router.callback_query.filter(InWalletMode())
    private = F.chat.type == "private"
    # /wallet without arguments only: `/wallet <user>` is the admins' (handlers.admin).
    router.message.register(
        wallet_command, Command("wallet"), F.text.regexp(r"^/wallet(@\w+)?\s*$")
    )
    router.message.register(wallet_button, MenuButton("wallet"))
    router.message.register(pay_support, Command("paysupport"))
    router.message.register(terms, Command("terms"))
    router.message.register(refund_stars, Command("refund_stars"), IsAdmin(), private)
    router.message.register(
        typed_amount, TopupForm.amount, private, F.text, ~F.text.startswith("/")
    )
    router.message.register(typed_not_text, TopupForm.amount, private, ~F.text)
    router.callback_query.filter(PressedOn())
    router.callback_query.register(open_wallet, WalletOpen.filter())
    router.callback_query.register(back_to_summary, SummaryReturn.filter())
    in_group = F.message.chat.type != "private"
    router.callback_query.register(topup_in_group, TopupPick.filter(), in_group)
    router.callback_query.register(topup_in_group, TopupOther.filter(), in_group)
    router.callback_query.register(pick_amount, TopupPick.filter())
    router.callback_query.register(ask_amount, TopupOther.filter())
    return router
