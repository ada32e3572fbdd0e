"""Fast in-process handler tests: real `Update`s fed to the real dispatcher (`dp.feed_update`),
with a bot whose session records what it would have sent. The panel is the sandbox.

    rig = await Rig.start(tmp_path)
    menu = await rig.send(ALICE, "/order", chat=GROUP)
    await rig.press(BOB, menu, "Instagram", chat=GROUP)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from aiogram import Bot, Dispatcher
from aiogram.fsm.storage.base import StorageKey
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageReplyMarkup,
    EditMessageText,
    SendMessage,
    TelegramMethod,
)
from aiogram.types import Chat, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update, User

from bot.app import Services, create_dispatcher, create_services
from bot.config import Settings, load_settings
from playground.telegram.recording import BOT_USER, RecordingSession, recording_bot

ADMIN = 1000
ALICE = 1001
BOB = 1002
GROUP = -100777
NAMES = {ADMIN: "Ada", ALICE: "Alice", BOB: "Bob"}


@dataclass
class Rig:
    services: Services
    dispatcher: Dispatcher
    bot: Bot
    session: RecordingSession
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @classmethod
    async def start(cls, tmp_path: Path, **overrides: Any) -> Rig:
        values: dict[str, Any] = {
            "bot_token": "123456:RIG-token",
            "panel_api_url": "sandbox",
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'rig.db'}",
            "admin_ids": [ADMIN],
            "allowed_user_ids": [ALICE, BOB],
        }
        settings: Settings = load_settings(**(values | overrides))
        services = await create_services(settings)
        bot, session = recording_bot()
        return cls(services, create_dispatcher(services), bot, session)

    async def stop(self) -> None:
        await self.dispatcher.storage.close()
        await self.services.close()

    # --- what a person does -----------------------------------------------------------------

    async def send(self, user_id: int, text: str, *, chat: int | None = None) -> list[Any]:
        """Type `text`; returns what the bot sent in answer (methods, oldest first)."""
        chat_id = chat if chat is not None else user_id
        payload: dict[str, Any] = {
            "message_id": next(self._ids),
            "date": datetime.now(UTC),
            "chat": self._chat(chat_id, user_id),
            "from": self._user(user_id),
            "text": text,
        }
        if text.startswith("/"):
            payload["entities"] = [
                {"type": "bot_command", "offset": 0, "length": len(text.split()[0])}
            ]
        return await self._feed({"message": payload})

    async def press(self, user_id: int, shown: Message, label: str) -> list[Any]:
        """Press the button whose text contains `label` on the bot's message `shown`."""
        return await self.press_data(user_id, shown, button(shown, label).callback_data or "")

    async def press_data(self, user_id: int, shown: Message, data: str) -> list[Any]:
        query = {
            "id": str(next(self._ids)),
            "from": self._user(user_id),
            "chat_instance": "1",
            "data": data,
            "message": shown.model_dump(by_alias=True, exclude_none=True),
        }
        return await self._feed({"callback_query": query})

    async def state_of(self, user_id: int, chat: int | None = None) -> tuple[str | None, Any]:
        key = StorageKey(
            bot_id=self.bot.id, chat_id=chat if chat is not None else user_id, user_id=user_id
        )
        storage = self.dispatcher.storage
        return await storage.get_state(key), await storage.get_data(key)

    # --- what the bot did -------------------------------------------------------------------

    async def _feed(self, fields: dict[str, Any]) -> list[Any]:
        before = len(self.session.requests)
        raw = {"update_id": next(self._ids), **fields}
        update = Update.model_validate(raw, context={"bot": self.bot})
        await self.dispatcher.feed_update(self.bot, update)
        return self.session.requests[before:]

    def _user(self, user_id: int) -> dict[str, Any]:
        name = NAMES.get(user_id, f"User{user_id}")
        return {"id": user_id, "is_bot": False, "first_name": name, "language_code": "en"}

    def _chat(self, chat_id: int, user_id: int) -> dict[str, Any]:
        if chat_id < 0:
            return {"id": chat_id, "type": "supergroup", "title": "Team"}
        return {"id": chat_id, "type": "private", "first_name": NAMES.get(user_id, "User")}


class MakeRig(Protocol):
    """The `make_rig` fixture: starts the test's rig with these settings overrides."""

    async def __call__(self, **overrides: Any) -> Rig: ...


def sent_messages(requests: list[TelegramMethod[Any]]) -> list[Message]:
    """The bot's messages among `requests`, as the chat would show them (sent or edited)."""
    shown: list[Message] = []
    for number, request in enumerate(requests, start=1):
        if isinstance(request, SendMessage | EditMessageText):
            markup = request.reply_markup
            message_id = getattr(request, "message_id", None) or 10_000 + number
            shown.append(
                Message(
                    message_id=message_id,
                    date=datetime.now(UTC),
                    chat=_chat(int(str(request.chat_id))),
                    from_user=BOT_USER,
                    text=str(request.text),
                    reply_markup=markup if isinstance(markup, InlineKeyboardMarkup) else None,
                )
            )
    return shown


def last_menu(requests: list[TelegramMethod[Any]]) -> Message:
    """The last message with inline buttons among `requests`."""
    menus = [message for message in sent_messages(requests) if message.reply_markup]
    assert menus, f"no inline keyboard in {requests}"
    return menus[-1]


def button(message: Message, label: str) -> InlineKeyboardButton:
    markup = message.reply_markup
    assert isinstance(markup, InlineKeyboardMarkup), message
    for row in markup.inline_keyboard:
        for candidate in row:
            if label in candidate.text:
                return candidate
    raise AssertionError(
        f"no button {label!r} in {[b.text for r in markup.inline_keyboard for b in r]}"
    )


def buttons(message: Message) -> list[InlineKeyboardButton]:
    markup = message.reply_markup
    assert isinstance(markup, InlineKeyboardMarkup), message
    return [candidate for row in markup.inline_keyboard for candidate in row]


def changes(requests: list[TelegramMethod[Any]]) -> list[TelegramMethod[Any]]:
    """What a press changed in the chat: every request but the answer to the press itself."""
    return [request for request in requests if not isinstance(request, AnswerCallbackQuery)]


def alerts(requests: list[TelegramMethod[Any]]) -> list[str]:
    return [
        str(request.text)
        for request in requests
        if isinstance(request, AnswerCallbackQuery) and request.show_alert
    ]


def _chat(chat_id: int) -> Chat:
    if chat_id < 0:
        return Chat(id=chat_id, type="supergroup", title="Team")
    return Chat(id=chat_id, type="private")


def edits(requests: list[TelegramMethod[Any]]) -> list[TelegramMethod[Any]]:
    return [r for r in requests if isinstance(r, EditMessageText | EditMessageReplyMarkup)]


__all__ = ["ADMIN", "ALICE", "BOB", "GROUP", "User"]
