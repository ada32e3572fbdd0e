"""Webhook mode: after `setWebhook`, queued updates are POSTed to the bot instead of fetched.

As on Telegram: one update per POST, with the `X-Telegram-Bot-Api-Secret-Token` header when a
secret was set; up to `max_connections` POSTs at once, but one chat's updates one at a time and
in order (the next waits until the previous one was answered 200); an update whose POST failed
or timed out is sent again later, and nothing else is. A 200 answer may carry a method to call
(aiogram's "reply in the webhook response"), which is then executed like a request of the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from typing import NamedTuple

import aiohttp

from playground.telegram.errors import JsonDict, bad_request
from playground.telegram.params import decode_params
from playground.telegram.state import BotState

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
DEFAULT_MAX_CONNECTIONS = 40
# Telegram gives up on a webhook POST after about a minute; tests usually want less.
DEFAULT_TIMEOUT = 60.0
# Seconds before sending a failed update again: growing, like Telegram's, but short.
RETRY_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0)
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")

CallMethod = Callable[[BotState, str, JsonDict], Awaitable[object]]


@dataclass(frozen=True)
class Webhook:
    """What `setWebhook` set: where updates go and how."""

    url: str
    secret_token: str | None = None
    max_connections: int = DEFAULT_MAX_CONNECTIONS

    @classmethod
    def from_params(cls, params: JsonDict) -> Webhook:
        url = str(params.get("url") or "").strip()
        if not url.startswith(("http://", "https://")):
            raise bad_request("bad webhook: an HTTP URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and secret != "" and not _SECRET.match(str(secret)):
            raise bad_request("bad webhook: secret token contains unallowed characters")
        raw_max = params.get("max_connections")
        max_connections = DEFAULT_MAX_CONNECTIONS if raw_max in (None, "") else int(raw_max)
        if not 1 <= max_connections <= 100:
            raise bad_request("bad webhook: max_connections must be from 1 to 100")
        return cls(url, str(secret) if secret else None, max_connections)


class WebhookDelivery(NamedTuple):
    """One POST of one update: its HTTP status (None: no answer) and what went wrong."""

    update_id: int
    chat_id: int | None
    attempt: int
    status: int | None
    error: str
    at: float  # time.monotonic() when the POST ended


@dataclass
class _Pending:
    attempts: int = 0
    retry_at: float = 0.0


def chat_of(update: JsonDict) -> int | None:
    """The chat an update belongs to (what orders deliveries), or its sender for others."""
    for key, payload in update.items():
        if key == "update_id" or not isinstance(payload, dict):
            continue
        chat = payload.get("chat") or (payload.get("message") or {}).get("chat")
        if isinstance(chat, dict) and "id" in chat:
            return int(chat["id"])
        sender = payload.get("from")
        if isinstance(sender, dict) and "id" in sender:
            return int(sender["id"])
    return None


@dataclass
class Deliverer:
    """Delivers one bot's queued updates to its webhook until stopped."""

    bot: BotState
    webhook: Webhook
    call_method: CallMethod
    wait_for_change: Callable[[float], Awaitable[None]]
    log: list[WebhookDelivery]
    timeout: float = DEFAULT_TIMEOUT
    last_error: tuple[int, str] | None = None
    _pending: dict[int, _Pending] = field(default_factory=dict)
    _in_flight: set[int] = field(default_factory=set)
    _task: asyncio.Task[None] | None = None
    _session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"webhook {self.bot.id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def busy(self) -> bool:
        """An update waits for delivery or is being delivered."""
        return bool(self.bot.updates or self._in_flight)

    async def _run(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                for update in self._ready():
                    self._in_flight.add(update["update_id"])
                    task = asyncio.create_task(self._deliver(update))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                await self.wait_for_change(self._next_wake())
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _ready(self) -> list[JsonDict]:
        """The head update of each chat that is neither in flight nor waiting for its retry."""
        room = self.webhook.max_connections - len(self._in_flight)
        now = time.monotonic()
        seen: set[int | None] = set()
        ready: list[JsonDict] = []
        for update in self.bot.updates:
            if room <= len(ready):
                break
            chat = chat_of(update)
            if chat is not None and chat in seen:
                continue  # a chat's later update waits for its earlier one
            seen.add(chat)
            update_id = update["update_id"]
            pending = self._pending.get(update_id)
            if update_id in self._in_flight or (pending and pending.retry_at > now):
                continue
            ready.append(update)
        return ready

    def _next_wake(self) -> float:
        now = time.monotonic()
        waits = [p.retry_at - now for p in self._pending.values() if p.retry_at > now]
        return min([0.05, *waits])

    async def _deliver(self, update: JsonDict) -> None:
        update_id = update["update_id"]
        pending = self._pending.setdefault(update_id, _Pending())
        pending.attempts += 1
        status: int | None = None
        error = ""
        reply: tuple[str, bytes] | None = None
        headers = {SECRET_HEADER: self.webhook.secret_token} if self.webhook.secret_token else {}
        assert self._session is not None
        try:
            async with self._session.post(
                self.webhook.url, json=update, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                body = await response.read()
                reply = (response.headers.get("Content-Type", ""), body)
        except TimeoutError:
            error = "Read timeout expired"
        except aiohttp.ClientError as failure:
            error = f"Connection failed: {type(failure).__name__}"
        finally:
            self._in_flight.discard(update_id)
        if status != 200 and not error:
            error = f"Wrong response from the webhook: {status}"
        self.log.append(
            WebhookDelivery(
                update_id, chat_of(update), pending.attempts, status, error, time.monotonic()
            )
        )
        if error:
            self.last_error = (int(time.time()), error)
            delay = RETRY_DELAYS[min(pending.attempts, len(RETRY_DELAYS)) - 1]
            pending.retry_at = time.monotonic() + delay
            return
        del self._pending[update_id]
        self.bot.updates = [u for u in self.bot.updates if u["update_id"] != update_id]
        if reply is not None:
            await self._run_reply(*reply)

    async def _run_reply(self, content_type: str, body: bytes) -> None:
        """A method in the answer to the POST is executed, as Telegram does."""
        params = _reply_params(content_type, body)
        method = params.pop("method", None)
        if not isinstance(method, str) or not method:
            return
        try:
            await self.call_method(self.bot, method, decode_params(params))
        except Exception:  # an error answer has nowhere to go: Telegram drops it too
            logger.info("the method in a webhook answer failed: %s", method, exc_info=True)


def _reply_params(content_type: str, body: bytes) -> JsonDict:
    """The form fields of the answer (aiogram sends multipart form-data, others JSON)."""
    if content_type.startswith("application/json"):
        try:
            loaded = json.loads(body or b"{}")
        except ValueError:
            return {}
        return loaded if isinstance(loaded, dict) else {}
    if not content_type.startswith("multipart/"):
        return {}
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    params: JsonDict = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            params[name] = payload.decode()
    return params
