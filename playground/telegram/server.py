"""A Telegram Bot API emulator over real HTTP, for end-to-end tests and the offline playground.

An unmodified `aiogram.Bot` talks to it through
`AiohttpSession(api=TelegramAPIServer.from_base(emulator.url))`: routes are
`/bot{token}/{method}`, answers are the real `{"ok": ..., "result" | "error_code", ...}` shapes,
and the rules that bite real bots are enforced (HTML parsing, "message is not modified",
callback_data ≤ 64 bytes, callback queries answered once, rate limits when asked).

Supported methods: getMe, getUpdates (real long polling), sendMessage, editMessageText,
editMessageReplyMarkup, deleteMessage, answerCallbackQuery, sendChatAction, setMyCommands,
getMyCommands, deleteMyCommands, deleteWebhook, getWebhookInfo, set/getMyDescription,
set/getMyShortDescription, set/getMyName. Anything else answers 404 "Not Found: method not found".
Method names are case-insensitive, as on Telegram. Only parse_mode HTML is understood.

Where it is stricter than Telegram, on purpose: with `strict_html=True` (the default) an `&`
that does not start an entity is rejected (Telegram keeps it), so unescaped user text is caught
even when it happens not to contain `<`.

The user side (typing, pressing buttons, the `/user-api/` HTTP endpoints) is in `users.py`.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from aiogram.types import MessageEntity
from aiogram.utils.text_decorations import html_decoration
from aiohttp import web
from pydantic import ValidationError

from playground.telegram.users import ChatLog, ChatUser, JsonDict, Message, UserApi

logger = logging.getLogger(__name__)

MAX_TEXT_LENGTH = 4096
MAX_CALLBACK_DATA_BYTES = 64
MAX_INLINE_BUTTONS = 100
MAX_POLL_TIMEOUT = 50.0
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
GETUPDATES_CONFLICT = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request: injected fault",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: GETUPDATES_CONFLICT,
    500: "Internal Server Error",
    502: "Bad Gateway",
}
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


# --- errors -----------------------------------------------------------------------------


class ApiError(Exception):
    """A Bot API error answer: becomes `{"ok": false, "error_code", "description", ...}`."""

    def __init__(self, code: int, description: str, parameters: JsonDict | None = None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def response(self) -> web.Response:
        payload: JsonDict = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            payload["parameters"] = self.parameters
        return web.json_response(payload, status=self.code)


def _bad(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: {detail}")


def _too_many(retry_after: int) -> ApiError:
    return ApiError(
        429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
    )


# --- HTML parse mode --------------------------------------------------------------------

_TAG_ENTITY = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_CHAR_REF = re.compile(r"&(?:#([0-9]{1,8})|#[xX]([0-9a-fA-F]{1,8})|([a-zA-Z][a-zA-Z0-9]*));")
_PLAIN_RUN = re.compile(r"[^<&]+")


def utf16_length(text: str) -> int:
    """Telegram measures entity offsets and lengths in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


@dataclass
class _OpenTag:
    name: str
    attrs: dict[str, str]
    start: int  # UTF-16 offset in the plain text
    out_index: int  # where the tag's content starts in the output pieces
    language: str | None = None


class _HtmlParser:
    """Telegram's HTML subset, with tdlib's error messages (offsets in UTF-8 bytes)."""

    def __init__(self, source: str, strict: bool) -> None:
        self.src = source
        self.strict = strict
        self.pos = 0
        self.out: list[str] = []
        self.size = 0
        self.stack: list[_OpenTag] = []
        self.entities: list[JsonDict] = []

    def parse(self) -> tuple[str, list[JsonDict]]:
        while self.pos < len(self.src):
            char = self.src[self.pos]
            if char == "<":
                self._tag()
            elif char == "&":
                decoded, self.pos = self._char_ref(self.pos, strict=self.strict)
                self._emit(decoded)
            else:
                run = _PLAIN_RUN.match(self.src, self.pos)
                assert run is not None
                self._emit(run.group())
                self.pos = run.end()
        if self.stack:
            name = self.stack[-1].name
            raise self._error(f'Can\'t find end tag corresponding to start tag "{name}"')
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.out), self.entities

    def _error(self, detail: str) -> ApiError:
        return _bad(f"can't parse entities: {detail}")

    def _byte(self, pos: int) -> int:
        return len(self.src[:pos].encode("utf-8"))

    def _emit(self, text: str) -> None:
        self.out.append(text)
        self.size += utf16_length(text)

    def _char_ref(self, pos: int, *, strict: bool) -> tuple[str, int]:
        match = _CHAR_REF.match(self.src, pos)
        decoded = _decode_char_ref(match) if match else None
        if match and decoded is not None:
            return decoded, match.end()
        if strict:
            raise self._error(
                f'unescaped "&" at byte offset {self._byte(pos)}: write it as "&amp;"'
            )
        return "&", pos + 1  # what tdlib does with an "&" that is not an entity

    def _decode(self, start: int, end: int) -> str:
        """An attribute value. Always lenient: aiogram's html.link() leaves "&" in URLs raw."""
        pieces: list[str] = []
        pos = start
        while pos < end:
            amp = self.src.find("&", pos, end)
            if amp == -1:
                pieces.append(self.src[pos:end])
                break
            pieces.append(self.src[pos:amp])
            decoded, pos = self._char_ref(amp, strict=False)
            pieces.append(decoded)
        return "".join(pieces)

    def _tag(self) -> None:
        begin = self.pos
        if self.src.startswith("</", begin):
            self._end_tag(begin)
            return
        end = begin + 1
        while end < len(self.src) and not self.src[end].isspace() and self.src[end] != ">":
            end += 1
        if end >= len(self.src):
            raise self._error(f"Unclosed start tag at byte offset {self._byte(begin)}")
        name = self.src[begin + 1 : end].lower()
        if name not in _TAG_ENTITY:
            raise self._error(f'Unsupported start tag "{name}" at byte offset {self._byte(begin)}')
        attrs, self.pos = self._attributes(name, end, begin)
        self._check_attributes(name, attrs, begin)
        self.stack.append(_OpenTag(name, attrs, self.size, len(self.out)))

    def _attributes(self, tag: str, pos: int, begin: int) -> tuple[dict[str, str], int]:
        src = self.src
        attrs: dict[str, str] = {}
        unclosed = self._error(f"Unclosed start tag at byte offset {self._byte(begin)}")
        while True:
            while pos < len(src) and src[pos].isspace():
                pos += 1
            if pos >= len(src):
                raise unclosed
            if src[pos] == ">":
                return attrs, pos + 1
            start = pos
            while pos < len(src) and not src[pos].isspace() and src[pos] not in "=>":
                pos += 1
            name = src[start:pos].lower()
            if not name:
                raise self._error(
                    f'Empty attribute name in the tag "{tag}" at byte offset {self._byte(start)}'
                )
            while pos < len(src) and src[pos].isspace():
                pos += 1
            value = ""
            if pos < len(src) and src[pos] == "=":
                value, pos = self._attribute_value(pos + 1, unclosed)
            attrs[name] = value

    def _attribute_value(self, pos: int, unclosed: ApiError) -> tuple[str, int]:
        src = self.src
        while pos < len(src) and src[pos].isspace():
            pos += 1
        if pos >= len(src):
            raise unclosed
        if src[pos] in "\"'":
            close = src.find(src[pos], pos + 1)
            if close == -1:
                raise unclosed
            return self._decode(pos + 1, close), close + 1
        start = pos
        while pos < len(src) and not src[pos].isspace() and src[pos] != ">":
            pos += 1
        return self._decode(start, pos), pos

    def _check_attributes(self, name: str, attrs: dict[str, str], begin: int) -> None:
        where = f"at byte offset {self._byte(begin)}"
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise self._error(f'Tag "span" must have class "tg-spoiler" {where}')
        if name == "tg-emoji" and not attrs.get("emoji-id"):
            raise self._error(f'Tag "tg-emoji" must have attribute "emoji-id" {where}')

    def _end_tag(self, begin: int) -> None:
        close = self.src.find(">", begin)
        if close == -1:
            raise self._error(f"Unclosed end tag at byte offset {self._byte(begin)}")
        name = self.src[begin + 2 : close].strip().lower()
        if not self.stack:
            raise self._error(f"Unexpected end tag at byte offset {self._byte(begin)}")
        top = self.stack[-1]
        if name != top.name:
            raise self._error(
                f"Unmatched end tag at byte offset {self._byte(begin)}, "
                f'expected "</{top.name}>", found "</{name}>"'
            )
        self.stack.pop()
        self.pos = close + 1
        self._close(top)

    def _close(self, tag: _OpenTag) -> None:
        if tag.name == "code" and self.stack and self.stack[-1].name == "pre":
            # <pre><code class="language-x"> is one pre entity with a language, not two.
            language = tag.attrs.get("class", "")
            if language.startswith("language-"):
                self.stack[-1].language = language.removeprefix("language-")
            return
        length = self.size - tag.start
        if length == 0:
            return  # Telegram drops empty entities
        entity: JsonDict = {"type": _TAG_ENTITY[tag.name], "offset": tag.start, "length": length}
        if tag.name == "a":
            entity["url"] = tag.attrs.get("href") or "".join(self.out[tag.out_index :])
        elif tag.name == "pre" and tag.language:
            entity["language"] = tag.language
        elif tag.name == "blockquote" and "expandable" in tag.attrs:
            entity["type"] = "expandable_blockquote"
        elif tag.name == "tg-emoji":
            entity["custom_emoji_id"] = tag.attrs["emoji-id"]
        self.entities.append(entity)


def _decode_char_ref(match: re.Match[str]) -> str | None:
    decimal, hexadecimal, name = match.groups()
    if name is not None:
        return _NAMED_ENTITIES.get(name)
    code = int(decimal) if decimal is not None else int(hexadecimal, 16)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code)


def parse_html(source: str, *, strict: bool = True) -> tuple[str, list[JsonDict]]:
    """Plain text and entities of `source` in parse_mode HTML, or ApiError 400 like Telegram."""
    return _HtmlParser(source, strict).parse()


def trim_text(text: str, entities: list[JsonDict]) -> tuple[str, list[JsonDict]]:
    """Strip surrounding whitespace as Telegram does, keeping the entities in place."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    lead = utf16_length(text[: len(text) - len(text.lstrip())])
    size = utf16_length(stripped)
    kept = []
    for entity in entities:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, size)
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    return stripped, kept


# --- reply markup -----------------------------------------------------------------------

_INLINE_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
_BUTTON_URL = re.compile(r"^(?:(?:https?|tg)://)?[^\s/$.?#][^\s]*$", re.IGNORECASE)
_MARKUP_UNPARSABLE = "can't parse reply keyboard markup JSON object"


def _compact(value: Any) -> Any:
    """Drop null fields, as aiogram does, so markups from any client compare equal."""
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value


def check_reply_markup(value: Any, *, inline_only: bool = False) -> JsonDict | None:
    """The markup to store, or ApiError 400; an empty inline keyboard means no keyboard."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad(_MARKUP_UNPARSABLE)
    markup: JsonDict = _compact(value)
    if "inline_keyboard" in markup:
        count = _check_inline_keyboard(markup["inline_keyboard"])
        return markup if count else None
    if inline_only:
        raise _bad("inline keyboard expected")
    if "keyboard" in markup:
        rows = markup["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise _bad(_MARKUP_UNPARSABLE)
        return markup
    if markup.get("remove_keyboard") is True or markup.get("force_reply") is True:
        return markup
    raise _bad(_MARKUP_UNPARSABLE)


def _check_inline_keyboard(rows: Any) -> int:
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise _bad(_MARKUP_UNPARSABLE)
    buttons = [button for row in rows for button in row]
    if len(buttons) > MAX_INLINE_BUTTONS:
        raise _bad("reply markup is too long")
    for button in buttons:
        _check_inline_button(button)
    return len(buttons)


def _check_inline_button(button: Any) -> None:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise _bad('can\'t parse inline keyboard button: Field "text" must be of type String')
    if not any(action in button for action in _INLINE_ACTIONS):
        raise _bad(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )
    if "callback_data" in button:
        data = button["callback_data"]
        if not isinstance(data, str) or not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA_BYTES:
            raise _bad("BUTTON_DATA_INVALID")
    if "url" in button and not _BUTTON_URL.match(str(button["url"])):
        raise _bad(f"inline keyboard button URL {button['url']!r} is invalid: Wrong HTTP URL")


def _inline_part(markup: JsonDict | None) -> JsonDict | None:
    return markup if markup and "inline_keyboard" in markup else None


# --- request parameters -----------------------------------------------------------------

_JSON_FIELDS = frozenset(
    {
        "reply_markup",
        "entities",
        "reply_parameters",
        "allowed_updates",
        "commands",
        "scope",
        "link_preview_options",
        "caption_entities",
    }
)
_INT_FIELDS = frozenset(
    {
        "chat_id",
        "message_id",
        "reply_to_message_id",
        "offset",
        "limit",
        "timeout",
        "cache_time",
        "message_thread_id",
        "user_id",
    }
)
_BOOL_FIELDS = frozenset(
    {
        "show_alert",
        "disable_notification",
        "protect_content",
        "allow_sending_without_reply",
        "drop_pending_updates",
        "disable_web_page_preview",
    }
)
_INT_TEXT = re.compile(r"^-?\d+$")


async def _read_params(request: web.Request) -> JsonDict:
    """Parameters from the query string plus a form, multipart or JSON body, decoded."""
    params: JsonDict = dict(request.query)
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError as error:
            raise _bad("can't parse JSON object") from error
        if not isinstance(body, dict):
            raise _bad("can't parse JSON object")
        params.update(body)
    elif request.can_read_body:
        form = await request.post()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return {name: _decode_param(name, value) for name, value in params.items()}


def _decode_param(name: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if name in _JSON_FIELDS:
        try:
            return json.loads(value)
        except ValueError as error:
            detail = _MARKUP_UNPARSABLE if name == "reply_markup" else f"can't parse {name} JSON"
            raise _bad(detail) from error
    if name in _INT_FIELDS and _INT_TEXT.match(value):
        return int(value)
    if name in _BOOL_FIELDS and value in ("true", "false"):
        return value == "true"
    return value


def _int_param(params: JsonDict, name: str, missing: str) -> int:
    value = params.get(name)
    if value is None or value == "":
        raise _bad(missing)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"invalid {name} specified")
    return value


def _optional_int(params: JsonDict, name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    return _int_param(params, name, "")


# --- limits, faults, statistics ---------------------------------------------------------


@dataclass(frozen=True)
class RateLimits:
    """Telegram's broadcast limits for sendMessage; exceeding one answers 429."""

    global_per_second: float = 30
    per_chat_per_second: float = 1
    per_group_per_minute: float = 20


def _window_wait(sent: deque[float], window: float, limit: float, now: float) -> float:
    """Seconds until one more message fits in a sliding window (0 when it fits now)."""
    while sent and sent[0] <= now - window:
        sent.popleft()
    if len(sent) < limit:
        return 0.0
    return sent[0] + window - now


class _RateLimiter:
    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self._global: deque[float] = deque()
        self._chats: dict[int, deque[float]] = {}
        self._groups: dict[int, deque[float]] = {}

    def admit(self, chat_id: int, is_group: bool) -> int | None:
        """Record a send and return None, or return the retry_after it must wait."""
        now = time.monotonic()
        windows = [
            (self._global, 1.0, self.limits.global_per_second),
            (self._chats.setdefault(chat_id, deque()), 1.0, self.limits.per_chat_per_second),
        ]
        if is_group:
            windows.append(
                (self._groups.setdefault(chat_id, deque()), 60.0, self.limits.per_group_per_minute)
            )
        wait = max(_window_wait(sent, span, limit, now) for sent, span, limit in windows)
        if wait > 0:
            return max(1, math.ceil(wait))
        for sent, _, _ in windows:
            sent.append(now)
        return None


@dataclass
class EmulatorStats:
    """Counters for benchmarks: `too_many_requests` counts rate-limit 429s only."""

    requests: int = 0
    sent: int = 0
    edited: int = 0
    too_many_requests: int = 0
    injected_faults: int = 0
    errors: int = 0


@dataclass
class _Fault:
    method: str
    code: int
    description: str
    parameters: JsonDict | None
    remaining: int
    chat_id: int | None

    def error(self) -> ApiError:
        return ApiError(self.code, self.description, self.parameters)


class BotRequest(NamedTuple):
    """One request the bot made: the method name and its decoded parameters (never the token)."""

    method: str
    params: JsonDict


class BotError(NamedTuple):
    """One error answer the emulator gave the bot."""

    method: str
    params: JsonDict
    error_code: int
    description: str


# --- per-bot state ----------------------------------------------------------------------


@dataclass
class _CallbackQuery:
    query_id: str
    chat_id: int
    message_id: int
    answered: bool = False


@dataclass
class _BotState:
    token: str
    user: JsonDict  # the bot as a Telegram User: `from` of its messages
    privacy_mode: bool
    updates: list[JsonDict] = field(default_factory=list)
    next_update_id: int = 1
    delivered_upto: int = 0
    has_polled: bool = False
    poll_generation: int = 0
    allowed_updates: frozenset[str] | None = None
    dropped_updates: list[JsonDict] = field(default_factory=list)
    chats: dict[int, ChatLog] = field(default_factory=dict)
    callbacks: dict[str, _CallbackQuery] = field(default_factory=dict)
    commands: dict[tuple[str, str], list[JsonDict]] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> int:
        return int(self.user["id"])

    @property
    def username(self) -> str:
        return str(self.user["username"])

    def me(self) -> JsonDict:
        return {
            **self.user,
            "can_join_groups": True,
            "can_read_all_group_messages": not self.privacy_mode,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def enqueue(self, kind: str, payload: JsonDict) -> None:
        update = {"update_id": self.next_update_id, kind: payload}
        self.next_update_id += 1
        # Like Telegram, allowed_updates decides which updates are created at all.
        if self.allowed_updates is not None and kind not in self.allowed_updates:
            self.dropped_updates.append(update)
            return
        self.updates.append(update)

    def confirm(self, offset: int) -> None:
        if offset < 0:
            self.updates = self.updates[offset:]
        else:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]

    def has_undelivered(self) -> bool:
        return bool(self.updates) and self.updates[-1]["update_id"] > self.delivered_upto


_COMMAND = re.compile(r"^/([A-Za-z0-9_]{1,32})(?:@([A-Za-z0-9_]{3,32}))?")
_TOKEN = re.compile(r"^(\d+):[\w-]+$")

MethodHandler = Callable[[_BotState, JsonDict], Awaitable[Any]]


def _commands_key(params: JsonDict) -> tuple[str, str]:
    scope = params.get("scope") or {"type": "default"}
    return json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")


# --- the emulator -----------------------------------------------------------------------


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
    ) -> None:
        self.strict_html = strict_html
        self.privacy_mode = privacy_mode
        self.limits = limits
        self.stats = EmulatorStats()
        self.requests: list[BotRequest] = []
        self.errors: list[BotError] = []
        self.closing = False
        self._limiter = _RateLimiter(limits) if limits else None
        self._bots: dict[int, _BotState] = {}
        self._by_token: dict[str, _BotState] = {}
        self._users: dict[int, JsonDict] = {}
        self._blocked: set[int] = set()
        self._faults: list[_Fault] = []
        self._next_query = 1
        self._change = asyncio.Event()
        self._inflight = 0
        self._last_activity = time.monotonic()
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
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
        state = _BotState(token=token, user=user, privacy_mode=self.privacy_mode)
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
        key = _commands_key({"scope": scope, "language_code": language_code})
        return list(self._bot(bot_id).commands.get(key, []))

    def _bot(self, bot_id: int | None) -> _BotState:
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
            user, text, entities=_command_entities(text), reply_to_message_id=reply_to_message_id
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
        bot.callbacks[query_id] = _CallbackQuery(query_id, chat_id, message_id)
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

    def _user_in_chat(
        self, bot: _BotState, user_id: int, chat_id: int
    ) -> tuple[JsonDict, ChatLog]:
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
        self, bot: _BotState, log: ChatLog, text: str, reply_to: Message | None
    ) -> bool:
        """Privacy mode: in groups the bot only sees commands and replies to its messages."""
        if not (bot.privacy_mode and log.is_group):
            return True
        if reply_to is not None and reply_to.sender.get("id") == bot.id:
            return True
        command = _COMMAND.match(text)
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
        parameters = None
        if error_code == 429:
            text = description or f"Too Many Requests: retry after {retry_after}"
            parameters = {"retry_after": retry_after}
        else:
            text = description or _DEFAULT_DESCRIPTIONS.get(error_code, f"Error {error_code}")
        self._faults.append(_Fault(method.lower(), error_code, text, parameters, count, chat_id))

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
        """How long the bot has been idle: 0 while a request runs or an update waits for it."""
        if self._inflight or any(
            b.has_polled and b.has_undelivered() for b in self._bots.values()
        ):
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
        if not bot.has_polled:
            lines.append("the bot has not called getUpdates yet")
        elif bot.has_undelivered():
            lines.append(f"{len(bot.updates)} update(s) not yet fetched by getUpdates")
        return "\n".join(lines)

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
            params = await _read_params(request)
            self.requests.append(BotRequest(name, params))
            self.stats.requests += 1
            self._changed()
            if known is None:
                raise ApiError(404, "Not Found: method not found")
            self._take_fault(name, params)
            result = await known[1](bot, params)
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

    def _take_fault(self, method: str, params: JsonDict) -> None:
        for fault in self._faults:
            if fault.method != method.lower() or fault.remaining <= 0:
                continue
            if fault.chat_id is not None and params.get("chat_id") != fault.chat_id:
                continue
            fault.remaining -= 1
            self.stats.injected_faults += 1
            self._faults = [f for f in self._faults if f.remaining > 0]
            raise fault.error()

    def _record_error(self, method: str, params: JsonDict, error: ApiError) -> None:
        self.errors.append(BotError(method, params, error.code, error.description))
        self.stats.errors += 1

    def _method_table(self) -> dict[str, MethodHandler]:
        return {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
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
        }

    # --- methods: the bot itself and updates --------------------------------------------

    async def _get_me(self, bot: _BotState, params: JsonDict) -> JsonDict:
        return bot.me()

    async def _get_updates(self, bot: _BotState, params: JsonDict) -> list[JsonDict]:
        offset = _optional_int(params, "offset")
        limit = min(max(_optional_int(params, "limit") or 100, 1), 100)
        timeout = min(max(_optional_int(params, "timeout") or 0, 0), MAX_POLL_TIMEOUT)
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

    async def _delete_webhook(self, bot: _BotState, params: JsonDict) -> bool:
        if params.get("drop_pending_updates") is True:
            bot.updates.clear()
        return True

    async def _get_webhook_info(self, bot: _BotState, params: JsonDict) -> JsonDict:
        return {
            "url": "",
            "has_custom_certificate": False,
            "pending_update_count": len(bot.updates),
        }

    # --- methods: messages --------------------------------------------------------------

    def _target_chat(self, bot: _BotState, params: JsonDict) -> ChatLog:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _bad("chat_id is empty")
        log = bot.chats.get(chat_id) if isinstance(chat_id, int) else None
        if log is None:
            raise _bad("chat not found")
        if log.chat_id in self._blocked:
            if not log.is_group:
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            raise ApiError(403, f"Forbidden: bot was kicked from the {log.chat['type']} chat")
        return log

    def _target_message(
        self, bot: _BotState, params: JsonDict, action: str
    ) -> tuple[ChatLog, Message]:
        if params.get("inline_message_id"):
            raise _bad("inline messages are not supported by the emulator")
        log = self._target_chat(bot, params)
        message_id = _int_param(params, "message_id", "message identifier is not specified")
        message = log.get(message_id)
        if message is None:
            raise _bad(f"message to {action} not found")
        return log, message

    def _formatted_text(self, params: JsonDict) -> tuple[str, list[JsonDict], str]:
        """Plain text, entities and HTML of a text parameter, validated like Telegram."""
        source = params.get("text")
        if not isinstance(source, str) or not source.strip():
            raise _bad("message text is empty")
        mode = str(params.get("parse_mode") or "")
        if mode.lower() == "html":
            text, entities = parse_html(source, strict=self.strict_html)
            markup = source
        elif mode:
            raise _bad(f"can't parse entities: the emulator does not support parse_mode {mode}")
        else:
            text, entities = source, _entities_param(params.get("entities"))
            markup = _render_html(text, entities)
        text, entities = trim_text(text, entities)
        if not text:
            raise _bad("message text is empty")
        if len(text) > MAX_TEXT_LENGTH:
            raise _bad("message is too long")
        return text, entities, markup

    def _reply_target(self, log: ChatLog, params: JsonDict) -> Message | None:
        wanted = params.get("reply_parameters") or {}
        if not isinstance(wanted, dict):
            raise _bad("can't parse reply parameters JSON object")
        message_id = wanted.get("message_id", params.get("reply_to_message_id"))
        if message_id is None:
            return None
        replied = log.get(message_id) if isinstance(message_id, int) else None
        lenient = wanted.get(
            "allow_sending_without_reply", params.get("allow_sending_without_reply")
        )
        if replied is None and lenient is not True:
            raise _bad("message to be replied not found")
        return replied

    def _admit(self, log: ChatLog) -> None:
        if self._limiter is None:
            return
        retry_after = self._limiter.admit(log.chat_id, log.is_group)
        if retry_after is not None:
            self.stats.too_many_requests += 1
            raise _too_many(retry_after)

    async def _send_message(self, bot: _BotState, params: JsonDict) -> JsonDict:
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
        return message.to_telegram(reply_to)

    async def _edit_message_text(self, bot: _BotState, params: JsonDict) -> JsonDict:
        log, message = self._target_message(bot, params, "edit")
        if not message.from_bot:
            raise _bad("message can't be edited")
        text, entities, markup_html = self._formatted_text(params)
        inline = check_reply_markup(params.get("reply_markup"), inline_only=True)
        # Without reply_markup Telegram removes the inline keyboard; a reply keyboard stays.
        kept = message.reply_markup if _inline_part(message.reply_markup) is None else None
        unchanged = (text, entities, inline) == (
            message.text,
            message.entities,
            _inline_part(message.reply_markup),
        )
        if unchanged:
            raise _bad(NOT_MODIFIED)
        edited = log.edit(
            message.message_id,
            text=text,
            entities=entities,
            html=markup_html,
            reply_markup=inline or kept,
        )
        self.stats.edited += 1
        return edited.to_telegram(self._replied(log, edited))

    async def _edit_message_reply_markup(self, bot: _BotState, params: JsonDict) -> JsonDict:
        log, message = self._target_message(bot, params, "edit")
        if not message.from_bot:
            raise _bad("message can't be edited")
        inline = check_reply_markup(params.get("reply_markup"), inline_only=True)
        if inline == _inline_part(message.reply_markup):
            raise _bad(NOT_MODIFIED)
        edited = log.edit(message.message_id, reply_markup=inline)
        self.stats.edited += 1
        return edited.to_telegram(self._replied(log, edited))

    @staticmethod
    def _replied(log: ChatLog, message: Message) -> Message | None:
        return log.get(message.reply_to_message_id) if message.reply_to_message_id else None

    async def _delete_message(self, bot: _BotState, params: JsonDict) -> bool:
        log, message = self._target_message(bot, params, "delete")
        log.delete(message.message_id)
        return True

    async def _answer_callback_query(self, bot: _BotState, params: JsonDict) -> bool:
        query = bot.callbacks.get(str(params.get("callback_query_id") or ""))
        if query is None or query.answered:
            raise _bad(QUERY_TOO_OLD)
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

    async def _send_chat_action(self, bot: _BotState, params: JsonDict) -> bool:
        self._target_chat(bot, params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        return True

    # --- methods: commands and profile --------------------------------------------------

    async def _set_my_commands(self, bot: _BotState, params: JsonDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _bad("can't parse commands JSON object")
        for command in commands:
            name = command.get("command") if isinstance(command, dict) else None
            if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]{1,32}", name):
                raise _bad("BOT_COMMAND_INVALID")
            description = command.get("description")
            if not isinstance(description, str) or not 1 <= len(description) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
        bot.commands[_commands_key(params)] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    async def _get_my_commands(self, bot: _BotState, params: JsonDict) -> list[JsonDict]:
        return bot.commands.get(_commands_key(params), [])

    async def _delete_my_commands(self, bot: _BotState, params: JsonDict) -> bool:
        bot.commands.pop(_commands_key(params), None)
        return True

    def _setting_setter(self, name: str) -> MethodHandler:
        async def setter(bot: _BotState, params: JsonDict) -> bool:
            key = f"{name}:{params.get('language_code') or ''}"
            bot.settings[key] = str(params.get(name) or "")
            return True

        return setter

    def _setting_getter(self, name: str) -> MethodHandler:
        async def getter(bot: _BotState, params: JsonDict) -> JsonDict:
            default = bot.user["first_name"] if name == "name" else ""
            key = f"{name}:{params.get('language_code') or ''}"
            return {name: bot.settings.get(key, default)}

        return getter


def _command_entities(text: str) -> list[JsonDict]:
    command = _COMMAND.match(text)
    if command is None:
        return []
    return [{"type": "bot_command", "offset": 0, "length": len(command.group())}]


def _entities_param(value: Any) -> list[JsonDict]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        raise _bad("can't parse entities JSON object")
    return [_compact(e) for e in value]


def _render_html(text: str, entities: list[JsonDict]) -> str:
    """The HTML of a message sent with explicit entities (for the playground to draw)."""
    if not entities:
        return html.escape(text, quote=False)
    try:
        parsed = [MessageEntity.model_validate(e) for e in entities]
    except ValidationError as error:
        raise _bad("can't parse entities JSON object") from error
    return html_decoration.unparse(text, parsed)
