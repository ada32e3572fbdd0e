"""Per-update context: who wrote (access and language, from `People`), the locale, and one
answer for every callback query."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Dispatcher
from aiogram.dispatcher.event.handler import HandlerObject
from aiogram.dispatcher.flags import get_flag
from aiogram.types import CallbackQuery, Chat, TelegramObject, User
from aiogram.utils.callback_answer import CallbackAnswer, CallbackAnswerMiddleware
from aiogram.utils.i18n import I18nMiddleware

from bot.people import ChatSeen, People, Sender

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class VisitorMiddleware(BaseMiddleware):
    """Tells `People` who wrote and puts its decision in the handler data: `access` (None for
    updates without a person) and `language`."""

    def __init__(self, people: People) -> None:
        self._people = people

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        chat: Chat | None = data.get("event_chat")
        sender = None
        if user is not None and not user.is_bot:
            sender = Sender(user.id, user.username, user.first_name, user.language_code)
        seen = None
        if chat is not None:
            title = (chat.title or chat.full_name) if chat.type != "private" else None
            seen = ChatSeen(chat.id, chat.type, title)
        visitor = await self._people.visit(seen, sender)
        data["access"] = visitor.access
        data["language"] = visitor.language
        return await handler(event, data)


class LanguageMiddleware(I18nMiddleware):
    """aiogram's i18n context, with the language `People` chose."""

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        return str(data.get("language") or self.i18n.default_locale)


class AnswerCallbacks(CallbackAnswerMiddleware):
    """aiogram's one answer per callback query, with two differences: a text given in the
    handler's flags may be a lazy translation (rendered in the presser's language), and a
    handler that fails leaves the answer to the error handlers, which explain the failure."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if not isinstance(event, CallbackQuery):
            return await handler(event, data)
        answer = self.construct_callback_answer(properties=get_flag(data, "callback_answer"))
        if answer.text is not None:
            answer = _rendered(answer)
        data["callback_answer"] = answer
        if not answer.disabled and answer.answered:
            await self.answer(event, answer)
        result = await handler(event, data)
        if not answer.disabled and not answer.answered:
            await self.answer(event, answer)
        return result


def _rendered(answer: CallbackAnswer) -> CallbackAnswer:
    return CallbackAnswer(
        answered=answer.answered,
        disabled=answer.disabled,
        text=str(answer.text),
        show_alert=answer.show_alert,
        url=answer.url,
        cache_time=answer.cache_time,
    )


UpdateRecorder = Callable[[str, float, str], None]  # handler name, seconds, "ok" or "error"
UNHANDLED = "unhandled"  # the handler name of an update no handler took


class UpdateMetrics:
    """Counts every update with its latency, by the name of the handler that took it.

    An outer middleware on the update times it (the first update middleware of ours, so the
    others' time counts too) and records "unhandled" when no handler took it; an inner
    middleware on every event type names the handler. They share one slot per update: aiogram
    copies the data dict from one level to the next, but not what it holds.
    """

    SLOT = "metrics_handler"

    def __init__(self, record: UpdateRecorder) -> None:
        self._record = record

    def setup(self, dispatcher: Dispatcher) -> None:
        dispatcher.update.outer_middleware(self._time_update)
        for observer in dispatcher.observers.values():
            if observer is not dispatcher.update and observer is not dispatcher.errors:
                observer.middleware(self._name_handler)

    async def _time_update(
        self, handler: Handler, event: TelegramObject, data: dict[str, Any]
    ) -> Any:
        slot: list[str] = []
        data[self.SLOT] = slot
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await handler(event, data)
            outcome = "ok"
            return result
        finally:
            name = slot[-1] if slot else UNHANDLED
            self._record(name, time.perf_counter() - started, outcome)

    async def _name_handler(
        self, handler: Handler, event: TelegramObject, data: dict[str, Any]
    ) -> Any:
        slot = data.get(self.SLOT)
        taken = data.get("handler")
        if isinstance(slot, list) and isinstance(taken, HandlerObject):
            slot.append(handler_name(taken.callback))
        return await handler(event, data)


def handler_name(callback: Any) -> str:
    """`ordering.confirm` for handlers.ordering.confirm: short, and one label per handler."""
    module = str(getattr(callback, "__module__", "") or "").removeprefix("handlers.")
    name = getattr(callback, "__qualname__", None) or type(callback).__name__
    return f"{module}.{name}" if module else str(name)
