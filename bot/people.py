"""Who talks to the bot: users and chats, their access and language, group notices.

`People` is the one owner of these facts: it records who wrote, decides access, and keeps its
short-lived cache true by forgetting whatever it changes itself.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import notices
from bot.access import Access, decide_access
from bot.config import Settings
from bot.i18n import resolve_language
from bot.ids import parse_id
from bot.invalidation import CHAT_BLOCKED, CHAT_CLEARED, USER_CHANGED, Invalidation
from bot.notices import Translations
from bot.notify import NoticeButtons, Notifier
from storage import people as store
from storage.db import utcnow

MAX_REMEMBERED = 100_000
SEEN_TTL = 60.0
ACCESS_REQUEST_EVERY = timedelta(days=1)
ACCESS_NOTICE = "access"
# Telegram usernames: 4–32 letters, digits and underscores (old ones may be 4 long).
USERNAME = re.compile(r"[A-Za-z0-9_]{4,32}")


@dataclass(frozen=True, slots=True)
class Sender:
    """The user of an update, as Telegram describes them."""

    id: int
    username: str | None
    first_name: str | None
    language_code: str | None


@dataclass(frozen=True, slots=True)
class ChatSeen:
    """The chat of an update: its id, type and (for groups) title."""

    id: int
    type: str
    title: str | None


@dataclass(frozen=True, slots=True)
class Person:
    """What an update needs to know about its sender: their language and stored access."""

    language: str | None
    access: bool | None


@dataclass(frozen=True, slots=True)
class Visitor:
    """The access decision and the language for one update (access is None without a user)."""

    access: Access | None
    language: str


@dataclass(frozen=True, slots=True)
class Known:
    """A user the bot has seen, for admins' answers ("Alex (@alex) may now order")."""

    id: int
    first_name: str | None
    username: str | None


class RecentlySeen:
    """Chats and users written in the last `ttl` seconds, so their next update writes nothing,
    and users' favourites read in that time, so a menu reads nothing.

    Without it every update paid two upserts and a read before its handler ran. `People` forgets
    whatever it changes, and (with Redis) so does every other instance (`bot.invalidation`);
    without Redis another instance sharing the database sees a change within `ttl`. A chat
    remembered as blocked is written on its next update, which clears the mark.
    """

    def __init__(self, ttl: float = SEEN_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._chats: dict[int, tuple[float, tuple[object, ...], bool]] = {}
        self._users: dict[int, tuple[float, tuple[object, ...], Person]] = {}
        self._favourites: dict[int, tuple[float, tuple[int, ...]]] = {}

    def chat_is_fresh(self, chat_id: int, fingerprint: tuple[object, ...]) -> bool:
        entry = self._chats.get(chat_id)
        return (
            entry is not None
            and entry[0] > self._clock()
            and entry[1] == fingerprint
            and not entry[2]
        )

    def chat_marked_blocked(self, chat_id: int) -> bool:
        entry = self._chats.get(chat_id)
        return entry is not None and entry[2]

    def user(self, user_id: int, fingerprint: tuple[object, ...]) -> Person | None:
        entry = self._users.get(user_id)
        if entry is None or entry[0] <= self._clock() or entry[1] != fingerprint:
            return None
        return entry[2]

    def saw_chat(self, chat_id: int, fingerprint: tuple[object, ...]) -> None:
        self._trim(self._chats)
        self._chats[chat_id] = (self._clock() + self._ttl, fingerprint, False)

    def saw_user(self, user_id: int, fingerprint: tuple[object, ...], person: Person) -> None:
        self._trim(self._users)
        self._users[user_id] = (self._clock() + self._ttl, fingerprint, person)

    def favourites(self, user_id: int) -> tuple[int, ...] | None:
        entry = self._favourites.get(user_id)
        return entry[1] if entry is not None and entry[0] > self._clock() else None

    def saw_favourites(self, user_id: int, services: tuple[int, ...]) -> None:
        self._trim(self._favourites)
        self._favourites[user_id] = (self._clock() + self._ttl, services)

    def chat_blocked(self, chat_id: int) -> None:
        """The chat blocked the bot: its next update must be written (an unknown chat is)."""
        entry = self._chats.get(chat_id)
        if entry is not None:
            self._chats[chat_id] = (entry[0], entry[1], True)

    def chat_cleared(self, chat_id: int) -> None:
        """Another instance wrote the chat's update, clearing the mark: nothing to write here."""
        entry = self._chats.get(chat_id)
        if entry is not None:
            self._chats[chat_id] = (entry[0], entry[1], False)

    def forget_chat(self, chat_id: int) -> None:
        self._chats.pop(chat_id, None)

    def forget_user(self, user_id: int) -> None:
        self._users.pop(user_id, None)
        self._favourites.pop(user_id, None)

    def clear(self) -> None:
        """Forget everything (changes may have been missed while Redis was unreachable)."""
        self._chats.clear()
        self._users.clear()
        self._favourites.clear()

    def _trim(self, entries: dict[int, Any]) -> None:
        """Keep memory bounded: drop expired entries when full, or all of them if none is."""
        if len(entries) < MAX_REMEMBERED:
            return
        now = self._clock()
        for key in [key for key, entry in entries.items() if entry[0] <= now]:
            del entries[key]
        if len(entries) >= MAX_REMEMBERED:
            entries.clear()


class People:
    """Records who wrote, decides what they may do, and changes access and language."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        i18n: Translations,
        buttons: NoticeButtons,
        recent: RecentlySeen | None = None,
        bus: Invalidation | None = None,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._notifier = Notifier(settings, i18n)
        self._buttons = buttons
        self._recent = recent or RecentlySeen()
        self._bus = bus or Invalidation(None)
        # What other instances change reaches this cache before their admin sees an answer.
        self._bus.on(USER_CHANGED, self._recent.forget_user)
        self._bus.on(CHAT_BLOCKED, self._recent.chat_blocked)
        self._bus.on(CHAT_CLEARED, self._recent.chat_cleared)
        self._bus.on_reset(self._recent.clear)

    async def visit(self, chat: ChatSeen | None, user: Sender | None) -> Visitor:
        """Remember the chat and the user of an update (clearing a "blocked" mark) in one
        transaction, skipped for those written a moment ago and not marked blocked since;
        decide access and language."""
        chat_fresh = chat is None or self._recent.chat_is_fresh(chat.id, _chat_print(chat))
        was_blocked = chat is not None and self._recent.chat_marked_blocked(chat.id)
        person = None if user is None else self._recent.user(user.id, _user_print(user))
        if not chat_fresh or (user is not None and person is None):
            async with self._sessions.begin() as session:
                if chat is not None and not chat_fresh:
                    await store.remember_chat(session, chat.id, chat.type, chat.title)
                if user is not None and person is None:
                    person = await self._remember_user(session, user)
            if chat is not None and not chat_fresh:
                self._recent.saw_chat(chat.id, _chat_print(chat))
                if was_blocked:  # the other instances marked it too: they need not write
                    await self._bus.publish(CHAT_CLEARED, chat.id)
            if user is not None and person is not None:
                self._recent.saw_user(user.id, _user_print(user), person)
        default = self._settings.default_language
        if user is None or person is None:
            return Visitor(access=None, language=default)
        return Visitor(
            access=decide_access(self._settings, user.id, person.access),
            language=resolve_language(person.language, user.language_code, default),
        )

    async def _remember_user(self, session: AsyncSession, user: Sender) -> Person:
        language, access = await store.remember_user(
            session, user.id, user.username, user.first_name, user.language_code
        )
        # Read now, in the transaction the visit pays anyway: most visitors open a menu next,
        # which shows whether they have favourites.
        if self._recent.favourites(user.id) is None:
            found = tuple(await store.favourite_services(session, user.id))
            self._recent.saw_favourites(user.id, found)
        return Person(language=language, access=access)

    async def set_language(self, user_id: int, language: str) -> None:
        async with self._sessions.begin() as session:
            await store.set_user_language(session, user_id, language)
        await self._forget_user_everywhere(user_id)  # their next update reads the new language

    async def find(self, text: str) -> Known | None:
        """The person an admin names: a Telegram user id (seen or not), or the @username of
        someone who wrote to the bot; None for anything else.

        The one rule for /allow, /deny, /credit, /debit and /wallet: a username is only known
        from the updates its holder sent, so a name never seen finds nobody.
        """
        user_id = parse_id(text)
        username = text.strip().removeprefix("@")
        if user_id is None and not USERNAME.fullmatch(username):
            return None
        async with self._sessions() as session:
            if user_id is not None:
                user = await store.get_user(session, user_id)
            else:
                user = await store.user_by_username(session, username)
        if user is None:
            return None if user_id is None else Known(user_id, None, None)
        return Known(user.id, user.first_name, user.username)

    async def set_access(self, user_id: int, allowed: bool) -> Known:
        """Store /allow or /deny (a user never seen gets a row); who it is, as far as known.
        Someone allowed is told, in the same transaction."""
        async with self._sessions.begin() as session:
            before = await store.get_user(session, user_id)
            was_allowed = before is not None and before.access is True
            await store.set_user_access(session, user_id, allowed)
            user = await store.get_user(session, user_id)
            # Told once: a repeated /allow (or Telegram redelivering it) changes nothing.
            if allowed and not was_allowed:
                await self._notifier.tell(
                    session, [user_id], notices.access_granted_text, kind=ACCESS_NOTICE
                )
        # Their next update, on any instance, reads the new decision: published before the
        # admin's answer is sent.
        await self._forget_user_everywhere(user_id)
        if user is None:
            return Known(user_id, None, None)
        return Known(user_id, user.first_name, user.username)

    async def request_access(self, user: Sender) -> bool:
        """ "Ask for access": the admins get the request (with Allow/Deny) at most once a day per
        person; False when this person asked within the last day already."""
        since = utcnow() - ACCESS_REQUEST_EVERY
        async with self._sessions.begin() as session:
            if not await store.note_access_request(session, user.id, since):
                return False
            who = notices.person_mention(user.id, user.first_name)
            username = user.username
            await self._notifier.tell_admins(
                session,
                lambda _: notices.access_request_text(who, user.id, username, _),
                kind=ACCESS_NOTICE,
                buttons=lambda _: self._buttons.access_request(user.id, _),
            )
        return True

    async def toggle_favourite(self, user_id: int, service_id: int) -> bool:
        """☆ on a service card: True when the service is a favourite now."""
        async with self._sessions.begin() as session:
            starred = await store.toggle_favourite(session, user_id, service_id)
        await self._forget_user_everywhere(user_id)  # every instance reads the new list
        return starred

    async def favourites(self, user_id: int) -> tuple[int, ...]:
        """The user's starred service ids, oldest first (read once a minute at most)."""
        known = self._recent.favourites(user_id)
        if known is not None:
            return known
        async with self._sessions() as session:
            found = tuple(await store.favourite_services(session, user_id))
        self._recent.saw_favourites(user_id, found)
        return found

    async def set_group_notices(self, chat_id: int, notify: bool) -> None:
        async with self._sessions.begin() as session:
            await store.set_chat_notify(session, chat_id, notify)

    def chat_blocked(self, chat_id: int) -> None:
        """The outbox saw a 403 (and stored the mark): the chat's next update, on whichever
        instance, must be written, which clears the mark."""
        self._recent.chat_blocked(chat_id)
        self._bus.publish_soon(CHAT_BLOCKED, chat_id)

    async def _forget_user_everywhere(self, user_id: int) -> None:
        self._recent.forget_user(user_id)
        await self._bus.publish(USER_CHANGED, user_id)


def _chat_print(chat: ChatSeen) -> tuple[object, ...]:
    return (chat.type, chat.title)


def _user_print(user: Sender) -> tuple[object, ...]:
    return (user.username, user.first_name, user.language_code)
