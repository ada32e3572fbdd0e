"""The user side of the Telegram emulator: what a person sees in a chat and what they can do.

In-process, tests drive a `ChatUser` (one Telegram user in one chat):

    alice = emu.user(1001, first_name="Alice")
    reply = await alice.send("/start")         # the first bot message sent or edited afterwards
    reply = await alice.press("Instagram")     # a Message, or a CallbackAnswer if only that came
    notice = await alice.wait_for(lambda m: "Completed" in m.text)

Over HTTP (for the browser playground), `UserApi` serves the same operations as JSON under
`/user-api/` on the emulator's own port. Every endpoint takes an optional `bot_id` (query string
or body) to pick a bot when the emulator serves several; errors are `{"ok": false, "error": ...}`
with status 400 (bad input) or 404 (unknown chat).

    GET  /user-api/bot                          -> {"ok", "bot": {id, first_name, username}}
    POST /user-api/users    {id, first_name, last_name?, username?, language_code?}
                                                -> {"ok", "user": {...}, "chat": {...}}
    POST /user-api/chats    {id, title, type?, members?: [user ids]}
                                                -> {"ok", "chat": {...}}  (a group)
    GET  /user-api/chats                        -> {"ok", "chats": [{"chat", "version"}]}
    POST /user-api/send     {user_id, chat_id, text, reply_to_message_id?}
                                                -> {"ok", "message": {...}}  (the user's message)
    POST /user-api/press    {user_id, chat_id, message_id, callback_data}
                                                -> {"ok", "callback_query_id": "..."}
    POST /user-api/pay      {user_id, chat_id, message_id}  (an invoice; waits for the bot's
        pre-checkout answer) -> {"ok", "paid": true, "message"} or {"ok", "paid": false, "error"}
    GET  /user-api/chats/{chat_id}/messages?after_version=N&timeout=25
        long-polls until the chat's version exceeds N (a message was sent, edited or deleted, or
        a callback query was answered), then -> {"ok", "version", "messages": [...],
        "callback_answer": the latest answer or null}; on timeout the same, unchanged.
    GET  /user-api/chats/{chat_id}/callback-answers -> {"ok", "callback_answers": [...]}
    GET  /user-api/chats/{chat_id}/commands?user_id=N
        -> {"ok", "commands": [{command, description}]}: the command menu (setMyCommands) a
        Telegram client shows that user in that chat

A message dict is `Message.to_dict()`: message_id, chat_id, date, from, from_bot, text (plain),
html, entities, reply_markup (raw), buttons, reply_to_message_id, edited, edit_date,
force_reply, version, attachment (an invoice, a successful_payment…). A callback answer dict
is `CallbackAnswer.to_dict()`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import html
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from aiohttp import web

if TYPE_CHECKING:
    from playground.telegram.server import TelegramEmulator

JsonDict = dict[str, Any]

DEFAULT_TIMEOUT = 5.0
# After a press that only got answerCallbackQuery, how long the bot must stay quiet before we
# conclude it will not also send or edit a message (handlers often answer first, then edit).
PRESS_GRACE = 0.25


class Button(NamedTuple):
    """One inline button: its text and its callback_data (or URL, or None for other kinds)."""

    text: str
    value: str | None


@dataclass(frozen=True)
class Message:
    """One message as it stood at one moment (an edit produces a new `Message`)."""

    message_id: int
    chat: JsonDict
    sender: JsonDict
    date: int
    text: str
    entities: list[JsonDict] = field(default_factory=list)
    html: str = ""
    reply_markup: JsonDict | None = None
    reply_to_message_id: int | None = None
    edited: int = 0
    edit_date: int | None = None
    version: int = 0
    # Fields beside the text, as the Bot API names them: `invoice`, `successful_payment`,
    # `refunded_payment` (see `playground.telegram.payments`); such a message has no text.
    attachment: JsonDict | None = None

    @property
    def chat_id(self) -> int:
        return int(self.chat["id"])

    @property
    def from_bot(self) -> bool:
        return bool(self.sender.get("is_bot"))

    @property
    def buttons(self) -> list[list[Button]]:
        """Inline keyboard rows; a reply keyboard is in `keyboard` instead."""
        return [[_button(raw) for raw in row] for row in _inline_rows(self.reply_markup)]

    @property
    def keyboard(self) -> list[list[str]]:
        """Reply keyboard rows (the texts a user can tap to send)."""
        rows = (self.reply_markup or {}).get("keyboard") or []
        return [[b if isinstance(b, str) else str(b.get("text", "")) for b in row] for row in rows]

    @property
    def force_reply(self) -> bool:
        return (self.reply_markup or {}).get("force_reply") is True

    @property
    def invoice(self) -> JsonDict | None:
        """The invoice this message is (sendInvoice), or None."""
        return (self.attachment or {}).get("invoice")

    def to_telegram(self, reply_to: Message | None = None) -> JsonDict:
        """The Bot API `Message` object, as getUpdates and sendMessage return it."""
        result: JsonDict = {
            "message_id": self.message_id,
            "from": self.sender,
            "chat": self.chat,
            "date": self.date,
        }
        if self.text or not self.attachment:
            result["text"] = self.text
        result.update(self.attachment or {})
        if self.entities:
            result["entities"] = self.entities
        if self.edit_date is not None:
            result["edit_date"] = self.edit_date
        # Telegram only ever returns inline keyboards on a message; the others belong to the chat.
        if self.reply_markup and "inline_keyboard" in self.reply_markup:
            result["reply_markup"] = self.reply_markup
        if reply_to is not None:
            result["reply_to_message"] = reply_to.to_telegram()
        return result

    def to_dict(self) -> JsonDict:
        """The user-API shape: everything a web page needs to draw the message."""
        return {
            "message_id": self.message_id,
            "chat_id": self.chat_id,
            "date": self.date,
            "from": self.sender,
            "from_bot": self.from_bot,
            "text": self.text,
            "html": self.html,
            "entities": self.entities,
            "reply_markup": self.reply_markup,
            "buttons": [[list(b) for b in row] for row in self.buttons],
            "reply_to_message_id": self.reply_to_message_id,
            "edited": self.edited,
            "edit_date": self.edit_date,
            "force_reply": self.force_reply,
            "version": self.version,
            "attachment": self.attachment,
        }


@dataclass(frozen=True)
class CallbackAnswer:
    """What the bot answered to a button press (answerCallbackQuery)."""

    query_id: str
    message_id: int
    text: str = ""
    show_alert: bool = False
    url: str | None = None
    version: int = 0

    @property
    def buttons(self) -> list[list[Button]]:
        """Always empty: lets `press()` results be read the same way as a `Message`."""
        return []

    def to_dict(self) -> JsonDict:
        return dataclasses.asdict(self)


# "retired": only the keyboard went (a superseded menu), which is nobody's reply.
EventKind = Literal["new", "edited", "retired", "deleted", "callback_answer"]


class ChatEvent(NamedTuple):
    """One change to a chat; `version` numbers them 1, 2, 3… within the chat."""

    version: int
    kind: EventKind
    item: Message | CallbackAnswer


class ChatLog:
    """Everything one chat with one bot holds: messages, their edits, callback answers.

    Every change appends exactly one event and bumps `version`, so `events[v:]` is what
    happened after version `v`.
    """

    def __init__(self, chat: JsonDict) -> None:
        self.chat = chat
        self.version = 0
        self.events: list[ChatEvent] = []
        self._messages: dict[int, Message] = {}
        self._next_message_id = 1

    @property
    def chat_id(self) -> int:
        return int(self.chat["id"])

    @property
    def is_group(self) -> bool:
        return bool(self.chat["type"] != "private")

    @property
    def messages(self) -> list[Message]:
        return list(self._messages.values())

    @property
    def callback_answers(self) -> list[CallbackAnswer]:
        return [e.item for e in self.events if isinstance(e.item, CallbackAnswer)]

    def get(self, message_id: int) -> Message | None:
        return self._messages.get(message_id)

    def events_after(self, version: int) -> list[ChatEvent]:
        return self.events[version:]

    def add_message(
        self,
        sender: JsonDict,
        text: str,
        *,
        entities: list[JsonDict] | None = None,
        html_text: str | None = None,
        reply_markup: JsonDict | None = None,
        reply_to_message_id: int | None = None,
        attachment: JsonDict | None = None,
    ) -> Message:
        message = Message(
            message_id=self._next_message_id,
            chat=self.chat,
            sender=sender,
            date=int(time.time()),
            text=text,
            entities=entities or [],
            html=html.escape(text, quote=False) if html_text is None else html_text,
            reply_markup=reply_markup,
            reply_to_message_id=reply_to_message_id,
            version=self.version + 1,
            attachment=attachment,
        )
        self._next_message_id += 1
        self._messages[message.message_id] = message
        self._record("new", message)
        return message

    def edit(self, message_id: int, **changes: Any) -> Message:
        old = self._messages[message_id]
        new = dataclasses.replace(
            old,
            edited=old.edited + 1,
            edit_date=int(time.time()),
            version=self.version + 1,
            **changes,
        )
        self._messages[message_id] = new
        retired = set(changes) == {"reply_markup"} and not changes["reply_markup"]
        self._record("retired" if retired else "edited", new)
        return new

    def delete(self, message_id: int) -> Message:
        message = self._messages.pop(message_id)
        self._record("deleted", message)
        return message

    def add_callback_answer(
        self, query_id: str, message_id: int, text: str, show_alert: bool, url: str | None
    ) -> CallbackAnswer:
        answer = CallbackAnswer(query_id, message_id, text, show_alert, url, self.version + 1)
        self._record("callback_answer", answer)
        return answer

    def _record(self, kind: EventKind, item: Message | CallbackAnswer) -> None:
        self.version += 1
        self.events.append(ChatEvent(self.version, kind, item))

    def transcript(self, last: int = 20) -> str:
        """A readable dump of the chat, for assertion messages."""
        lines = [f"chat {self.chat_id} ({self.chat['type']}), last {last} messages:"]
        for message in self.messages[-last:]:
            lines.extend(_describe(message))
        if not self._messages:
            lines.append("  (no messages)")
        return "\n".join(lines)


class ChatUser:
    """One Telegram user in one chat (a private chat with the bot, or a group).

    Create with `TelegramEmulator.user()`; `in_group()` gives the same person in a group.
    Reads follow a cursor: `send`, `press` and `wait_for` only return bot messages that appeared
    after the previous action or result, so consecutive calls walk through the conversation.
    """

    def __init__(self, emulator: TelegramEmulator, user: JsonDict, log: ChatLog, bot_id: int):
        self._emu = emulator
        self.user = user
        self._log = log
        self.bot_id = bot_id
        self._cursor = log.version
        self.last_payment: Message | None = None

    def __repr__(self) -> str:
        return f"<ChatUser {self.id} in chat {self.chat_id}>"

    @property
    def id(self) -> int:
        return int(self.user["id"])

    @property
    def chat_id(self) -> int:
        return self._log.chat_id

    @property
    def chat(self) -> ChatLog:
        return self._log

    @property
    def messages(self) -> list[Message]:
        """Every message of the chat, the user's and the bot's, as they stand now."""
        return self._log.messages

    @property
    def bot_messages(self) -> list[Message]:
        return [m for m in self._log.messages if m.from_bot]

    @property
    def last_bot_message(self) -> Message | None:
        bot_messages = self.bot_messages
        return bot_messages[-1] if bot_messages else None

    @property
    def callback_answers(self) -> list[CallbackAnswer]:
        return self._log.callback_answers

    @property
    def last_callback_answer(self) -> CallbackAnswer | None:
        answers = self._log.callback_answers
        return answers[-1] if answers else None

    def in_group(
        self, chat_id: int, title: str = "Group", *, chat_type: str | None = None
    ) -> ChatUser:
        """The same person in a group chat with the bot (the group is created if new)."""
        log = self._emu.add_group(chat_id, title, chat_type=chat_type, bot_id=self.bot_id)
        return ChatUser(self._emu, self.user, log, self.bot_id)

    def transcript(self) -> str:
        return self._log.transcript()

    # --- typing -------------------------------------------------------------------------

    def send_nowait(self, text: str, *, reply_to: Message | int | None = None) -> Message:
        """Type `text` (optionally as a reply) and return the user's own message at once."""
        reply_id = reply_to.message_id if isinstance(reply_to, Message) else reply_to
        message = self._emu.post_message(
            self.chat_id, self.id, text, reply_to_message_id=reply_id, bot_id=self.bot_id
        )
        self._cursor = message.version
        return message

    async def send(
        self,
        text: str,
        *,
        reply_to: Message | int | None = None,
        timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - scenario DSL, as in the design
    ) -> Message:
        """Type `text`; return the first bot message sent or edited in this chat afterwards.

        Raises AssertionError with the chat transcript if none comes within `timeout` seconds.
        """
        self.send_nowait(text, reply_to=reply_to)
        return await self._next_bot_message(timeout, f"after sending {text!r}")

    async def reply_to(
        self,
        message: Message | int,
        text: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109
    ) -> Message:
        """Reply to `message` (how a user answers a ForceReply); returns like `send`."""
        return await self.send(text, reply_to=message, timeout=timeout)

    async def wait_for(
        self,
        predicate: Callable[[Message], bool] | None = None,
        *,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> Message:
        """The first bot message (sent or edited) since the cursor that matches `predicate`.

        Messages that arrived before this call but after the previous action count, so a
        notice pushed a moment too early is not missed.
        """
        description = "matching the predicate" if predicate else "at all"
        return await self._next_bot_message(timeout, description, predicate)

    # --- paying (Telegram Stars, see playground.telegram.payments) -----------------------

    async def pay(
        self,
        invoice: Message,
        *,
        timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109
    ) -> Message:
        """Pay an invoice in Stars: the bot gets a pre-checkout query and, once it answered
        ok, the `successful_payment` message (kept in `last_payment`). Returns the first bot
        message after the payment; raises PaymentFailed when the bot refused or was late."""
        self.last_payment = await self._emu.payments.pay(
            self.chat_id, self.id, invoice.message_id, bot_id=self.bot_id
        )
        self._cursor = self.last_payment.version
        return await self._next_bot_message(timeout, "after paying the invoice")

    def repeat(self, message: Message) -> None:
        """Telegram delivers this (payment) message's update once more."""
        self._cursor = self._log.version
        self._emu.repeat(self.chat_id, message.message_id, bot_id=self.bot_id)

    # --- pressing -----------------------------------------------------------------------

    def press_nowait(
        self, text: str | None = None, *, message: Message | None = None, data: str | None = None
    ) -> str:
        """Press a button without waiting; returns the callback query id."""
        target, button = self._find_button(text, message, data)
        assert button.value is not None
        self._cursor = self._log.version
        return self._emu.post_callback(
            self.chat_id, self.id, target.message_id, button.value, bot_id=self.bot_id
        )

    async def press(
        self,
        text: str | None = None,
        *,
        message: Message | None = None,
        data: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109
    ) -> Message | CallbackAnswer:
        """Press the inline button whose text contains `text` (or whose callback_data is `data`).

        The button is looked up on `message`, or else on the most recent bot message that has
        a matching one; an exact match beats a partial one, case-sensitive beats insensitive,
        and two equally good matches on one message raise AssertionError. Returns the first bot
        message sent or edited in this chat afterwards; if the bot only answered the callback
        query, returns that `CallbackAnswer`. Raises AssertionError after `timeout` seconds
        when neither came.
        """
        start = self._log.version
        query_id = self.press_nowait(text, message=message, data=data)
        label = f"pressing {text or data!r}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout

        def outcome() -> bool:
            return self._first_bot_message(start) is not None or self._answer(query_id) is not None

        if not await self._emu.wait_until(outcome, timeout):
            raise self._timeout_error(timeout, label + " (the callback query was not answered)")
        if self._first_bot_message(start) is None:
            await self._emu.wait_until(
                lambda: (
                    self._first_bot_message(start) is not None
                    or self._emu.quiet_seconds() >= PRESS_GRACE
                ),
                max(0.0, deadline - loop.time()),
                tick=PRESS_GRACE / 5,
            )
        reply = self._first_bot_message(start)
        if reply is not None:
            self._cursor = reply.version
            return reply
        answer = self._answer(query_id)
        assert answer is not None
        return answer

    # --- internals ----------------------------------------------------------------------

    async def _next_bot_message(
        self,
        timeout: float,  # noqa: ASYNC109
        description: str,
        predicate: Callable[[Message], bool] | None = None,
    ) -> Message:
        start = self._cursor
        found: list[Message] = []

        def arrived() -> bool:
            message = self._first_bot_message(start, predicate)
            if message is not None:
                found.append(message)
            return message is not None

        if not await self._emu.wait_until(arrived, timeout):
            raise self._timeout_error(timeout, description)
        self._cursor = found[0].version
        return found[0]

    def _first_bot_message(
        self, after: int, predicate: Callable[[Message], bool] | None = None
    ) -> Message | None:
        for event in self._log.events_after(after):
            item = event.item
            if not (
                isinstance(item, Message)
                and item.from_bot
                and event.kind not in ("deleted", "retired")
            ):
                continue
            if predicate is None or predicate(item):
                return item
        return None

    def _answer(self, query_id: str) -> CallbackAnswer | None:
        for answer in self._log.callback_answers:
            if answer.query_id == query_id:
                return answer
        return None

    def _timeout_error(self, timeout: float, description: str) -> AssertionError:
        parts = [
            f"{self!r}: no bot message within {timeout:g} s {description}.",
            self._log.transcript(),
            self._emu.diagnostics(self.chat_id, bot_id=self.bot_id),
        ]
        return AssertionError("\n".join(p for p in parts if p))

    def _find_button(
        self, text: str | None, message: Message | None, data: str | None
    ) -> tuple[Message, Button]:
        if (text is None) == (data is None):
            raise ValueError("press() needs exactly one of text or data")
        candidates = [message] if message is not None else list(reversed(self.bot_messages))
        if message is not None:
            # The caller may hold an old snapshot: press what the chat shows now.
            current = self._log.get(message.message_id)
            if current is None:
                raise AssertionError(f"message {message.message_id} was deleted")
            candidates = [current]
        for candidate in candidates:
            button = _match_button(candidate, text, data)
            if button is not None:
                _check_pressable(candidate, button)
                return candidate, button
        wanted = f"text containing {text!r}" if text is not None else f"callback_data {data!r}"
        raise AssertionError(
            f"no inline button with {wanted} in chat {self.chat_id}\n" + self._log.transcript()
        )


def _inline_rows(markup: JsonDict | None) -> list[list[JsonDict]]:
    rows = (markup or {}).get("inline_keyboard") or []
    return [[b for b in row if isinstance(b, dict)] for row in rows]


def _button(raw: JsonDict) -> Button:
    value = raw.get("callback_data", raw.get("url"))
    return Button(str(raw.get("text", "")), None if value is None else str(value))


def _iter_buttons(message: Message) -> Iterator[tuple[Button, JsonDict]]:
    for row in _inline_rows(message.reply_markup):
        for raw in row:
            yield _button(raw), raw


def _match_button(message: Message, text: str | None, data: str | None) -> Button | None:
    buttons = list(_iter_buttons(message))
    if data is not None:
        return next((b for b, raw in buttons if raw.get("callback_data") == data), None)
    assert text is not None
    folded = text.casefold()
    rules: Sequence[Callable[[str], bool]] = (
        lambda label: label == text,
        lambda label: label.casefold() == folded,
        lambda label: text in label,
        lambda label: folded in label.casefold(),
    )
    for rule in rules:
        found = list(dict.fromkeys(b for b, _ in buttons if rule(b.text)))
        if len(found) > 1:
            raise AssertionError(
                f"{text!r} matches several buttons on message {message.message_id}: "
                f"{[b.text for b in found]}; be more specific"
            )
        if found:
            return found[0]
    return None


def _check_pressable(message: Message, button: Button) -> None:
    for candidate, raw in _iter_buttons(message):
        if candidate == button and "callback_data" in raw:
            return
    raise AssertionError(
        f"button {button.text!r} on message {message.message_id} sends no callback query "
        f"(it is a URL or another kind of button)"
    )


def _describe(message: Message) -> list[str]:
    who = "bot" if message.from_bot else str(message.sender.get("first_name", "user"))
    edited = f" [edited x{message.edited}]" if message.edited else ""
    reply = f" (reply to #{message.reply_to_message_id})" if message.reply_to_message_id else ""
    lines = [f"  #{message.message_id} {who}{reply}: {message.text!r}{edited}"]
    for kind, value in (message.attachment or {}).items():
        lines.append(f"      {kind}: {value}")
    for row in message.buttons:
        lines.append("      " + " ".join(f"[{b.text} | {b.value}]" for b in row))
    if message.keyboard:
        lines.append(f"      keyboard: {message.keyboard}")
    if message.force_reply:
        lines.append("      (force reply)")
    return lines


# --- the HTTP user API ------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_LONG_POLL = 60.0


class UserInputError(Exception):
    """A user-API request that cannot be served; becomes a JSON error answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class UserApi:
    """JSON endpoints under /user-api/ that let a web page act as Telegram users."""

    def __init__(self, emulator: TelegramEmulator) -> None:
        self._emu = emulator

    def routes(self) -> list[web.RouteDef]:
        wrap = self._json_errors
        return [
            web.get("/user-api/bot", wrap(self.get_bot)),
            web.post("/user-api/users", wrap(self.post_user)),
            web.get("/user-api/chats", wrap(self.get_chats)),
            web.post("/user-api/chats", wrap(self.post_chat)),
            web.post("/user-api/send", wrap(self.post_send)),
            web.post("/user-api/press", wrap(self.post_press)),
            web.post("/user-api/pay", wrap(self.post_pay)),
            web.get("/user-api/chats/{chat_id}/messages", wrap(self.get_messages)),
            web.get("/user-api/chats/{chat_id}/callback-answers", wrap(self.get_answers)),
            web.get("/user-api/chats/{chat_id}/commands", wrap(self.get_commands)),
        ]

    @staticmethod
    def _json_errors(handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except UserInputError as error:
                return _error(str(error), error.status)

        return wrapped

    async def get_bot(self, request: web.Request) -> web.Response:
        bot_id = _optional_int(request.query.get("bot_id"), "bot_id")
        return _ok(bot=self._emu.bot_user(bot_id))

    async def post_user(self, request: web.Request) -> web.Response:
        body = await _body(request)
        user_id = _int_field(body, "id")
        user = self._emu.register_user(
            user_id,
            str(body.get("first_name") or f"User{user_id}"),
            last_name=_optional_str(body.get("last_name")),
            username=_optional_str(body.get("username")),
            language_code=_optional_str(body.get("language_code")),
        )
        log = self._emu.private_chat(user_id, bot_id=_optional_int(body.get("bot_id"), "bot_id"))
        return _ok(user=user, chat=log.chat)

    async def post_chat(self, request: web.Request) -> web.Response:
        body = await _body(request)
        chat_id = _int_field(body, "id")
        if chat_id >= 0:
            raise UserInputError("a group id is negative")
        for member in body.get("members") or []:
            member_id = _int_field({"member": member}, "member")
            if self._emu.find_user(member_id) is None:
                self._emu.register_user(member_id, f"User{member_id}")
        log = self._emu.add_group(
            chat_id,
            str(body.get("title") or "Group"),
            chat_type=_optional_str(body.get("type")),
            bot_id=_optional_int(body.get("bot_id"), "bot_id"),
        )
        return _ok(chat=log.chat)

    async def get_chats(self, request: web.Request) -> web.Response:
        bot_id = _optional_int(request.query.get("bot_id"), "bot_id")
        chats = [{"chat": log.chat, "version": log.version} for log in self._emu.chats(bot_id)]
        return _ok(chats=chats)

    async def post_send(self, request: web.Request) -> web.Response:
        body = await _body(request)
        user_id = _int_field(body, "user_id")
        log = self._chat(_int_field(body, "chat_id"), body.get("bot_id"))
        if self._emu.find_user(user_id) is None:
            raise UserInputError(f"unknown user {user_id}: POST /user-api/users first")
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise UserInputError("text must be a non-empty string")
        try:
            message = self._emu.post_message(
                log.chat_id,
                user_id,
                text,
                reply_to_message_id=_optional_int(body.get("reply_to_message_id"), "reply_to"),
                bot_id=_optional_int(body.get("bot_id"), "bot_id"),
            )
        except ValueError as error:
            raise UserInputError(str(error)) from error
        return _ok(message=message.to_dict())

    async def post_press(self, request: web.Request) -> web.Response:
        body = await _body(request)
        log = self._chat(_int_field(body, "chat_id"), body.get("bot_id"))
        try:
            query_id = self._emu.post_callback(
                log.chat_id,
                _int_field(body, "user_id"),
                _int_field(body, "message_id"),
                str(body.get("callback_data") or ""),
                bot_id=_optional_int(body.get("bot_id"), "bot_id"),
            )
        except ValueError as error:
            raise UserInputError(str(error)) from error
        return _ok(callback_query_id=query_id)

    async def post_pay(self, request: web.Request) -> web.Response:
        from playground.telegram.payments import PaymentFailed

        body = await _body(request)
        log = self._chat(_int_field(body, "chat_id"), body.get("bot_id"))
        try:
            payment = await self._emu.payments.pay(
                log.chat_id,
                _int_field(body, "user_id"),
                _int_field(body, "message_id"),
                bot_id=_optional_int(body.get("bot_id"), "bot_id"),
            )
        except PaymentFailed as error:
            return _ok(paid=False, error=str(error))
        except ValueError as error:
            raise UserInputError(str(error)) from error
        return _ok(paid=True, message=payment.to_dict())

    async def get_messages(self, request: web.Request) -> web.Response:
        log = self._chat(_path_chat_id(request), request.query.get("bot_id"))
        after = _optional_int(request.query.get("after_version"), "after_version") or 0
        try:
            timeout = float(request.query.get("timeout") or 0)
        except ValueError as error:
            raise UserInputError("timeout must be a number of seconds") from error
        if log.version <= after and timeout > 0:
            await self._emu.wait_until(
                lambda: log.version > after or self._emu.closing, min(timeout, MAX_LONG_POLL)
            )
        answers = log.callback_answers
        return _ok(
            version=log.version,
            messages=[m.to_dict() for m in log.messages],
            callback_answer=answers[-1].to_dict() if answers else None,
        )

    async def get_answers(self, request: web.Request) -> web.Response:
        log = self._chat(_path_chat_id(request), request.query.get("bot_id"))
        return _ok(callback_answers=[a.to_dict() for a in log.callback_answers])

    async def get_commands(self, request: web.Request) -> web.Response:
        bot_id = request.query.get("bot_id")
        log = self._chat(_path_chat_id(request), bot_id)
        user_id = _int_field(dict(request.query), "user_id")
        commands = self._emu.menu_commands(
            user_id, log.chat_id, bot_id=_optional_int(bot_id, "bot_id")
        )
        return _ok(commands=commands)

    def _chat(self, chat_id: int, bot_id: Any) -> ChatLog:
        log = self._emu.find_chat(chat_id, bot_id=_optional_int(bot_id, "bot_id"))
        if log is None:
            raise UserInputError(f"unknown chat {chat_id}", status=404)
        return log


def _ok(**fields: Any) -> web.Response:
    return web.json_response({"ok": True, **fields})


def _error(message: str, status: int) -> web.Response:
    return web.json_response({"ok": False, "error": message}, status=status)


async def _body(request: web.Request) -> JsonDict:
    try:
        body = await request.json()
    except ValueError as error:
        raise UserInputError("the body must be a JSON object") from error
    if not isinstance(body, dict):
        raise UserInputError("the body must be a JSON object")
    return body


def _int_field(body: JsonDict, name: str) -> int:
    value = _optional_int(body.get(name), name)
    if value is None:
        raise UserInputError(f"{name} is required")
    return value


def _optional_int(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise UserInputError(f"{name} must be an integer")
    try:
        return int(value)
    except (TypeError, ValueError) as error:
        raise UserInputError(f"{name} must be an integer") from error


def _optional_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _path_chat_id(request: web.Request) -> int:
    return _int_field({"chat_id": request.match_info["chat_id"]}, "chat_id")
