"""Async client of an SMM panel's API v2: one POST endpoint, form fields ``key`` and ``action``.

Read-only calls retry transient failures; calls that change things (add, refill, cancel) never do.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from types import TracebackType
from typing import Any, Literal, Protocol, Self, TypeVar

import aiohttp
from aiolimiter import AsyncLimiter
from pydantic import SecretStr

from bot.panel.errors import OrderOutcomeUnknown, PanelError, PanelUnavailable, clip
from bot.panel.models import (
    Balance,
    CancelResult,
    OrderStatusResult,
    RefillResult,
    RefillStatusResult,
    Service,
    decode_array,
    decode_json,
    error_text,
    read_balance,
    read_cancels,
    read_order_id,
    read_refill_id,
    read_refill_status,
    read_refill_statuses,
    read_refills,
    read_services,
    read_status,
    read_statuses,
)

log = logging.getLogger("bot.panel")

T = TypeVar("T")
R = TypeVar("R")

REDACTED = "***"  # what replaces the key wherever a panel echoes it
BATCH_SIZE = 100  # the API's limit of ids per multi-id call
# The most of an answer that is read: a catalog can be large, every other answer is small.
MAX_ANSWER_BYTES = 1 << 20
MAX_SERVICES_ANSWER_BYTES = 8 << 20

ListField = str | Sequence[str]
# How one request to the panel ended: an answer, a refusal (PanelError), no usable answer
# (PanelUnavailable), or an add that may have been placed (OrderOutcomeUnknown).
CallOutcome = Literal["ok", "refused", "unavailable", "unknown"]
# Told of every request: its action, its seconds (the wait for the rate limit included), outcome.
CallObserver = Callable[[str, float, CallOutcome], None]


@dataclass(frozen=True, slots=True)
class _AddBound:
    """Loop times an add must keep: leave the queue by ``queue_until``, be done by ``until``."""

    queue_until: float
    until: float


def add_deadline(timeout: float) -> float:
    """The longest one ``add`` takes, its queue included: 2 × the timeout.

    An add waits at most ``timeout`` for a free slot and the rate limit (past that it was never
    sent: PanelUnavailable), then at most ``timeout`` for the answer (past that it may have
    reached the panel: OrderOutcomeUnknown), and never beyond this bound.
    """
    return 2 * timeout


class RateLimit(Protocol):
    """What paces the requests: `acquire` returns when one more may go.

    aiolimiter's `AsyncLimiter` is one (this process's own, the default); several instances
    pass one they share, so that the panel sees one rate per key however many run.
    """

    async def acquire(self) -> None: ...


def _own_limiter(max_rps: float) -> AsyncLimiter:
    # aiolimiter's bucket holds max_rate tokens, so below 1 rps stretch the period instead.
    return AsyncLimiter(max_rps, 1.0) if max_rps >= 1 else AsyncLimiter(1, 1.0 / max_rps)


class PanelClient:
    """One panel account: a lazily created, reused aiohttp session, rate-limited per key."""

    def __init__(
        self,
        api_url: str,
        api_key: str | SecretStr,
        *,
        timeout: float = 30.0,
        max_rps: float = 5.0,
        max_concurrency: int = 4,
        retries: int = 3,
        retry_backoff: float = 0.5,
        limiter: RateLimit | None = None,
        on_call: CallObserver | None = None,
    ) -> None:
        if max_rps <= 0 or max_concurrency < 1 or retries < 0 or timeout <= 0:
            raise ValueError("timeout and max_rps must be > 0, max_concurrency >= 1, retries >= 0")
        self._url = api_url
        self._key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        self._timeout_seconds = timeout
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        # A limiter passed in (shared by several instances) replaces this process's own.
        self._limiter: RateLimit = limiter if limiter is not None else _own_limiter(max_rps)
        self._slots = asyncio.Semaphore(max_concurrency)
        self._retries = retries
        self._retry_backoff = retry_backoff
        self._session: aiohttp.ClientSession | None = None
        self._on_call = on_call

    @property
    def api_url(self) -> str:
        return self._url

    @property
    def add_deadline(self) -> float:
        """The longest one ``add`` takes, in seconds (see `add_deadline`)."""
        return add_deadline(self._timeout_seconds)

    def __repr__(self) -> str:
        return f"PanelClient(api_url={self._url!r}, api_key=SecretStr('**********'))"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    # --- the API ----------------------------------------------------------------------------

    async def balance(self) -> Balance:
        return await self._call("balance", {}, read_balance, read_only=True)

    async def services(self) -> list[Service]:
        return await self._call("services", {}, read_services, read_only=True)

    async def add(
        self,
        service: int,
        *,
        link: str | None = None,
        quantity: int | None = None,
        runs: int | None = None,
        interval: int | None = None,
        comments: ListField | None = None,
        usernames: ListField | None = None,
        hashtags: ListField | None = None,
        hashtag: str | None = None,
        username: str | None = None,
        media: str | None = None,
        answer_number: int | str | None = None,
        groups: ListField | None = None,
        keywords: ListField | None = None,
        min: int | None = None,
        max: int | None = None,
        posts: int | None = None,
        old_posts: int | None = None,
        delay: int | None = None,
        expiry: str | date | None = None,
    ) -> int:
        """Place an order; the panel's order id. Sent once, never retried.

        Raises PanelError when the panel refuses, OrderOutcomeUnknown when the request may
        have reached the panel but no answer was understood, PanelUnavailable when it
        could not be sent at all.
        """
        fields = form_fields(
            service=service, link=link, quantity=quantity, runs=runs, interval=interval,
            comments=comments, usernames=usernames, hashtags=hashtags, hashtag=hashtag,
            username=username, media=media, answer_number=answer_number, groups=groups,
            keywords=keywords, min=min, max=max, posts=posts, old_posts=old_posts,
            delay=delay, expiry=expiry,
        )  # fmt: skip
        started = asyncio.get_running_loop().time()
        bound = _AddBound(started + self._timeout_seconds, started + self.add_deadline)
        return await self._call("add", fields, read_order_id, read_only=False, bound=bound)

    async def status(self, order: int) -> OrderStatusResult:
        parse = partial(read_status, int(order))
        return await self._call("status", {"order": str(order)}, parse, read_only=True)

    async def statuses(self, orders: Iterable[int]) -> dict[int, OrderStatusResult]:
        async def chunk_call(chunk: list[int]) -> dict[int, OrderStatusResult]:
            parse = partial(read_statuses, chunk)
            return await self._call("status", _ids_field(chunk), parse, read_only=True)

        return await self._batched(
            orders, chunk_call, lambda order, error: OrderStatusResult(order=order, error=error)
        )

    async def refill(self, order: int) -> int:
        return await self._call("refill", {"order": str(order)}, read_refill_id, read_only=False)

    async def refills(self, orders: Iterable[int]) -> dict[int, RefillResult]:
        async def chunk_call(chunk: list[int]) -> dict[int, RefillResult]:
            parse = partial(read_refills, chunk)
            return await self._call("refill", _ids_field(chunk), parse, read_only=False)

        return await self._batched(
            orders, chunk_call, lambda order, error: RefillResult(order=order, error=error)
        )

    async def refill_status(self, refill: int) -> RefillStatusResult:
        parse = partial(read_refill_status, int(refill))
        return await self._call("refill_status", {"refill": str(refill)}, parse, read_only=True)

    async def refill_statuses(self, refills: Iterable[int]) -> dict[int, RefillStatusResult]:
        async def chunk_call(chunk: list[int]) -> dict[int, RefillStatusResult]:
            parse = partial(read_refill_statuses, chunk)
            fields = _ids_field(chunk, name="refills")
            return await self._call("refill_status", fields, parse, read_only=True)

        return await self._batched(
            refills,
            chunk_call,
            lambda refill, error: RefillStatusResult(refill=refill, error=error),
        )

    async def cancel(self, orders: Iterable[int]) -> dict[int, CancelResult]:
        async def chunk_call(chunk: list[int]) -> dict[int, CancelResult]:
            parse = partial(read_cancels, chunk)
            return await self._call("cancel", _ids_field(chunk), parse, read_only=False)

        return await self._batched(
            orders, chunk_call, lambda order, error: CancelResult(order=order, error=error)
        )

    # --- batching -----------------------------------------------------------------------------

    async def _batched(
        self,
        ids: Iterable[int],
        chunk_call: Callable[[list[int]], Awaitable[dict[int, R]]],
        failed_item: Callable[[int, str], R],
    ) -> dict[int, R]:
        """Dedupe, split into calls of ≤100 ids run concurrently (bounded by the semaphore).

        If every chunk fails the call raises; otherwise the ids of a failed chunk carry the
        failure as their error, so the answers of the other chunks are not lost.
        """
        unique = list(dict.fromkeys(int(i) for i in ids))
        chunks = [unique[i : i + BATCH_SIZE] for i in range(0, len(unique), BATCH_SIZE)]
        if not chunks:
            return {}
        outcomes = await asyncio.gather(*map(chunk_call, chunks), return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        for failure in failures:
            if not isinstance(failure, (PanelError, PanelUnavailable)):
                raise failure  # a bug or a cancellation, not an answer of the panel
        if failures and len(failures) == len(chunks):
            raise failures[0]
        results: dict[int, R] = {}
        for chunk, outcome in zip(chunks, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                log.warning("%d of %d ids failed: %s", len(chunk), len(unique), outcome)
                results.update({i: failed_item(i, str(outcome)) for i in chunk})
            else:
                results.update(outcome)
        return {i: results[i] for i in unique}

    # --- transport ----------------------------------------------------------------------------

    async def _call(
        self,
        action: str,
        fields: Mapping[str, str],
        parse: Callable[[Any], T],
        *,
        read_only: bool,
        bound: _AddBound | None = None,
    ) -> T:
        """One logical call: read-only ones retry PanelUnavailable with exponential backoff."""
        attempt = 0
        while True:
            try:
                return await self._observed(action, fields, parse, bound)
            except PanelUnavailable as exc:
                if not read_only or attempt >= self._retries:
                    raise
                delay = self._retry_backoff * 2**attempt
                attempt += 1
                log.warning("%s; retry %d/%d in %.2fs", exc, attempt, self._retries, delay)
                await asyncio.sleep(delay)

    async def _observed(
        self,
        action: str,
        fields: Mapping[str, str],
        parse: Callable[[Any], T],
        bound: _AddBound | None,
    ) -> T:
        """One attempt, told to the observer (a cancelled one is no outcome of the panel's)."""
        if self._on_call is None:
            return await self._attempt(action, fields, parse, bound)
        started = time.perf_counter()
        outcome: CallOutcome | None = None
        try:
            result = await self._attempt(action, fields, parse, bound)
        except PanelError:
            outcome = "refused"
            raise
        except OrderOutcomeUnknown:
            outcome = "unknown"
            raise
        except PanelUnavailable:
            outcome = "unavailable"
            raise
        else:
            outcome = "ok"
            return result
        finally:
            if outcome is not None:
                self._on_call(action, time.perf_counter() - started, outcome)

    async def _attempt(
        self,
        action: str,
        fields: Mapping[str, str],
        parse: Callable[[Any], T],
        bound: _AddBound | None,
    ) -> T:
        # After an add was sent, any failure leaves the order's existence unknown.
        fail = OrderOutcomeUnknown if action == "add" else PanelUnavailable
        status, text = await self._post(action, fields, fail, bound)
        data = _decode(action, status, text, fail, secret=self._key.get_secret_value())
        try:
            return parse(data)
        except (ValueError, RecursionError) as exc:
            log.debug("action=%s: unexpected answer shape: %s", action, clip(str(exc), 300))
            raise fail("unexpected answer shape", action=action) from None

    async def _take_turn(self, action: str, bound: _AddBound | None) -> None:
        """Take a slot and a token of the rate limiter; an add waits until its bound at most."""
        try:
            async with asyncio.timeout_at(bound.queue_until if bound else None):
                await self._slots.acquire()
                try:
                    await self._limiter.acquire()
                except BaseException:
                    self._slots.release()
                    raise
        except TimeoutError:
            # Still queued: the request never left, so calling it again is safe.
            raise PanelUnavailable(
                "still queued at the deadline (not sent)", action=action
            ) from None

    async def _post(
        self,
        action: str,
        fields: Mapping[str, str],
        fail: type[PanelUnavailable],
        bound: _AddBound | None = None,
    ) -> tuple[int, str]:
        body = {"key": self._key.get_secret_value(), "action": action, **fields}
        session = self._get_session()
        await self._take_turn(action, bound)
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                async with (
                    asyncio.timeout_at(bound.until if bound else None),
                    session.post(self._url, data=body, allow_redirects=False) as resp,
                ):
                    status = resp.status
                    raw = await _read_at_most(resp, _answer_cap(action))
                    if raw is None:
                        raise fail("answer too large", action=action)
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                # The connection was never made, so nothing was sent: safe to call it plain.
                raise PanelUnavailable(
                    f"cannot connect ({type(exc).__name__})", action=action
                ) from exc
            except TimeoutError as exc:
                raise fail("timeout", action=action) from exc
            except aiohttp.ClientError as exc:
                raise fail(f"connection error ({type(exc).__name__})", action=action) from exc
        finally:
            self._slots.release()
        log.debug(
            "action=%s -> HTTP %d, %d bytes in %.3fs", action, status, len(raw),
            loop.time() - started,
        )  # fmt: skip
        return status, raw.decode("utf-8-sig", errors="replace")

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session


def _answer_cap(action: str) -> int:
    return MAX_SERVICES_ANSWER_BYTES if action == "services" else MAX_ANSWER_BYTES


async def _read_at_most(resp: aiohttp.ClientResponse, cap: int) -> bytes | None:
    """The body, or None as soon as it is known to exceed ``cap`` bytes (at most cap + 1 read)."""
    if resp.content_length is not None and resp.content_length > cap:
        return None
    body = bytearray()
    while len(body) <= cap:
        chunk = await resp.content.read(cap + 1 - len(body))
        if not chunk:
            return bytes(body)
        body += chunk
    return None


def _decode(
    action: str, status: int, text: str, fail: type[PanelUnavailable], *, secret: str = ""
) -> Any:
    """HTTP status and body → decoded JSON, PanelError for ``{"error"}``, else ``fail``.

    Every occurrence of ``secret`` (the key) in the answer's strings is replaced by ``***``
    before anything reads them, so no error, name or log line can carry it on.
    """
    if 300 <= status < 400:
        raise fail(f"HTTP {status} redirect (not followed)", action=action)
    if status >= 500 or status == 429:
        raise fail(f"HTTP {status}", action=action)
    clean = partial(redact, secret=secret) if _may_hold(text, secret) else _unchanged
    try:
        # The catalog is large: its items are read one by one (see DecodedOneByOne).
        data = decode_array(text, clean) if action == "services" else clean(decode_json(text))
    except RecursionError:
        raise fail(f"JSON nested too deeply (HTTP {status})", action=action) from None
    except ValueError:
        kind = "HTML page" if text.lstrip()[:1] == "<" else "invalid JSON"
        raise fail(f"{kind} (HTTP {status})", action=action) from None
    if isinstance(data, dict) and _is_refusal(action, data):
        raise PanelError(error_text(data["error"]), action=action)
    if status != 200:
        raise fail(f"HTTP {status}", action=action)
    return data


def _unchanged(data: Any) -> Any:
    return data


def _may_hold(text: str, secret: str) -> bool:
    """Whether a string decoded from `text` can contain `secret`. Without an escape in the
    text every decoded string (keys too) is a piece of the text as it is, so a text that does
    not contain the secret cannot hand it on, and needs no walk through every string."""
    return bool(secret) and (secret in text or "\\" in text)


def redact(data: Any, secret: str) -> Any:
    """Decoded JSON with ``secret`` replaced by ``***`` in every string, keys included.

    Containers are changed in place, walked without recursion (the JSON may be as deep as the
    decoder allows).
    """
    if not secret:
        return data
    if isinstance(data, str):
        return data.replace(secret, REDACTED)
    pending = [data] if isinstance(data, (dict, list)) else []
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            for index, item in enumerate(node):
                if isinstance(item, str):
                    if secret in item:
                        node[index] = item.replace(secret, REDACTED)
                elif isinstance(item, (dict, list)):
                    pending.append(item)
            continue
        for name in list(node):
            item = node[name]
            if isinstance(item, str):
                if secret in item:
                    node[name] = item = item.replace(secret, REDACTED)
            elif isinstance(item, (dict, list)):
                pending.append(item)
            if isinstance(name, str) and secret in name:
                del node[name]
                node[name.replace(secret, REDACTED)] = item
    return data


def _is_refusal(action: str, data: dict[str, Any]) -> bool:
    """An `{"error": ...}` answer. A blank error is none, and an `add` answer that carries an
    order id placed the order whatever else it says (calling it refused invites a re-order)."""
    if data.get("error") in (None, ""):
        return False
    return not (action == "add" and data.get("order"))


def _ids_field(ids: Sequence[int], name: str = "orders") -> dict[str, str]:
    return {name: ",".join(map(str, ids))}


def form_fields(**values: object) -> dict[str, str]:
    """The form of an ``add``: None is not sent, lists are joined by newlines, dates d/m/Y."""
    form: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, date):
            form[name] = value.strftime("%d/%m/%Y")
        elif isinstance(value, (list, tuple)):
            form[name] = "\n".join(str(item) for item in value)
        else:
            form[name] = str(value)
    return form
