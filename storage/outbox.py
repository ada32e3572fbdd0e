"""The outbox: messages waiting to be sent, claimed with a lease, paced per chat as data.

Everyone who wants to tell a chat something calls `enqueue` inside their own transaction, so the
message exists exactly when the change it announces does. Only the outbox sender reads it back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage import leases
from storage.db import utcnow
from storage.models import Chat, OutboxMessage, User
from storage.upsert import upsert

NOTICE = "notice"


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """One claimed outbox row, detached from any session."""

    id: int
    chat_id: int
    text: str
    reply_markup: dict[str, Any] | None
    kind: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Recipient:
    """What decides how a chat is written to: its language facts and whether it blocked us."""

    chat_id: int
    blocked: bool
    chat_language: str | None
    user_language: str | None
    telegram_language: str | None


_ENQUEUE = insert(cast(Table, OutboxMessage.__table__))  # Core: no ORM work per message


async def enqueue(
    session: AsyncSession,
    chat_id: int,
    text: str,
    reply_markup: dict[str, Any] | None = None,
    *,
    kind: str = NOTICE,
    not_before: datetime | None = None,
) -> None:
    """Queue one message (HTML text) for `chat_id`; it is sent once the transaction commits."""
    now = utcnow()
    connection = await session.connection()
    await connection.execute(
        _ENQUEUE,
        {
            "chat_id": chat_id,
            "text": text,
            "reply_markup": reply_markup,
            "kind": kind,
            "attempts": 0,
            "not_before": not_before or now,
            "created_at": now,
        },
    )


async def claim_due(
    session: AsyncSession, owner: str, *, now: datetime, lease_seconds: float, limit: int
) -> list[QueuedMessage]:
    """Lease the oldest sendable message of up to `limit` chats, in one conditional UPDATE.

    A message is sendable when it is the oldest one of its chat (so a chat's messages arrive in
    order), it is due, nobody holds its lease, and the chat may be written to now. Rows of a chat
    that is not free are skipped, so one slow chat never holds up the others. The lease runs
    `lease_seconds` by the database's clock (see `storage.leases`); `now` is the caller's clock,
    for what is due.
    """
    earlier = aliased(OutboxMessage)
    is_head = ~exists().where(
        earlier.chat_id == OutboxMessage.chat_id, earlier.id < OutboxMessage.id
    )
    picked = (
        select(OutboxMessage.id)
        .outerjoin(Chat, Chat.id == OutboxMessage.chat_id)
        .where(
            is_head,
            OutboxMessage.not_before <= now,
            leases.lease_is_free(session, OutboxMessage, now),
            or_(Chat.next_send_at.is_(None), Chat.next_send_at <= now),
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        # Another instance claiming at the same moment skips these rows instead of waiting.
        picked = picked.with_for_update(skip_locked=True, of=OutboxMessage)
    claimed = await session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.id.in_(picked.scalar_subquery()),
            leases.lease_is_free(session, OutboxMessage, now),
        )
        .values(lease_owner=owner, lease_until=leases.lease_end(session, now, lease_seconds))
        .returning(
            OutboxMessage.id,
            OutboxMessage.chat_id,
            OutboxMessage.text,
            OutboxMessage.reply_markup,
            OutboxMessage.kind,
            OutboxMessage.attempts,
        )
        .execution_options(synchronize_session=False)
    )
    rows = [QueuedMessage(*row) for row in claimed.all()]
    return sorted(rows, key=lambda message: message.id)


async def renew_leases(
    session: AsyncSession, message_ids: Iterable[int], owner: str, *, now: datetime, seconds: float
) -> set[int]:
    """Extend the sender's leases on messages it is still working on; the ids it still holds."""
    return await leases.renew(session, OutboxMessage, message_ids, owner, now=now, seconds=seconds)


async def release(session: AsyncSession, message_ids: Iterable[int], owner: str) -> None:
    """Give leases back on messages left unsent (the sender stops, or gave up on its lease)."""
    await leases.release(session, OutboxMessage, message_ids, owner)


async def mark_sent(session: AsyncSession, message_id: int) -> None:
    """Telegram accepted the message: only now may it leave the outbox."""
    await _remove(session, message_id)


async def drop(session: AsyncSession, message_id: int) -> None:
    """Remove a message that can never be delivered."""
    await _remove(session, message_id)


async def _remove(session: AsyncSession, message_id: int) -> None:
    await session.execute(
        delete(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .execution_options(synchronize_session=False)
    )


async def postpone(
    session: AsyncSession, message_id: int, *, owner: str, not_before: datetime, attempts: int
) -> None:
    """Give the message back to the queue, due again at `not_before`.

    Only while `owner` still holds its lease: another instance's newer claim is not undone.
    """
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.lease_owner == owner)
        .values(not_before=not_before, attempts=attempts, lease_owner=None, lease_until=None)
        .execution_options(synchronize_session=False)
    )


async def drop_chat(session: AsyncSession, chat_id: int) -> int:
    """Remove every queued message of a chat (it blocked the bot); how many were removed."""
    result = await session.execute(
        delete(OutboxMessage)
        .where(OutboxMessage.chat_id == chat_id)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def move_chat(session: AsyncSession, old_chat_id: int, new_chat_id: int) -> None:
    """A group became a supergroup: its queued messages go to the new id."""
    await ensure_chat(session, new_chat_id)
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.chat_id == old_chat_id)
        .values(chat_id=new_chat_id, lease_owner=None, lease_until=None)
        .execution_options(synchronize_session=False)
    )


def _chat_type_guess(chat_id: int) -> str:
    # Telegram gives groups and channels negative ids; the next update from the chat corrects it.
    return "private" if chat_id > 0 else "group"


async def ensure_chat(session: AsyncSession, chat_id: int) -> None:
    """Create the chats row of a chat never seen in an update (e.g. one of NOTIFY_CHAT_IDS)."""
    now = utcnow()
    values = {
        "id": chat_id,
        "type": _chat_type_guess(chat_id),
        "created_at": now,
        "updated_at": now,
    }
    await upsert(session, Chat.__table__, values, ["id"], [])  # type: ignore[arg-type]


async def pace_chat(session: AsyncSession, chat_id: int, next_send_at: datetime) -> None:
    """Record the earliest time the chat may be written to next (creating its row if needed)."""
    now = utcnow()
    values = {
        "id": chat_id,
        "type": _chat_type_guess(chat_id),
        "next_send_at": next_send_at,
        "created_at": now,
        "updated_at": now,
    }
    await upsert(session, Chat.__table__, values, ["id"], ["next_send_at"])  # type: ignore[arg-type]


async def recipients(session: AsyncSession, chat_ids: Iterable[int]) -> dict[int, Recipient]:
    """Language facts and the blocked mark of each chat; a chat never seen gets empty facts.

    A private chat's id is its user's id, so the user's own language choice is found too.
    """
    ids = sorted(set(chat_ids))
    if not ids:
        return {}
    chats = {
        chat_id: (bool(blocked), language)
        for chat_id, blocked, language in await session.execute(
            select(Chat.id, Chat.blocked, Chat.language).where(Chat.id.in_(ids))
        )
    }
    users = {
        user_id: (language, telegram_language)
        for user_id, language, telegram_language in await session.execute(
            select(User.id, User.language, User.telegram_language).where(User.id.in_(ids))
        )
    }
    found: dict[int, Recipient] = {}
    for chat_id in ids:
        blocked, chat_language = chats.get(chat_id, (False, None))
        user_language, telegram_language = users.get(chat_id, (None, None))
        found[chat_id] = Recipient(
            chat_id, blocked, chat_language, user_language, telegram_language
        )
    return found


async def subscribed_chats(session: AsyncSession, configured: Iterable[int]) -> list[int]:
    """NOTIFY_CHAT_IDS plus the groups that chose /notify_here, less chats that blocked us."""
    configured_ids = set(configured)
    rows = await session.execute(
        select(Chat.id, Chat.notify, Chat.blocked).where(
            or_(Chat.notify.is_(True), Chat.id.in_(configured_ids))
        )
    )
    chosen = set(configured_ids)
    for chat_id, notify, blocked in rows:
        if blocked:
            chosen.discard(chat_id)
        elif notify:
            chosen.add(chat_id)
    return sorted(chosen)


async def pending(session: AsyncSession, chat_id: int | None = None) -> Sequence[OutboxMessage]:
    """The queue, oldest first (for tests and the admin's view)."""
    statement = select(OutboxMessage).order_by(OutboxMessage.id)
    if chat_id is not None:
        statement = statement.where(OutboxMessage.chat_id == chat_id)
    return (await session.execute(statement)).scalars().all()


async def queue_length(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(OutboxMessage)) or 0)
