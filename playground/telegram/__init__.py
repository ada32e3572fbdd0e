"""An offline Telegram: a Bot API emulator with a scriptable user side, for tests and demos."""

from playground.telegram.server import (
    ApiError,
    BotError,
    BotRequest,
    EmulatorStats,
    RateLimits,
    TelegramEmulator,
    parse_html,
)
from playground.telegram.users import Button, CallbackAnswer, ChatLog, ChatUser, Message

__all__ = [
    "ApiError",
    "BotError",
    "BotRequest",
    "Button",
    "CallbackAnswer",
    "ChatLog",
    "ChatUser",
    "EmulatorStats",
    "Message",
    "RateLimits",
    "TelegramEmulator",
    "parse_html",
]
