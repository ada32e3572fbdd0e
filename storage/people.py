"""Chats and users: who talks to the bot, in which language, and who may order."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import utcnow
from storage.models import Chat, User
from storage.upsert import upsert

MAX_REMEMBERED = 100_000


async def remember_chat(
    session: AsyncSession, chat_id: int, chat_type: str, title: str | None
) -> None:
    """Record a chat seen in an update; any update from it clears a "blocked" mark."""
    now = utcnow()
    values = {
        "id": chat_id,
        "type": chat_type,
        "title": title,
        "blocked": False,
        "blocked_at": None,
        "notify": False,
        "created_at": now,
        "updated_at": now,
    }
    await upsert(
        session,
        Chat.__table__,  # type: ignore[arg-type]
        values,
        ["id"],
        ["type", "title", "blocked", "blocked_at", "updated_at"],
    )


async def remember_user(
    session: AsyncSession,
    user_id: int,
    username: str | None,
    first_name: str | None,
    telegram_language: str | None,
) -> User:
    """Record a user seen in an update and return the stored row (language, access)."""
    now = utcnow()
    values = {
        "id": user_id,
        "username": username,
        "first_name": first_name,
        "telegram_language": telegram_language,
        "created_at": now,
        "updated_at": now,
    }
    await upsert(
        session,
        User.__table__,  # type: ignore[arg-type]
        values,
        ["id"],
        ["username", "first_name", "telegram_language", "updated_at"],
    )
    user = await session.get(User, user_id, populate_existing=True)
    assert user is not None  # just upserted
    return user


async def get_user(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def set_user_language(session: AsyncSession, user_id: int, language: str) -> None:
    await session.execute(update(User).where(User.id == user_id).values(language=language))


async def set_user_access(session: AsyncSession, user_id: int, access: bool | None) -> None:
    """Store /allow (True) or /deny (False); creates the user row if the id was never seen."""
    now = utcnow()
    values = {"id": user_id, "access": access, "created_at": now, "updated_at": now}
    await upsert(
        session,
        User.__table__,  # type: ignore[arg-type]
        values,
        ["id"],
        ["access", "updated_at"],
    )


async def get_chat(session: AsyncSession, chat_id: int) -> Chat | None:
    return await session.get(Chat, chat_id)


async def mark_chat_blocked(session: AsyncSession, chat_id: int) -> None:
    now = utcnow()
    await session.execute(
        update(Chat).where(Chat.id == chat_id).values(blocked=True, blocked_at=now)
    )


async def set_chat_notify(session: AsyncSession, chat_id: int, notify: bool) -> None:
    await session.execute(update(Chat).where(Chat.id == chat_id).values(notify=notify))


async def notify_chat_ids(session: AsyncSession) -> Sequence[int]:
    """Groups an admin subscribed with /notify_here (and that did not block the bot)."""
    result = await session.execute(
        select(Chat.id).where(Chat.notify.is_(True), Chat.blocked.is_(False))
    )
    return result.scalars().all()


@dataclass(frozen=True, slots=True)
class Person:
    """What an update needs to know about its sender: their language and stored access."""

    language: str | None
    access: bool | None


class RecentlySeen:
    """Chats and users written in the last `ttl` seconds, so their next update writes nothing.

    Without it every update paid two upserts and a read before its handler ran. Whatever
    changes a cached fact in this process forgets it (`forget_user` after /language, /allow,
    /deny; `forget_chat` when the outbox marks a chat blocked), so the next update writes again.
    Another instance sharing the database sees such a change within `ttl`.
    """

    def __init__(self, ttl: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._chats: dict[int, tuple[float, tuple[object, ...]]] = {}
        self._users: dict[int, tuple[float, tuple[object, ...], Person]] = {}

    def chat_is_fresh(self, chat_id: int, fingerprint: tuple[object, ...]) -> bool:
        entry = self._chats.get(chat_id)
        return entry is not None and entry[0] > self._clock() and entry[1] == fingerprint

    def user(self, user_id: int, fingerprint: tuple[object, ...]) -> Person | None:
        entry = self._users.get(user_id)
        if entry is None or entry[0] <= self._clock() or entry[1] != fingerprint:
            return None
        return entry[2]

    def saw_chat(self, chat_id: int, fingerprint: tuple[object, ...]) -> None:
        self._trim(self._chats)
        self._chats[chat_id] = (self._clock() + self._ttl, fingerprint)

    def saw_user(self, user_id: int, fingerprint: tuple[object, ...], person: Person) -> None:
        self._trim(self._users)
        self._users[user_id] = (self._clock() + self._ttl, fingerprint, person)

    def forget_chat(self, chat_id: int) -> None:
        self._chats.pop(chat_id, None)

    def forget_user(self, user_id: int) -> None:
        self._users.pop(user_id, None)

    def _trim(self, entries: dict[int, Any]) -> None:
        """Keep memory bounded: drop expired entries when full, or all of them if none is."""
        if len(entries) < MAX_REMEMBERED:
            return
        now = self._clock()
        for key in [key for key, entry in entries.items() if entry[0] <= now]:
            del entries[key]
        if len(entries) >= MAX_REMEMBERED:
            entries.clear()
