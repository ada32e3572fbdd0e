"""Queueing messages the bot sends on its own, each rendered in its recipient's language.

Services call this inside their own transaction, so a message exists exactly when the change it
announces does (the outbox sender delivers it later). The buttons of such a message come from the
Telegram layer through the `NoticeButtons` port: the core knows what to offer, not how a callback
is packed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.notices import Translate, Translations, recipient_language, translator
from storage import outbox
from storage.polling import DueOrder as DueOrder  # the order a push is about (for handlers/)

Keyboard = dict[str, Any]  # an inline keyboard as Telegram's JSON, stored with the outbox row
Render = Callable[[Translate], str]
RenderButtons = Callable[[Translate], Keyboard | None]


class NoticeButtons(Protocol):
    """The inline keyboards of pushed messages, built by the Telegram layer (`handlers/`)."""

    def approval(self, order_id: int, _: Translate) -> Keyboard: ...

    def order_update(self, order: DueOrder, status: str, _: Translate) -> Keyboard:
        """The order's own buttons on its status push: details, refill, order again."""
        ...

    def reconcile(self, order_id: int, _: Translate) -> Keyboard: ...

    def access_request(self, user_id: int, _: Translate) -> Keyboard: ...


class Notifier:
    """Writes outbox rows in the caller's session: one per recipient, in their language."""

    def __init__(self, settings: Settings, i18n: Translations) -> None:
        self._settings = settings
        self._i18n = i18n

    def translate_for(self, recipient: outbox.Recipient) -> Translate:
        return translator(
            self._i18n, recipient_language(recipient, self._settings.default_language)
        )

    async def tell(
        self,
        session: AsyncSession,
        chat_ids: Iterable[int],
        render: Render,
        *,
        kind: str,
        buttons: RenderButtons | None = None,
    ) -> int:
        """Queue `render(_)` for every chat that has not blocked the bot; how many were queued."""
        written = 0
        for recipient in (await outbox.recipients(session, chat_ids)).values():
            if recipient.blocked:
                continue
            _ = self.translate_for(recipient)
            markup = buttons(_) if buttons is not None else None
            await outbox.enqueue(session, recipient.chat_id, render(_), markup, kind=kind)
            written += 1
        return written

    async def tell_admins(
        self,
        session: AsyncSession,
        render: Render,
        *,
        kind: str,
        buttons: RenderButtons | None = None,
    ) -> int:
        return await self.tell(
            session, self._settings.admin_ids, render, kind=kind, buttons=buttons
        )
