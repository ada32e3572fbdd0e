"""Chats and users: who talks to the bot, in which language, and who may order."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import utcnow
from storage.models import Chat, Favourite, User
from storage.upsert import upsert, upsert_statement


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
) -> tuple[str | None, bool | None]:
    """Record a user seen in an update; their stored language and access, from the same
    statement."""
    now = utcnow()
    values = {
        "id": user_id,
        "username": username,
        "first_name": first_name,
        "telegram_language": telegram_language,
        "created_at": now,
        "updated_at": now,
    }
    dialect = session.get_bind().dialect.name
    row = (await session.execute(_remember_user_statement(dialect), values)).one()
    return row.language, row.access


@functools.cache
def _remember_user_statement(dialect: str) -> Any:
    table: Any = User.__table__
    upserting = upsert_statement(
        dialect, table, ["id"], ["username", "first_name", "telegram_language", "updated_at"]
    )
    return upserting.returning(table.c.language, table.c.access)


async def get_user(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def user_by_username(session: AsyncSession, username: str) -> User | None:
    """The user who last wrote with this @username (any case): a username can move from one
    account to another, and the latest holder is the one who wrote most recently."""
    rows = await session.execute(
        select(User)
        .where(func.lower(User.username) == username.lower())
        .order_by(User.updated_at.desc(), User.id.desc())
        .limit(1)
    )
    return rows.scalar_one_or_none()


async def lock_user_access(session: AsyncSession, user_id: int) -> bool | None:
    """Lock the user's row until the transaction ends (creating it if it was never written),
    and read their stored access: /allow (True), /deny (False) or neither (None).

    One user's confirmations then run one at a time on every instance, so a spending limit
    sees what the other one spent. PostgreSQL locks the row (`FOR UPDATE`); SQLite has one
    writer at a time, and a write first takes its lock before anything is read (a read
    first would let two transactions read the same sum, then one fail to write).
    """
    if session.get_bind().dialect.name == "postgresql":
        statement: Any = select(User.access).where(User.id == user_id).with_for_update()
    else:
        statement = (
            update(User)
            .where(User.id == user_id)
            .values(access=User.access, updated_at=User.updated_at)
            .returning(User.access)
            .execution_options(synchronize_session=False)
        )
    row = (await session.execute(statement)).one_or_none()
    if row is None:  # never seen: a new row holds the lock as well as an old one
        now = utcnow()
        values = {"id": user_id, "created_at": now, "updated_at": now}
        await upsert(session, User.__table__, values, ["id"], [])  # type: ignore[arg-type]
        row = (await session.execute(statement)).one()
    access: bool | None = row[0]
    return access


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


async def note_access_request(session: AsyncSession, user_id: int, since: datetime) -> bool:
    """Record that the user asks for access now, unless they asked after `since`; True when
    this request is the one to pass on (a compare-and-set: two presses at once pass one)."""
    result = await session.execute(
        update(User)
        .where(
            User.id == user_id,
            or_(User.access_requested_at.is_(None), User.access_requested_at < since),
        )
        .values(access_requested_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


async def toggle_favourite(session: AsyncSession, user_id: int, service_id: int) -> bool:
    """Star the service, or unstar it if it was starred; True when it is a favourite now."""
    removed = await session.execute(
        delete(Favourite).where(Favourite.user_id == user_id, Favourite.service_id == service_id)
    )
    if getattr(removed, "rowcount", 0):
        return False
    await upsert(
        session,
        Favourite.__table__,  # type: ignore[arg-type]
        {"user_id": user_id, "service_id": service_id, "created_at": utcnow()},
        ["user_id", "service_id"],
        [],
    )
    return True


async def favourite_services(session: AsyncSession, user_id: int) -> list[int]:
    """The user's starred service ids, oldest first."""
    rows = await session.execute(
        select(Favourite.service_id)
        .where(Favourite.user_id == user_id)
        .order_by(Favourite.created_at, Favourite.service_id)
    )
    return list(rows.scalars())
