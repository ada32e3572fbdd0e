"""The catch-all router, included last: text and presses nothing else understood, and the
apology for errors no earlier router handled (error handlers are tried in router order)."""

from __future__ import annotations

import logging
from typing import Final

from aiogram import F, Router
from aiogram.types import CallbackQuery, ErrorEvent, Message
from aiogram.utils.i18n import gettext as _

router: Final[Router] = Router(name=__name__)
log = logging.getLogger(__name__)


@router.message(F.chat.type == "private")
async def unknown_message(message: Message) -> None:
    await message.answer(_("I did not understand that. Send /help to see what I can do."))


@router.callback_query()
async def stale_button(query: CallbackQuery) -> None:
    await query.answer(_("This button is no longer active."), show_alert=False)


@router.errors()
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
        if update.callback_query is not None:
            await update.callback_query.answer(text, show_alert=True)
        elif update.message is not None:
            await update.message.answer(text)
    except Exception:  # the apology itself must never raise out of the error handler
        log.warning("could not send the apology for update %s", update.update_id)
