"""What the emulator remembers: each bot's updates, chats, callback queries, commands and
settings, and the log of the bot's requests, errors and counters."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import NamedTuple

from playground.telegram.errors import JsonDict
from playground.telegram.users import ChatLog


@dataclass
class CallbackQuery:
    query_id: str
    chat_id: int
    message_id: int
    answered: bool = False


@dataclass
class BotState:
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
    callbacks: dict[str, CallbackQuery] = field(default_factory=dict)
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


def commands_key(params: JsonDict) -> tuple[str, str]:
    scope = params.get("scope") or {"type": "default"}
    return json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")


@dataclass
class EmulatorStats:
    """Counters for benchmarks: `too_many_requests` counts rate-limit 429s only."""

    requests: int = 0
    sent: int = 0
    edited: int = 0
    too_many_requests: int = 0
    injected_faults: int = 0
    errors: int = 0


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
