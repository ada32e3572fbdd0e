"""Welcome, help, language choice and the global error handler."""

from __future__ import annotations

from typing import Final

from aiogram import F, Router, html
from aiogram.filters import Command, CommandStart
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
)
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.access import Access
from bot.i18n import LANGUAGES
from handlers.access import refusal
from handlers.filters import menu_text
from storage import people

router: Final[Router] = Router(name=__name__)

LANGUAGE_NAMES = {"en": "English", "fil": "Filipino"}


class LanguageChoice(CallbackData, prefix="lang"):
    code: str


def command_menu() -> list[tuple[str, str]]:
    """The command menu shown by Telegram clients (in the current locale)."""
    return [
        ("order", _("Place a new order")),
        ("orders", _("My orders")),
        ("status", _("Status of an order")),
        ("refill", _("Request a refill")),
        ("language", _("Change the language")),
        ("cancel", _("Leave the current step")),
        ("help", _("What I can do")),
    ]


def help_text(access: Access | None) -> str:
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
        _("/language — change the language"),
        _("/cancel — leave what you are doing"),
        _("/help — this message"),
    ]
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
    return "\n".join(lines)


@router.message(CommandStart())
async def start(message: Message, state: FSMContext, access: Access | None) -> None:
    await state.clear()
    name = html.quote(message.from_user.first_name) if message.from_user else ""
    text = _("Hello, {name}!").format(name=name) + "\n\n" + help_text(access)
    menu = None
    if message.chat.type == "private" and access is not None and access.may_order:
        menu = ReplyKeyboardMarkup(
            keyboard=[
                [KeyboardButton(text=menu_text("order")), KeyboardButton(text=menu_text("orders"))]
            ],
            resize_keyboard=True,
            is_persistent=True,
        )
    await message.answer(text, reply_markup=menu)


@router.message(Command("help"))
async def show_help(message: Message, access: Access | None) -> None:
    await message.answer(help_text(access))


@router.message(Command("cancel"))
async def cancel_anything(message: Message, state: FSMContext) -> None:
    had_state = await state.get_state() is not None
    await state.clear()
    await message.answer(_("Cancelled.") if had_state else _("Nothing to cancel."))


@router.message(Command("language"))
async def choose_language(message: Message) -> None:
    buttons = [
        [InlineKeyboardButton(text=name, callback_data=LanguageChoice(code=code).pack())]
        for code, name in LANGUAGE_NAMES.items()
    ]
    await message.answer(
        _("Choose your language:"), reply_markup=InlineKeyboardMarkup(inline_keyboard=buttons)
    )


@router.callback_query(LanguageChoice.filter(F.code.in_(LANGUAGES)))
async def set_language(
    query: CallbackQuery,
    callback_data: LanguageChoice,
    session: AsyncSession,
    i18n: I18n,
    recent: people.RecentlySeen,
) -> None:
    await query.answer()
    await people.set_user_language(session, query.from_user.id, callback_data.code)
    await session.commit()
    recent.forget_user(query.from_user.id)  # their next update reads the new language
    with i18n.use_locale(callback_data.code):
        text = _("Language set: {name}.").format(name=LANGUAGE_NAMES[callback_data.code])
    if isinstance(query.message, Message):
        await query.message.edit_text(text)
