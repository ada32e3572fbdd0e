"""The catch-all router, included last: text and presses nothing else understood, and the
apology for errors no earlier router handled (error handlers are tried in router order)."""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, ErrorEvent, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from handlers import keyboards

log = logging.getLogger(__name__)


async def unknown_message(message: Message) -> None:
    await message.answer(_("I did not understand that. Send /help to see what I can do."))


async def stale_button(query: CallbackQuery, callback_answer: CallbackAnswer) -> None:
    """The one handler of buttons nothing acts on any more (an old menu, a step already left):
    the presser gets a fresh start. (Superseded menus lose their keyboards as they are
    superseded, see `handlers.flows`; what is pressed here was missed or sent before.)"""
    callback_answer.text = _("This menu is out of date.")
    if isinstance(query.message, Message):
        await query.message.answer(
            _("That menu is out of date. What would you like to do?"),
            reply_markup=keyboards.fresh_start(query.from_user.id),
        )


async def apologise(event: ErrorEvent) -> None:
    """Log the failure and tell the user, so one bad update never looks like silence."""
    log.error(
        "update %s failed: %s",
        event.update.update_id,
        type(event.exception).__name__,
        exc_info=event.exception,
    )
    text = _("Sorry, something went wrong on our side. Please try again in a moment.")
    update = event.update
    try:
        query = update.callback_query
        if query is not None:
            try:
                await query.answer(text, show_alert=True)
            except TelegramBadRequest:  # answered already (a press answered up front)
                if isinstance(query.message, Message):
                    await query.message.answer(text)
        elif update.message is not None:
            await update.message.answer(text)
    except Exception:  # the apology itself must never raise out of the error handler
        log.warning("could not send the apology for update %s", update.update_id)


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(unknown_message, F.chat.type == "private")
    router.callback_query.register(stale_button)
    router.errors.register(apologise)
    return router
