"""A Bot whose session records requests instead of sending them (aiogram's tests/mocked_bot.py).

`SendMessage`/`EditMessageText` get a plausible `Message` back, `GetMe` the bot's user,
everything else `True`. No HTTP,
no JSON: what is left is the bot's own work (and aiogram's) for each update.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.base import BaseSession
from aiogram.enums import ParseMode
from aiogram.methods import (
    EditMessageReplyMarkup,
    EditMessageText,
    GetMe,
    SendMessage,
    TelegramMethod,
)
from aiogram.methods.base import TelegramType
from aiogram.types import Chat, InlineKeyboardMarkup, Message, User

TOKEN = "123456:BENCH-token"
BOT_USER = User(id=123456, is_bot=True, first_name="Bench Bot", username="bench_bot")


class RecordingSession(BaseSession):
    """Keeps every method sent (all of them, or only counts when `keep` is False)."""

    def __init__(self, *, keep: bool = True) -> None:
        super().__init__()
        self.keep = keep
        self.requests: list[TelegramMethod[Any]] = []
        self.counts: Counter[str] = Counter()
        self._next_message_id = 1
        self._date = datetime.now(UTC)

    async def close(self) -> None:
        pass

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 - aiogram's signature
    ) -> TelegramType:
        self.counts[type(method).__name__] += 1
        if self.keep:
            self.requests.append(method)
        if isinstance(method, SendMessage):
            return self._message(method.chat_id, None, method.text, method.reply_markup)  # type: ignore[return-value]
        if isinstance(method, EditMessageText | EditMessageReplyMarkup):
            text = getattr(method, "text", "")
            return self._message(method.chat_id, method.message_id, text, method.reply_markup)  # type: ignore[return-value]
        if isinstance(method, GetMe):
            return BOT_USER  # type: ignore[return-value]
        return True  # type: ignore[return-value]

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,  # noqa: ASYNC109 - aiogram's signature
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:  # pragma: no cover - never used by the bot
        yield b""

    def texts(self) -> list[str]:
        """The text of every message sent or edited, oldest first."""
        return [
            str(request.text)
            for request in self.requests
            if isinstance(request, SendMessage | EditMessageText)
        ]

    def _message(self, chat_id: Any, message_id: int | None, text: Any, markup: Any) -> Message:
        if message_id is None:
            message_id, self._next_message_id = self._next_message_id, self._next_message_id + 1
        chat_number = int(chat_id) if isinstance(chat_id, int | str) else 0
        return Message(
            message_id=message_id,
            date=self._date,
            chat=Chat(id=chat_number, type="private" if chat_number > 0 else "supergroup"),
            from_user=BOT_USER,
            text=str(text),
            reply_markup=markup if isinstance(markup, InlineKeyboardMarkup) else None,
        )


def recording_bot(*, keep: bool = True) -> tuple[Bot, RecordingSession]:
    session = RecordingSession(keep=keep)
    bot = Bot(TOKEN, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))
    return bot, session
