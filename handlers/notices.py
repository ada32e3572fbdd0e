"""Messages to the admins that are not a reply: they go through the durable outbox."""

from __future__ import annotations

from collections.abc import Callable

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import I18n
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from storage import outbox


async def tell_admins(
    session: AsyncSession,
    settings: Settings,
    render: Callable[[], str],
    markup: InlineKeyboardMarkup | None = None,
) -> None:
    """Queue one message per admin, in the bot's default language, in the update's session."""
    if not settings.admin_ids:
        return
    i18n = I18n.get_current(no_error=True)
    if i18n is not None:
        with i18n.use_locale(settings.default_language):
            text = render()
    else:
        text = render()
    payload = markup.model_dump(mode="json", exclude_none=True) if markup else None
    for admin_id in settings.admin_ids:
        await outbox.enqueue(session, admin_id, text, reply_markup=payload, kind="admin")
