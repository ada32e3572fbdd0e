"""A polite refusal for people who may not order, with the id to give the admin."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from bot.people import People, Sender
from handlers import keyboards
from handlers.callbacks import AccessRequest
from handlers.filters import MayOrder, MenuButton, OrderingButton
from handlers.screens import member

ORDERING_COMMANDS = ("order", "orders", "status", "refill")


def refusal(user_id: int) -> str:
    return _(
        "Sorry, ordering is only open to approved users. Ask the bot's admin to allow you, "
        "and give them your Telegram user ID: <code>{id}</code>"
    ).format(id=user_id)


async def refuse_command(message: Message) -> None:
    by = member(message)
    offer = keyboards.ask_for_access(by) if message.chat.type == "private" else None
    await message.answer(refusal(by), reply_markup=offer)


async def ask_for_access(
    query: CallbackQuery, callback_answer: CallbackAnswer, people: People
) -> None:
    user = query.from_user
    sender = Sender(user.id, user.username, user.first_name, user.language_code)
    if await people.request_access(sender):
        callback_answer.text = _("Your request went to the admins. I will tell you here.")
    else:
        callback_answer.text = _("You asked already today; the admins have your request.")
    callback_answer.show_alert = True


async def refuse_button(query: CallbackQuery, callback_answer: CallbackAnswer) -> None:
    text = _("Sorry, ordering is only open to approved users. Your Telegram user ID is {id}.")
    callback_answer.text = text.format(id=query.from_user.id)
    callback_answer.show_alert = True


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(~MayOrder())
    router.callback_query.filter(~MayOrder())
    router.message.register(refuse_command, Command(*ORDERING_COMMANDS))
    router.message.register(refuse_command, MenuButton("order"))
    router.message.register(refuse_command, MenuButton("orders"))
    router.callback_query.register(ask_for_access, AccessRequest.filter())
    router.callback_query.register(refuse_button, OrderingButton())
    return router
