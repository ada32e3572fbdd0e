"""A polite refusal for people who may not order, with the id to give the admin."""

from __future__ import annotations

from typing import Final

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from handlers.callbacks import (
    CategoriesPage,
    DraftAction,
    FormAction,
    OrderAction,
    OrdersPage,
    SearchStart,
    ServicePick,
    ServicesPage,
)
from handlers.filters import MayOrder, MenuButton

router: Final[Router] = Router(name=__name__)
router.message.filter(~MayOrder())
router.callback_query.filter(~MayOrder())

ORDERING_COMMANDS = ("order", "orders", "status", "refill")
ORDERING_BUTTONS = tuple(
    data.__prefix__
    for data in (
        CategoriesPage,
        ServicesPage,
        SearchStart,
        ServicePick,
        FormAction,
        DraftAction,
        OrdersPage,
        OrderAction,
    )
)


def refusal(user_id: int) -> str:
    return _(
        "Sorry, ordering is only open to approved users. Ask the bot's admin to allow you, "
        "and give them your Telegram user ID: <code>{id}</code>"
    ).format(id=user_id)


@router.message(Command(*ORDERING_COMMANDS))
@router.message(MenuButton("order"))
@router.message(MenuButton("orders"))
async def refuse_command(message: Message) -> None:
    user_id = message.from_user.id if message.from_user else message.chat.id
    await message.answer(refusal(user_id))


@router.callback_query(F.data.func(lambda data: data.split(":", 1)[0] in ORDERING_BUTTONS))
async def refuse_button(query: CallbackQuery) -> None:
    text = _("Sorry, ordering is only open to approved users. Your Telegram user ID is {id}.")
    await query.answer(text.format(id=query.from_user.id), show_alert=True)
