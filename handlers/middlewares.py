"""Per-update context: one database session, the user and chat records, access and locale."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject
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
    """Records who wrote (clearing a "blocked" mark) and decides what they may do."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user = data.get("event_from_user")
        chat = data.get("event_chat")
        session: AsyncSession = data["session"]
        if chat is not None:
            title = chat.title or chat.full_name if chat.type != "private" else None
            await people.remember_chat(session, chat.id, chat.type, title)
        if user is not None and not user.is_bot:
            record = await people.remember_user(
                session, user.id, user.username, user.first_name, user.language_code
            )
            data["user_record"] = record
            data["access"] = decide_access(self._settings, user.id, record.access)
            data["language"] = record.language or language_of(
                user.language_code, self._settings.default_language
            )
        else:
            data["access"] = None
            data["language"] = self._settings.default_language
        # Release SQLite's write lock now: the handler's services write in sessions of their own.
        await session.commit()
        return await handler(event, data)


class LanguageMiddleware(I18nMiddleware):
    """aiogram's i18n context, with the language the AccessMiddleware chose."""

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        return str(data.get("language") or self.i18n.default_locale)
