"""The catch-all router, included last: text and presses nothing else understood."""

from __future__ import annotations

from typing import Final

from aiogram import F, Router
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

router: Final[Router] = Router(name=__name__)


@router.message(F.chat.type == "private")
async def unknown_message(message: Message) -> None:
    await message.answer(_("I did not understand that. Send /help to see what I can do."))


@router.callback_query()
async def stale_button(query: CallbackQuery) -> None:
    await query.answer(_("This button is no longer active."), show_alert=False)
