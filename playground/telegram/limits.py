"""What makes the emulator refuse a call: Telegram's rate limits and injected faults."""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from dataclasses import dataclass

from playground.telegram.errors import DEFAULT_DESCRIPTIONS, ApiError, JsonDict


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


class RateLimiter:
    """Sliding one-second and one-minute windows: overall, per chat and per group."""

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        # One window for every sender of the token: all instances of a bot share it.
        self._global: deque[float] = deque()
        self._chats: dict[int, deque[float]] = {}
        self._groups: dict[int, deque[float]] = {}
        self.refusals: Counter[str] = Counter()  # 429s by the window that was full

    def admit(self, chat_id: int, is_group: bool) -> int | None:
        """Record a send and return None, or return the retry_after it must wait."""
        now = time.monotonic()
        windows = [
            ("overall", self._global, 1.0, self.limits.global_per_second),
            (
                "chat",
                self._chats.setdefault(chat_id, deque()),
                1.0,
                self.limits.per_chat_per_second,
            ),
        ]
        if is_group:
            group = self._groups.setdefault(chat_id, deque())
            windows.append(("group", group, 60.0, self.limits.per_group_per_minute))
        waits = {name: _window_wait(sent, span, limit, now) for name, sent, span, limit in windows}
        wait = max(waits.values())
        if wait > 0:
            self.refusals.update(name for name, seconds in waits.items() if seconds > 0)
            return max(1, math.ceil(wait))
        for _, sent, _, _ in windows:
            sent.append(now)
        return None


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


class Faults:
    """Errors planned for the bot's next calls of a method (`TelegramEmulator.fail_next`)."""

    def __init__(self) -> None:
        self._planned: list[_Fault] = []

    def add(
        self,
        method: str,
        *,
        error_code: int,
        retry_after: int,
        count: int,
        description: str | None,
        chat_id: int | None,
    ) -> None:
        parameters = None
        if error_code == 429:
            text = description or f"Too Many Requests: retry after {retry_after}"
            parameters = {"retry_after": retry_after}
        else:
            text = description or DEFAULT_DESCRIPTIONS.get(error_code, f"Error {error_code}")
        self._planned.append(_Fault(method.lower(), error_code, text, parameters, count, chat_id))

    def take(self, method: str, params: JsonDict) -> ApiError | None:
        """The error planned for this call (using it up), or None."""
        for fault in self._planned:
            if fault.method != method.lower() or fault.remaining <= 0:
                continue
            if fault.chat_id is not None and params.get("chat_id") != fault.chat_id:
                continue
            fault.remaining -= 1
            self._planned = [f for f in self._planned if f.remaining > 0]
            return fault.error()
        return None
