"""A Telegram Bot API emulator over real HTTP, for end-to-end tests and the offline playground.

An unmodified `aiogram.Bot` talks to it through
`AiohttpSession(api=TelegramAPIServer.from_base(emulator.url))`: routes are
`/bot{token}/{method}`, answers are the real `{"ok": ..., "result" | "error_code", ...}` shapes,
and the rules that bite real bots are enforced (HTML parsing, "message is not modified",
callback_data ≤ 64 bytes, callback queries answered once, rate limits when asked).

Supported methods: getMe, getUpdates (real long polling), setWebhook (updates POSTed to the bot,
see `webhook.py`), sendMessage, editMessageText,
editMessageReplyMarkup, deleteMessage, answerCallbackQuery, sendChatAction, setMyCommands,
getMyCommands, deleteMyCommands, deleteWebhook, getWebhookInfo, set/getMyDescription,
set/getMyShortDescription, set/getMyName, and Telegram Stars (sendInvoice,
answerPreCheckoutQuery, refundStarPayment, getStarTransactions: see `payments.py`).
Anything else answers 404 "Not Found: method not found".
Method names are case-insensitive, as on Telegram. Only parse_mode HTML is understood.

Where it is stricter than Telegram, on purpose: with `strict_html=True` (the default) an `&`
that does not start an entity is rejected (Telegram keeps it), so unescaped user text is caught
even when it happens not to contain `<`.

This module is the server and its methods; beside it: `html.py` (parse mode HTML),
`markup.py` (reply markup), `params.py` (request parameters), `limits.py` (rate limits,
injected faults), `state.py` (per-bot state, the request log), `errors.py` (error answers),
`webhook.py` (delivering updates to a webhook).
The user side (typing, pressing buttons, the `/user-api/` HTTP endpoints) is in `users.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from playground.telegram.errors import (
    GETUPDATES_CONFLICT,
    NOT_MODIFIED,
    QUERY_TOO_OLD,
    ApiError,
    JsonDict,
    bad_request,
    too_many_requests,
)
from playground.telegram.html import (
    COMMAND,
    command_entities,
    entities_param,
    parse_html,
    render_html,
    trim_text,
)
from playground.telegram.limits import Faults, RateLimiter, RateLimits
from playground.telegram.markup import check_reply_markup, inline_part
from playground.telegram.params import int_param, optional_int, read_params
from playground.telegram.payments import StarPayments
from playground.telegram.state import (
    BotError,
    BotRequest,
    BotState,
    CallbackQuery,
    EmulatorStats,
    commands_key,
)
from playground.telegram.users import ChatLog, ChatUser, Message, UserApi
from playground.telegram.webhook import DEFAULT_TIMEOUT, Deliverer, Webhook, WebhookDelivery

logger = logging.getLogger(__name__)

MAX_TEXT_LENGTH = 4096
MAX_POLL_TIMEOUT = 50.0
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_TOKEN = re.compile(r"^(\d+):[\w-]+$")

MethodHandler = Callable[[BotState, JsonDict], Awaitable[Any]]


class TelegramEmulator:
    """A Bot API server for one or more bot tokens, with a scriptable user side."""

    def __init__(
        self,
        token: str | Sequence[str] = "123456:TEST",
        *,
        username: str = "smm_test_bot",
        first_name: str = "SMM Test Bot",
        limits: RateLimits | None = None,
        strict_html: bool = True,
        privacy_mode: bool = False,
        webhook_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.strict_html = strict_html
        self.privacy_mode = privacy_mode
        self.limits = limits
        self.stats = EmulatorStats()
        self.requests: list[BotRequest] = []
        self.errors: list[BotError] = []
        # Webhook mode: every POST of an update, and when each accepted sendMessage went out.
        self.deliveries: list[WebhookDelivery] = []
        self.sent_at: list[float] = []
        self.webhook_timeout = webhook_timeout
        self._deliverers: dict[int, Deliverer] = {}
        self.closing = False
        self._limiter = RateLimiter(limits) if limits else None
        self._bots: dict[int, BotState] = {}
        self._by_token: dict[str, BotState] = {}
        self._users: dict[int, JsonDict] = {}
        self._blocked: set[int] = set()
        self._faults = Faults()
        self._next_query = 1
        self._change = asyncio.Event()
        self._inflight = 0
        self._last_activity = time.monotonic()
        # Set by a harness that runs the bot in this process: True while it still handles an
        # update. A press answered up front ("Placing your order…") is not the end of its work.
        self.bot_is_busy: Callable[[], bool] | None = None
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        # Telegram Stars: invoices, pre-checkout queries, charges, refunds (payments.py).
        self.payments = StarPayments(self)
        self._methods: dict[str, tuple[str, MethodHandler]] = {
            name.lower(): (name, handler) for name, handler in self._method_table().items()
        }
        tokens = [token] if isinstance(token, str) else list(token)
        for index, each in enumerate(tokens):
            self.add_bot(each, username=username if index == 0 else None, first_name=first_name)

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0 picks a free port); returns the base URL for aiogram."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._serve_bot)
        app.add_routes(UserApi(self).routes())
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        self._runner = runner
        self.closing = False
        self._url = f"http://{host}:{runner.addresses[0][1]}"
        return self._url

    async def stop(self) -> None:
        """Release every long poll at once, then close the server."""
        self.closing = True
        self._changed()
        for deliverer in list(self._deliverers.values()):
            await deliverer.stop()
        self._deliverers.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> TelegramEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("start() the emulator first")
        return self._url

    # --- bots and users -----------------------------------------------------------------

    def add_bot(
        self, token: str, *, username: str | None = None, first_name: str = "SMM Test Bot"
    ) -> JsonDict:
        """Serve one more bot token; its id is the token's numeric prefix."""
        match = _TOKEN.match(token)
        if match is None:
            raise ValueError("a bot token looks like '123456:ABC-def'")
        bot_id = int(match.group(1))
        user = {
            "id": bot_id,
            "is_bot": True,
            "first_name": first_name,
            "username": username or f"test{bot_id}_bot",
        }
        state = BotState(token=token, user=user, privacy_mode=self.privacy_mode)
        self._bots[bot_id] = state
        self._by_token[token] = state
        return user

    @property
    def bot_id(self) -> int:
        """The id of the first (default) bot."""
        return next(iter(self._bots))

    def bot_user(self, bot_id: int | None = None) -> JsonDict:
        return dict(self._bot(bot_id).user)

    def register_user(
        self,
        user_id: int,
        first_name: str | None = None,
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "en",
    ) -> JsonDict:
        """Create or update a Telegram user profile (the `from` of their messages)."""
        if user_id <= 0:
            raise ValueError("a user id is positive")
        user: JsonDict = {"id": user_id, "is_bot": False, "first_name": first_name or "User"}
        optional = {"last_name": last_name, "username": username, "language_code": language_code}
        user.update({k: v for k, v in optional.items() if v})
        self._users[user_id] = user
        return user

    def find_user(self, user_id: int) -> JsonDict | None:
        return self._users.get(user_id)

    def user(
        self,
        user_id: int,
        first_name: str | None = None,
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "en",
        bot_id: int | None = None,
    ) -> ChatUser:
        """A user in their private chat with the bot (chat id == user id)."""
        profile = self.register_user(
            user_id,
            first_name or f"User{user_id}",
            last_name=last_name,
            username=username,
            language_code=language_code,
        )
        bot = self._bot(bot_id)
        return ChatUser(self, profile, self.private_chat(user_id, bot_id=bot.id), bot.id)

    def private_chat(self, user_id: int, *, bot_id: int | None = None) -> ChatLog:
        bot = self._bot(bot_id)
        if user_id not in bot.chats:
            profile = self._users[user_id]
            chat = {"id": user_id, "type": "private", "first_name": profile["first_name"]}
            chat.update({k: profile[k] for k in ("last_name", "username") if k in profile})
            bot.chats[user_id] = ChatLog(chat)
        return bot.chats[user_id]

    def add_group(
        self,
        chat_id: int,
        title: str = "Group",
        *,
        chat_type: str | None = None,
        bot_id: int | None = None,
    ) -> ChatLog:
        """A group the bot is a member of; -100… ids are supergroups unless told otherwise."""
        if chat_id >= 0:
            raise ValueError("a group id is negative")
        bot = self._bot(bot_id)
        if chat_id not in bot.chats:
            kind = chat_type or ("supergroup" if str(chat_id).startswith("-100") else "group")
            bot.chats[chat_id] = ChatLog({"id": chat_id, "type": kind, "title": title})
        return bot.chats[chat_id]

    def find_chat(self, chat_id: int, *, bot_id: int | None = None) -> ChatLog | None:
        return self._bot(bot_id).chats.get(chat_id)

    def chats(self, bot_id: int | None = None) -> list[ChatLog]:
        return list(self._bot(bot_id).chats.values())

    def messages(self, chat_id: int, *, bot_id: int | None = None) -> list[Message]:
        """The messages of any chat, e.g. a notification group no test user typed in."""
        log = self.find_chat(chat_id, bot_id=bot_id)
        return log.messages if log else []

    def commands(
        self, *, scope: JsonDict | None = None, language_code: str = "", bot_id: int | None = None
    ) -> list[JsonDict]:
        """The command list the bot set for that scope and language (setMyCommands)."""
        key = commands_key({"scope": scope, "language_code": language_code})
        return list(self._bot(bot_id).commands.get(key, []))

    def menu_commands(
        self, user_id: int, chat_id: int, *, bot_id: int | None = None
    ) -> list[JsonDict]:
        """The command menu a Telegram client shows `user_id` in `chat_id`.

        Telegram's rule: the first list the bot set, trying the scopes from the narrowest (the
        chat, or the member in a group) to `default`, each with the user's language first and
        then without one. The administrator scopes are skipped: the emulator keeps no roles.
        """
        bot = self._bot(bot_id)
        log = bot.chats.get(chat_id)
        scopes: list[JsonDict]
        if log is not None and log.is_group:
            scopes = [
                {"type": "chat_member", "chat_id": chat_id, "user_id": user_id},
                {"type": "chat", "chat_id": chat_id},
                {"type": "all_group_chats"},
                {"type": "default"},
            ]
        else:
            scopes = [
                {"type": "chat", "chat_id": chat_id},
                {"type": "all_private_chats"},
                {"type": "default"},
            ]
        code = str((self._users.get(user_id) or {}).get("language_code") or "").lower()
        languages = list(dict.fromkeys([code, code.split("-")[0], ""]))
        lists = [
            (json.loads(scope), language.lower(), cmds)
            for (scope, language), cmds in bot.commands.items()
        ]
        for scope in scopes:
            for language in languages:
                for stored, stored_language, commands in lists:
                    if commands and stored_language == language and _same_scope(stored, scope):
                        return [dict(command) for command in commands]
        return []

    def bot_state(self, bot_id: int | None = None) -> BotState:
        """The state of one bot (the first by default), for the emulator's own modules."""
        return self._bot(bot_id)

    def _bot(self, bot_id: int | None) -> BotState:
        if bot_id is None:
            return next(iter(self._bots.values()))
        try:
            return self._bots[bot_id]
        except KeyError:
            raise ValueError(f"no bot with id {bot_id}") from None

    # --- what users do (ChatUser and the HTTP user API call these) ------------------------

    def post_message(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        *,
        reply_to_message_id: int | None = None,
        bot_id: int | None = None,
    ) -> Message:
        """A user types `text` in a chat; the bot gets a `message` update."""
        bot = self._bot(bot_id)
        user, log = self._user_in_chat(bot, user_id, chat_id)
        reply_to = None
        if reply_to_message_id is not None:
            reply_to = log.get(reply_to_message_id)
            if reply_to is None:
                raise ValueError(f"no message {reply_to_message_id} to reply to")
        text = text.strip()
        if not text or len(text) > MAX_TEXT_LENGTH:
            raise ValueError(f"a message has 1-{MAX_TEXT_LENGTH} characters")
        message = log.add_message(
            user, text, entities=command_entities(text), reply_to_message_id=reply_to_message_id
        )
        if self._reaches_bot(bot, log, text, reply_to):
            bot.enqueue("message", message.to_telegram(reply_to))
        self._changed()
        return message

    def post_callback(
        self,
        chat_id: int,
        user_id: int,
        message_id: int,
        callback_data: str,
        *,
        bot_id: int | None = None,
    ) -> str:
        """A user presses an inline button; the bot gets a `callback_query` update."""
        bot = self._bot(bot_id)
        user, log = self._user_in_chat(bot, user_id, chat_id)
        message = log.get(message_id)
        if message is None or not message.from_bot:
            raise ValueError(f"no bot message {message_id} in chat {chat_id}")
        if not any(b.value == callback_data for row in message.buttons for b in row):
            raise ValueError(f"message {message_id} has no button with that callback_data")
        query_id = str(4_000_000_000_000 + self._next_query)
        self._next_query += 1
        bot.callbacks[query_id] = CallbackQuery(query_id, chat_id, message_id)
        reply_to = log.get(message.reply_to_message_id) if message.reply_to_message_id else None
        bot.enqueue(
            "callback_query",
            {
                "id": query_id,
                "from": user,
                "message": message.to_telegram(reply_to),
                "chat_instance": str(abs(chat_id) * 7919 + bot.id),
                "data": callback_data,
            },
        )
        self._changed()
        return query_id

    def unanswered_callback_queries(self, bot_id: int | None = None) -> list[str]:
        """Ids of callback queries the bot never answered (the user would see a spinner)."""
        return [q.query_id for q in self._bot(bot_id).callbacks.values() if not q.answered]

    def repeat(self, chat_id: int, message_id: int, *, bot_id: int | None = None) -> None:
        """Deliver the `message` update of a message once more, as Telegram does when a bot
        crashed before confirming it (a payment update repeated, say)."""
        bot = self._bot(bot_id)
        log = bot.chats.get(chat_id)
        message = log.get(message_id) if log else None
        if log is None or message is None or message.from_bot:
            raise ValueError(f"no user message {message_id} in chat {chat_id}")
        bot.enqueue("message", message.to_telegram(self._replied(log, message)))
        self._changed()

    def user_in_chat(self, bot: BotState, user_id: int, chat_id: int) -> tuple[JsonDict, ChatLog]:
        return self._user_in_chat(bot, user_id, chat_id)

    def _user_in_chat(self, bot: BotState, user_id: int, chat_id: int) -> tuple[JsonDict, ChatLog]:
        user = self._users.get(user_id)
        if user is None:
            raise ValueError(f"unknown user {user_id}")
        log = bot.chats.get(chat_id)
        if log is None:
            raise ValueError(f"unknown chat {chat_id}")
        if not log.is_group and chat_id != user_id:
            raise ValueError(f"user {user_id} cannot type in the private chat of {chat_id}")
        return user, log

    def _reaches_bot(
        self, bot: BotState, log: ChatLog, text: str, reply_to: Message | None
    ) -> bool:
        """Privacy mode: in groups the bot only sees commands and replies to its messages."""
        if not (bot.privacy_mode and log.is_group):
            return True
        if reply_to is not None and reply_to.sender.get("id") == bot.id:
            return True
        command = COMMAND.match(text)
        if command is None:
            return False
        mention = command.group(2)
        return mention is None or mention.lower() == bot.username.lower()

    # --- what tests inspect and inject --------------------------------------------------

    def calls(self, method: str) -> list[JsonDict]:
        """Parameters of every request of `method` (case-insensitive), oldest first."""
        wanted = method.lower()
        return [request.params for request in self.requests if request.method.lower() == wanted]

    def fail_next(
        self,
        method: str,
        *,
        error_code: int = 429,
        retry_after: int = 1,
        count: int = 1,
        description: str | None = None,
        chat_id: int | None = None,
    ) -> None:
        """Answer the next `count` calls of `method` (for `chat_id` only, if given) with an error.

        429 carries `parameters.retry_after`, which aiogram raises as TelegramRetryAfter.
        """
        self._faults.add(
            method,
            error_code=error_code,
            retry_after=retry_after,
            count=count,
            description=description,
            chat_id=chat_id,
        )

    def block(self, chat_id: int) -> None:
        """The user blocks the bot (or the group removes it): sends to the chat answer 403."""
        self._blocked.add(chat_id)

    def unblock(self, chat_id: int) -> None:
        self._blocked.discard(chat_id)

    async def settle(self, idle: float = 0.2, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until the bot has fetched every update and made no request for `idle` seconds.

        Use it to assert that nothing was sent. Raises AssertionError after `timeout`.
        """
        if not await self.wait_until(
            lambda: self.quiet_seconds() >= idle, timeout, tick=max(idle / 4, 0.01)
        ):
            raise AssertionError(f"the bot did not settle within {timeout:g} s")

    def quiet_seconds(self) -> float:
        """How long the bot has been idle: 0 while a request runs, an update waits for it, or
        (when the harness can tell) its handlers are still at work."""
        if self._inflight or any(
            b.has_polled and b.has_undelivered() for b in self._bots.values()
        ):
            return 0.0
        if any(deliverer.busy for deliverer in self._deliverers.values()):
            return 0.0
        if self.bot_is_busy is not None and self.bot_is_busy():
            self._last_activity = time.monotonic()
            return 0.0
        return time.monotonic() - self._last_activity

    async def wait_until(
        self,
        predicate: Callable[[], bool],
        timeout: float,  # noqa: ASYNC109 - a deadline for the predicate, not for one await
        *,
        tick: float | None = None,
    ) -> bool:
        """Re-check `predicate` on every change (and every `tick` seconds); False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            change = self._change
            try:
                async with asyncio.timeout(min(remaining, tick) if tick else remaining):
                    await change.wait()
            except TimeoutError:
                pass
        return True

    def diagnostics(self, chat_id: int, *, bot_id: int | None = None) -> str:
        """Why a chat may be quiet: failed requests, dropped updates, polling state."""
        bot = self._bot(bot_id)
        lines = []
        failures = [e for e in self.errors if e.params.get("chat_id") == chat_id][-5:]
        if failures:
            lines.append("bot requests that failed in this chat:")
            lines += [f"  {e.method} -> {e.error_code} {e.description}" for e in failures]
        if bot.dropped_updates:
            kinds = sorted({k for u in bot.dropped_updates for k in u if k != "update_id"})
            lines.append(
                f"updates dropped by allowed_updates={sorted(bot.allowed_updates or [])}:"
            )
            lines.append(f"  {kinds}")
        log = bot.chats.get(chat_id)
        if bot.privacy_mode and log is not None and log.is_group:
            lines.append("privacy mode: in groups the bot only gets commands and replies to it")
        deliverer = self._deliverers.get(bot.id)
        if deliverer is not None:
            lines.append(f"webhook {deliverer.webhook.url}: {len(bot.updates)} update(s) pending")
            if deliverer.last_error is not None:
                lines.append(f"  last delivery error: {deliverer.last_error[1]}")
        elif not bot.has_polled:
            lines.append("the bot has not called getUpdates yet")
        elif bot.has_undelivered():
            lines.append(f"{len(bot.updates)} update(s) not yet fetched by getUpdates")
        return "\n".join(lines)

    def changed(self) -> None:
        self._changed()

    def _changed(self) -> None:
        """Wake every waiter (long polls, ChatUser waits) to re-check its condition."""
        self._change.set()
        self._change = asyncio.Event()

    # --- the Bot API over HTTP ----------------------------------------------------------

    async def _serve_bot(self, request: web.Request) -> web.Response:
        bot = self._by_token.get(request.match_info["token"])
        if bot is None:
            return ApiError(401, "Unauthorized").response()
        requested = request.match_info["method"]
        known = self._methods.get(requested.lower())
        name = known[0] if known else requested
        polling = name == "getUpdates"
        if not polling:
            self._inflight += 1
            self._last_activity = time.monotonic()
        params: JsonDict = {}
        try:
            params = await read_params(request)
            result = await self._execute(bot, name, params)
        except ApiError as error:
            self._record_error(name, params, error)
            return error.response()
        except Exception as error:  # an emulator bug: answer like Telegram would, and say so
            logger.exception("the emulator failed on %s", name)
            failure = ApiError(500, f"Internal Server Error: {type(error).__name__}: {error}")
            self._record_error(name, params, failure)
            return failure.response()
        finally:
            if not polling:
                self._inflight -= 1
                self._last_activity = time.monotonic()
            self._changed()
        return web.json_response({"ok": True, "result": result})

    async def _execute(self, bot: BotState, name: str, params: JsonDict) -> Any:
        """Record one call of the bot and run it; raises ApiError as the answer."""
        self.requests.append(BotRequest(name, params))
        self.stats.requests += 1
        self._changed()
        known = self._methods.get(name.lower())
        if known is None:
            raise ApiError(404, "Not Found: method not found")
        self._take_fault(known[0], params)
        return await known[1](bot, params)

    async def _execute_webhook_reply(self, bot: BotState, name: str, params: JsonDict) -> None:
        """A method the bot put in its answer to a webhook POST."""
        known = self._methods.get(name.lower())
        name = known[0] if known else name
        try:
            await self._execute(bot, name, params)
        except ApiError as error:
            self._record_error(name, params, error)
        finally:
            self._changed()

    def _take_fault(self, method: str, params: JsonDict) -> None:
        error = self._faults.take(method, params)
        if error is not None:
            self.stats.injected_faults += 1
            raise error

    def _record_error(self, method: str, params: JsonDict, error: ApiError) -> None:
        self.errors.append(BotError(method, params, error.code, error.description))
        self.stats.errors += 1

    def _method_table(self) -> dict[str, MethodHandler]:
        return {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "sendChatAction": self._send_chat_action,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "setMyDescription": self._setting_setter("description"),
            "getMyDescription": self._setting_getter("description"),
            "setMyShortDescription": self._setting_setter("short_description"),
            "getMyShortDescription": self._setting_getter("short_description"),
            "setMyName": self._setting_setter("name"),
            "getMyName": self._setting_getter("name"),
            **self.payments.methods(),
        }

    # --- methods: the bot itself and updates --------------------------------------------

    async def _get_me(self, bot: BotState, params: JsonDict) -> JsonDict:
        return bot.me()

    async def _get_updates(self, bot: BotState, params: JsonDict) -> list[JsonDict]:
        offset = optional_int(params, "offset")
        limit = min(max(optional_int(params, "limit") or 100, 1), 100)
        timeout = min(max(optional_int(params, "timeout") or 0, 0), MAX_POLL_TIMEOUT)
        if bot.id in self._deliverers:
            raise ApiError(409, WEBHOOK_CONFLICT)
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            bot.allowed_updates = frozenset(map(str, allowed)) or None
        if offset is not None:
            bot.confirm(offset)
        # A newer getUpdates terminates a waiting one, as on Telegram (409 Conflict).
        bot.poll_generation += 1
        generation = bot.poll_generation
        bot.has_polled = True
        if timeout and not bot.updates:
            await self.wait_until(
                lambda: bool(bot.updates) or self.closing or bot.poll_generation != generation,
                timeout,
            )
        if bot.poll_generation != generation:
            raise ApiError(409, GETUPDATES_CONFLICT)
        batch = bot.updates[:limit]
        if batch:
            bot.delivered_upto = max(bot.delivered_upto, batch[-1]["update_id"])
            self._last_activity = time.monotonic()
        return batch

    async def _set_webhook(self, bot: BotState, params: JsonDict) -> bool:
        """Deliver updates by POSTing them to `url` from now on (replacing an earlier hook)."""
        webhook = Webhook.from_params(params)
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            bot.allowed_updates = frozenset(map(str, allowed)) or None
        if params.get("drop_pending_updates") is True:
            bot.updates.clear()
        await self._stop_deliverer(bot)
        # A waiting getUpdates ends, as on Telegram when a webhook is set.
        bot.poll_generation += 1
        deliverer = Deliverer(
            bot=bot,
            webhook=webhook,
            call_method=self._execute_webhook_reply,
            wait_for_change=self._wait_for_change,
            log=self.deliveries,
            timeout=self.webhook_timeout,
        )
        self._deliverers[bot.id] = deliverer
        deliverer.start()
        return True

    async def _stop_deliverer(self, bot: BotState) -> None:
        deliverer = self._deliverers.pop(bot.id, None)
        if deliverer is not None:
            await deliverer.stop()

    async def _wait_for_change(self, seconds: float) -> None:
        change = self._change
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await change.wait()

    async def _delete_webhook(self, bot: BotState, params: JsonDict) -> bool:
        await self._stop_deliverer(bot)
        if params.get("drop_pending_updates") is True:
            bot.updates.clear()
        return True

    async def _get_webhook_info(self, bot: BotState, params: JsonDict) -> JsonDict:
        deliverer = self._deliverers.get(bot.id)
        info: JsonDict = {
            "url": deliverer.webhook.url if deliverer else "",
            "has_custom_certificate": False,
            "pending_update_count": len(bot.updates),
        }
        if deliverer is not None:
            info["max_connections"] = deliverer.webhook.max_connections
            if deliverer.last_error is not None:
                info["last_error_date"], info["last_error_message"] = deliverer.last_error
        if bot.allowed_updates is not None:
            info["allowed_updates"] = sorted(bot.allowed_updates)
        return info

    def webhook_pending(self, bot_id: int | None = None) -> int:
        """Updates not yet answered 200 by the webhook (queued, in flight or to be retried)."""
        return len(self._bot(bot_id).updates)

    def webhook_url(self, bot_id: int | None = None) -> str | None:
        """Where the bot's updates are POSTed (setWebhook), or None in getUpdates mode."""
        deliverer = self._deliverers.get(self._bot(bot_id).id)
        return deliverer.webhook.url if deliverer else None

    # --- methods: messages --------------------------------------------------------------

    def target_chat(self, bot: BotState, params: JsonDict) -> ChatLog:
        """The chat a method writes to (chat_id), refused like Telegram (unknown, blocked)."""
        return self._target_chat(bot, params)

    def admit(self, log: ChatLog) -> None:
        """Count one message against the rate limits (429 when over)."""
        self._admit(log)

    def _target_chat(self, bot: BotState, params: JsonDict) -> ChatLog:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise bad_request("chat_id is empty")
        log = bot.chats.get(chat_id) if isinstance(chat_id, int) else None
        if log is None:
            raise bad_request("chat not found")
        if log.chat_id in self._blocked:
            if not log.is_group:
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            raise ApiError(403, f"Forbidden: bot was kicked from the {log.chat['type']} chat")
        return log

    def _target_message(
        self, bot: BotState, params: JsonDict, action: str
    ) -> tuple[ChatLog, Message]:
        if params.get("inline_message_id"):
            raise bad_request("inline messages are not supported by the emulator")
        log = self._target_chat(bot, params)
        message_id = int_param(params, "message_id", "message identifier is not specified")
        message = log.get(message_id)
        if message is None:
            raise bad_request(f"message to {action} not found")
        return log, message

    def _formatted_text(self, params: JsonDict) -> tuple[str, list[JsonDict], str]:
        """Plain text, entities and HTML of a text parameter, validated like Telegram."""
        source = params.get("text")
        if not isinstance(source, str) or not source.strip():
            raise bad_request("message text is empty")
        mode = str(params.get("parse_mode") or "")
        if mode.lower() == "html":
            text, entities = parse_html(source, strict=self.strict_html)
            markup = source
        elif mode:
            raise bad_request(
                f"can't parse entities: the emulator does not support parse_mode {mode}"
            )
        else:
            text, entities = source, entities_param(params.get("entities"))
            markup = render_html(text, entities)
        text, entities = trim_text(text, entities)
        if not text:
            raise bad_request("message text is empty")
        if len(text) > MAX_TEXT_LENGTH:
            raise bad_request("message is too long")
        return text, entities, markup

    def _reply_target(self, log: ChatLog, params: JsonDict) -> Message | None:
        wanted = params.get("reply_parameters") or {}
        if not isinstance(wanted, dict):
            raise bad_request("can't parse reply parameters JSON object")
        message_id = wanted.get("message_id", params.get("reply_to_message_id"))
        if message_id is None:
            return None
        replied = log.get(message_id) if isinstance(message_id, int) else None
        lenient = wanted.get(
            "allow_sending_without_reply", params.get("allow_sending_without_reply")
        )
        if replied is None and lenient is not True:
            raise bad_request("message to be replied not found")
        return replied

    def _admit(self, log: ChatLog) -> None:
        if self._limiter is None:
            return
        retry_after = self._limiter.admit(log.chat_id, log.is_group)
        if retry_after is not None:
            self.stats.too_many_requests += 1
            raise too_many_requests(retry_after)

    def set_limits(self, limits: RateLimits | None) -> None:
        """Enforce these limits from now on (None: none), with empty windows."""
        self.limits = limits
        self._limiter = RateLimiter(limits) if limits else None

    @property
    def rate_refusals(self) -> dict[str, int]:
        """429s by the window that refused: "overall", "chat" or "group"."""
        return dict(self._limiter.refusals) if self._limiter else {}

    async def _send_message(self, bot: BotState, params: JsonDict) -> JsonDict:
        log = self._target_chat(bot, params)
        text, entities, markup_html = self._formatted_text(params)
        markup = check_reply_markup(params.get("reply_markup"))
        reply_to = self._reply_target(log, params)
        self._admit(log)
        message = log.add_message(
            bot.user,
            text,
            entities=entities,
            html_text=markup_html,
            reply_markup=markup,
            reply_to_message_id=reply_to.message_id if reply_to else None,
        )
        self.stats.sent += 1
        self.sent_at.append(time.monotonic())
        return message.to_telegram(reply_to)

    async def _edit_message_text(self, bot: BotState, params: JsonDict) -> JsonDict:
        log, message = self._target_message(bot, params, "edit")
        if not message.from_bot:
            raise bad_request("message can't be edited")
        text, entities, markup_html = self._formatted_text(params)
        inline = check_reply_markup(params.get("reply_markup"), inline_only=True)
        # Without reply_markup Telegram removes the inline keyboard; a reply keyboard stays.
        kept = message.reply_markup if inline_part(message.reply_markup) is None else None
        unchanged = (text, entities, inline) == (
            message.text,
            message.entities,
            inline_part(message.reply_markup),
        )
        if unchanged:
            raise bad_request(NOT_MODIFIED)
        edited = log.edit(
            message.message_id,
            text=text,
            entities=entities,
            html=markup_html,
            reply_markup=inline or kept,
        )
        self.stats.edited += 1
        return edited.to_telegram(self._replied(log, edited))

    async def _edit_message_reply_markup(self, bot: BotState, params: JsonDict) -> JsonDict:
        log, message = self._target_message(bot, params, "edit")
        if not message.from_bot:
            raise bad_request("message can't be edited")
        inline = check_reply_markup(params.get("reply_markup"), inline_only=True)
        if inline == inline_part(message.reply_markup):
            raise bad_request(NOT_MODIFIED)
        edited = log.edit(message.message_id, reply_markup=inline)
        self.stats.edited += 1
        return edited.to_telegram(self._replied(log, edited))

    @staticmethod
    def _replied(log: ChatLog, message: Message) -> Message | None:
        return log.get(message.reply_to_message_id) if message.reply_to_message_id else None

    async def _delete_message(self, bot: BotState, params: JsonDict) -> bool:
        log, message = self._target_message(bot, params, "delete")
        log.delete(message.message_id)
        return True

    async def _answer_callback_query(self, bot: BotState, params: JsonDict) -> bool:
        query = bot.callbacks.get(str(params.get("callback_query_id") or ""))
        if query is None or query.answered:
            raise bad_request(QUERY_TOO_OLD)
        query.answered = True
        url = params.get("url")
        bot.chats[query.chat_id].add_callback_answer(
            query.query_id,
            query.message_id,
            str(params.get("text") or ""),
            params.get("show_alert") is True,
            str(url) if url else None,
        )
        return True

    async def _send_chat_action(self, bot: BotState, params: JsonDict) -> bool:
        self._target_chat(bot, params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        return True

    # --- methods: commands and profile --------------------------------------------------

    async def _set_my_commands(self, bot: BotState, params: JsonDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad_request("can't parse commands JSON object")
        for command in commands:
            name = command.get("command") if isinstance(command, dict) else None
            if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]{1,32}", name):
                raise bad_request("BOT_COMMAND_INVALID")
            description = command.get("description")
            if not isinstance(description, str) or not 1 <= len(description) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        bot.commands[commands_key(params)] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    async def _get_my_commands(self, bot: BotState, params: JsonDict) -> list[JsonDict]:
        return bot.commands.get(commands_key(params), [])

    async def _delete_my_commands(self, bot: BotState, params: JsonDict) -> bool:
        bot.commands.pop(commands_key(params), None)
        return True

    def _setting_setter(self, name: str) -> MethodHandler:
        async def setter(bot: BotState, params: JsonDict) -> bool:
            key = f"{name}:{params.get('language_code') or ''}"
            bot.settings[key] = str(params.get(name) or "")
            return True

        return setter

    def _setting_getter(self, name: str) -> MethodHandler:
        async def getter(bot: BotState, params: JsonDict) -> JsonDict:
            default = bot.user["first_name"] if name == "name" else ""
            key = f"{name}:{params.get('language_code') or ''}"
            return {name: bot.settings.get(key, default)}

        return getter


def _same_scope(stored: Any, wanted: JsonDict) -> bool:
    """A scope as the bot sent it (ids as numbers or text) against one the menu looks for."""
    if not isinstance(stored, dict) or stored.get("type") != wanted["type"]:
        return False
    return all(str(stored.get(key)) == str(wanted[key]) for key in wanted if key != "type")
