"""An offline Telegram: a Bot API emulator with a scriptable user side, for tests and demos."""

from playground.telegram.errors import ApiError
from playground.telegram.html import parse_html, utf16_length
from playground.telegram.limits import RateLimits
from playground.telegram.payments import PaymentFailed, StarPayments
from playground.telegram.server import TelegramEmulator
from playground.telegram.state import BotError, BotRequest, EmulatorStats
from playground.telegram.users import (
    Button,
    CallbackAnswer,
    ChatLog,
    ChatUser,
    Message,
    UserApi,
)
from playground.telegram.webhook import SECRET_HEADER, Webhook, WebhookDelivery

__all__ = [
    "SECRET_HEADER",
    "ApiError",
    "BotError",
    "BotRequest",
    "Button",
    "CallbackAnswer",
    "ChatLog",
    "ChatUser",
    "EmulatorStats",
    "Message",
    "PaymentFailed",
    "RateLimits",
    "StarPayments",
    "TelegramEmulator",
    "UserApi",
    "Webhook",
    "WebhookDelivery",
    "parse_html",
    "utf16_length",
]
