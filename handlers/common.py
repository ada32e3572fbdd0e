"""Welcome, help, cancel and language choice, and the guards every button passes first: a
button shown to someone else, and a message too old for Telegram to show us."""

from __future__ import annotations

import contextlib

from aiogram import F, Router, html
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
)
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot.access import Access
from bot.config import Settings
from bot.i18n import LANGUAGES
from bot.people import People
from handlers.access import refusal
from handlers.callbacks import LanguageChoice
from handlers.filters import ForSomeoneElse, PressedOn, menu_text
from handlers.screens import member, replace

LANGUAGE_NAMES = {"en": "English", "fil": "Filipino"}


def command_menu(wallet_mode: bool = False) -> list[tuple[str, str]]:
    """The command menu shown by Telegram clients (in the current locale); in reseller mode
    with the wallet and the two commands Telegram asks of a bot that takes Stars."""
    commands = [
        ("order", _("Place a new order")),
        ("orders", _("My orders")),
        ("status", _("Status of an order")),
        ("refill", _("Request a refill")),
    ]
    if wallet_mode:
        commands.append(("wallet", _("My wallet and top-ups")))
    commands += [
        ("language", _("Change the language")),
        ("cancel", _("Leave the current step")),
        ("help", _("What I can do")),
    ]
    if wallet_mode:
        commands += [
            ("paysupport", _("Help with a payment")),
            ("terms", _("Terms of sale")),
        ]
    return commands


def help_text(access: Access | None, wallet_mode: bool = False) -> str:
    if access is None or not access.may_order:
        # Someone who may not order sees how to get access, not a list of refused commands.
        return "\n".join(
            [
                _("I take orders for social media services from our SMM panel."),
                "",
                refusal(access.user_id) if access else "",
                "",
                _("/language — change the language"),
                _("/help — this message"),
            ]
        )
    lines = [
        _("I take orders for social media services from our SMM panel."),
        "",
        _("/order — place a new order"),
        _("/orders — your orders and their status"),
        _("/status &lt;id&gt; — the status of one order"),
        _("/refill &lt;id&gt; — ask for a refill of an order"),
    ]
    if wallet_mode:
        lines.append(_("/wallet — your balance, top-ups with Telegram Stars"))
    lines += [
        _("/language — change the language"),
        _("/cancel — leave what you are doing"),
        _("/help — this message"),
    ]
    if wallet_mode:
        lines.append(_("/paysupport — help with a payment; /terms — terms of sale"))
    if access is not None and access.is_admin:
        lines += [
            "",
            _("Admin:"),
            _("/balance — the panel balance"),
            _("/stats — orders and spending"),
            _("/unknown — orders waiting for reconciliation"),
            _("/allow &lt;user id&gt;, /deny &lt;user id&gt; — who may order"),
            _("/notify_here, /notify_off — completion notices in this group"),
        ]
        if wallet_mode:
            lines += [
                _("/credit &lt;user&gt; &lt;amount&gt; [note] — add money to a wallet"),
                _("/debit &lt;user&gt; &lt;amount&gt; [note] — take money from a wallet"),
                _("/wallet &lt;user&gt; — anyone's wallet and its latest entries"),
                _("/markup — show or set the markups"),
            ]
    return "\n".join(lines)


async def not_yours(query: CallbackQuery, callback_answer: CallbackAnswer) -> None:
    """Someone else's menu, form, summary or card: nothing changes, the presser is told."""
    callback_answer.text = _("These buttons are for someone else. Send /order to start your own.")
    callback_answer.show_alert = True


async def message_too_old(query: CallbackQuery, callback_answer: CallbackAnswer) -> None:
    """Telegram no longer shows us the pressed message (it is too old to edit)."""
    callback_answer.text = _("This message is too old to use. Send /order to start again.")
    callback_answer.show_alert = True


async def start(
    message: Message, state: FSMContext, access: Access | None, settings: Settings
) -> None:
    await state.clear()
    name = html.quote(message.from_user.first_name) if message.from_user else ""
    help_part = help_text(access, settings.wallet_mode)
    text = _("Hello, {name}!").format(name=name) + "\n\n" + help_part
    await message.answer(text, reply_markup=main_menu(message, access, settings.wallet_mode))


def main_menu(
    message: Message, access: Access | None, wallet: bool = False
) -> ReplyKeyboardMarkup | None:
    """The reply keyboard ("🛒 New order / 📋 My orders", and "💳 Wallet" in reseller mode)
    in the current language, for those who may order, in private chats (in groups it would
    cover everyone's keyboard)."""
    if message.chat.type != "private" or access is None or not access.may_order:
        return None
    row = [KeyboardButton(text=menu_text("order")), KeyboardButton(text=menu_text("orders"))]
    if wallet:
        row.append(KeyboardButton(text=menu_text("wallet")))
    return ReplyKeyboardMarkup(
        keyboard=[row],
        resize_keyboard=True,
        is_persistent=True,
    )


async def show_help(message: Message, access: Access | None, settings: Settings) -> None:
    await message.answer(help_text(access, settings.wallet_mode))


async def cancel_anything(message: Message, state: FSMContext) -> None:
    had_state = await state.get_state() is not None
    await state.clear()
    await message.answer(_("Cancelled.") if had_state else _("Nothing to cancel."))


async def choose_language(message: Message) -> None:
    by = member(message)
    buttons = [
        [InlineKeyboardButton(text=name, callback_data=LanguageChoice(code=code, by=by).pack())]
        for code, name in LANGUAGE_NAMES.items()
    ]
    await message.answer(
        _("Choose your language:"), reply_markup=InlineKeyboardMarkup(inline_keyboard=buttons)
    )


async def set_language(
    query: CallbackQuery,
    callback_data: LanguageChoice,
    message: Message,
    people: People,
    i18n: I18n,
    access: Access | None,
    settings: Settings,
) -> None:
    await people.set_language(query.from_user.id, callback_data.code)
    with i18n.use_locale(callback_data.code):
        text = _("Language set: {name}.").format(name=LANGUAGE_NAMES[callback_data.code])
        menu = main_menu(message, access, settings.wallet_mode)
    if menu is None:
        await replace(query, text)
        return
    # The reply keyboard speaks the old language until it is sent again; only a new message
    # can carry one, so the choice menu gives way to it.
    with contextlib.suppress(TelegramBadRequest):  # too old to delete: it just stays
        await message.delete()
    await message.answer(text, reply_markup=menu)


def create_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(not_yours, ForSomeoneElse())
    router.callback_query.register(message_too_old, ~PressedOn())
    router.message.register(start, CommandStart())
    router.message.register(show_help, Command("help"))
    router.message.register(cancel_anything, Command("cancel"))
    router.message.register(choose_language, Command("language"))
    router.callback_query.register(
        set_language, LanguageChoice.filter(F.code.in_(LANGUAGES)), PressedOn()
    )
    return router
