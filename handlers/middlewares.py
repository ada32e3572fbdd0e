"""Per-update context: one database session, the user and chat records, access and locale."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import Chat, TelegramObject, User
from aiogram.utils.i18n import I18nMiddleware
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.access import decide_access
from bot.config import Settings
from bot.i18n import language_of
from storage import people

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class DbSessionMiddleware(BaseMiddleware):
    """Opens one session per update and commits it when the handler succeeded."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = session_factory

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        async with self._sessions() as session:
            data["session"] = session
            result = await handler(event, data)
            await session.commit()
            return result


class AccessMiddleware(BaseMiddleware):
    """Records who wrote (clearing a "blocked" mark) and decides what they may do.

    A chat or user written a moment ago is not written again (see `people.RecentlySeen`).
    """

    def __init__(self, settings: Settings, recent: people.RecentlySeen) -> None:
        self._settings = settings
        self._recent = recent

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        chat: Chat | None = data.get("event_chat")
        session: AsyncSession = data["session"]
        wrote = False
        if chat is not None:
            wrote |= await self._remember_chat(session, chat)
        person: people.Person | None = None
        if user is not None and not user.is_bot:
            person, written = await self._remember_user(session, user)
            wrote |= written
        if wrote:
            # Release SQLite's write lock now: the handler's services write in their own sessions.
            await session.commit()
        if person is None or user is None:
            data["access"] = None
            data["language"] = self._settings.default_language
        else:
            data["access"] = decide_access(self._settings, user.id, person.access)
            data["language"] = person.language or language_of(
                user.language_code, self._settings.default_language
            )
        return await handler(event, data)

    async def _remember_chat(self, session: AsyncSession, chat: Chat) -> bool:
        title = chat.title or chat.full_name if chat.type != "private" else None
        fingerprint = (chat.type, title)
        if self._recent.chat_is_fresh(chat.id, fingerprint):
            return False
        await people.remember_chat(session, chat.id, chat.type, title)
        self._recent.saw_chat(chat.id, fingerprint)
        return True

    async def _remember_user(
        self, session: AsyncSession, user: User
    ) -> tuple[people.Person, bool]:
        fingerprint = (user.username, user.first_name, user.language_code)
        known = self._recent.user(user.id, fingerprint)
        if known is not None:
            return known, False
        record = await people.remember_user(
            session, user.id, user.username, user.first_name, user.language_code
        )
        person = people.Person(language=record.language, access=record.access)
        self._recent.saw_user(user.id, fingerprint, person)
        return person, True


class LanguageMiddleware(I18nMiddleware):
    """aiogram's i18n context, with the language the AccessMiddleware chose."""

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        return str(data.get("language") or self.i18n.default_locale)
