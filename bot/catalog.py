"""The panel's service catalog, cached in memory: categories, pages and search.

A ``CatalogSnapshot`` is one immutable answer of ``services``; ``Catalog`` hands out the current
snapshot and replaces it in the background when it is older than its TTL, or at once when another
instance found the panel's services changed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from bot.billing import is_offered
from bot.invalidation import CATALOG_CHANGED, Invalidation
from bot.panel.models import Service

log = logging.getLogger(__name__)

T = TypeVar("T")

CATEGORY_KEY_LENGTH = 8
DEFAULT_TTL = 600.0
DEFAULT_RETRY_DELAY = 30.0

FetchServices = Callable[[], Awaitable[list[Service]]]
Offered = Callable[[Service], bool]
Clock = Callable[[], float]


def category_key(name: str) -> str:
    """A short key for callback data, derived from the name alone.

    Never a position: after a refresh or a restart a stale button still means the same category,
    or none. 8 url-safe base64 characters carry 48 bits of sha1, so a collision between two
    category names is practically impossible (about 1 in 10^8 for 10,000 categories).
    """
    digest = hashlib.sha1(name.encode("utf-8"), usedforsecurity=False).digest()
    return base64.urlsafe_b64encode(digest[:6]).decode("ascii")


def sold_from_wallets(service: Service) -> bool:
    """Reseller mode's offering rule: a service with a negative rate is invalid and not
    listed (nor can a stale button order it: it is not in the snapshot)."""
    return is_offered(service.rate)


def normalize_text(text: str) -> str:
    """Case- and accent-insensitive form for search: "Instagrám  LIKES" → "instagram likes"."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(stripped.casefold().split())


@dataclass(frozen=True, slots=True)
class Category:
    key: str
    name: str
    service_count: int


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list; ``page`` counts from 0 and is always within ``0..pages-1``."""

    items: tuple[T, ...]
    page: int
    pages: int
    total: int

    @property
    def has_prev(self) -> bool:
        return self.page > 0

    @property
    def has_next(self) -> bool:
        return self.page < self.pages - 1


def paginate(items: Sequence[T], page: int, size: int) -> Page[T]:
    """The ``page``-th slice of ``size`` items; an out-of-range page is clamped, never empty
    unless there is nothing at all (then one empty page)."""
    if size < 1:
        raise ValueError("page size must be at least 1")
    pages = max(1, -(-len(items) // size))
    page = min(max(page, 0), pages - 1)
    start = page * size
    return Page(items=tuple(items[start : start + size]), page=page, pages=pages, total=len(items))


class CatalogSnapshot:
    """One ``services`` answer, indexed once; read-only after construction."""

    __slots__ = ("_by_category", "_by_id", "_by_key", "_categories", "_haystacks", "_services")

    def __init__(self, services: Iterable[Service]) -> None:
        by_id: dict[int, Service] = {}
        by_category: dict[str, list[Service]] = {}  # dicts keep the panel's order
        for service in services:
            if service.id in by_id:
                log.warning("service %d is listed twice; keeping the first", service.id)
                continue
            by_id[service.id] = service
            by_category.setdefault(service.category, []).append(service)
        self._services: tuple[Service, ...] = tuple(by_id.values())
        self._by_id = by_id
        self._categories = tuple(
            Category(key=category_key(name), name=name, service_count=len(members))
            for name, members in by_category.items()
        )
        self._by_key = _index_by_key(self._categories)
        self._by_category = {
            key: tuple(by_category[category.name]) for key, category in self._by_key.items()
        }
        # Built once so a search is plain substring tests, whatever the catalog size; one
        # text per service, in the services' order (no pair per service: 56 bytes each).
        self._haystacks = tuple(
            normalize_text(f"{service.name} {service.category}") for service in self._services
        )

    @property
    def services(self) -> tuple[Service, ...]:
        return self._services

    @property
    def categories(self) -> tuple[Category, ...]:
        return self._categories

    def service(self, service_id: int) -> Service | None:
        return self._by_id.get(service_id)

    def category_key(self, name: str) -> str:
        return category_key(name)

    def category_by_key(self, key: str) -> Category | None:
        return self._by_key.get(key)

    def services_in(self, key: str) -> tuple[Service, ...]:
        """The services of a category in the panel's order; none for an unknown key."""
        return self._by_category.get(key, ())

    def categories_page(self, page: int, size: int) -> Page[Category]:
        return paginate(self._categories, page, size)

    def services_page(self, key: str, page: int, size: int) -> Page[Service]:
        """An unknown key (a category gone since the keyboard was sent) gives an empty page."""
        return paginate(self.services_in(key), page, size)

    def search(self, query: str, limit: int = 50) -> list[Service]:
        """Services whose name or category holds every word of the query, in the panel's order.

        A number also finds the service with that id, listed first.
        """
        words = normalize_text(query).split()
        if not words or limit < 1:
            return []
        found: list[Service] = []
        by_id = self._by_id.get(int(words[0])) if _is_service_id(words) else None
        if by_id is not None:
            found.append(by_id)
        for service, haystack in zip(self._services, self._haystacks, strict=True):
            if len(found) >= limit:
                break
            if service is not by_id and all(word in haystack for word in words):
                found.append(service)
        return found


def _is_service_id(words: list[str]) -> bool:
    # Bounded length: int() of thousands of digits is slow, and no panel has such ids.
    return len(words) == 1 and words[0].isascii() and words[0].isdigit() and len(words[0]) < 19


def _index_by_key(categories: Iterable[Category]) -> dict[str, Category]:
    by_key: dict[str, Category] = {}
    for category in categories:
        if category.key in by_key:
            log.warning(
                "categories %r and %r share key %s; the second cannot be opened",
                by_key[category.key].name,
                category.name,
                category.key,
            )
            continue
        by_key[category.key] = category
    return by_key


class Catalog:
    """The current snapshot of the panel's services, refreshed when older than ``ttl`` seconds.

    ``get()`` never waits for a refresh once a snapshot exists: it returns the old one and
    refreshes in the background. Only one fetch runs at a time; a failed refresh keeps the old
    snapshot and is retried after ``retry_delay`` seconds.

    With several instances (``bus`` on Redis), a refresh that finds the services changed tells
    the others, which refresh at once: they disagree for one ``services`` call, not a TTL.
    """

    def __init__(
        self,
        fetch: FetchServices,
        *,
        ttl: float = DEFAULT_TTL,
        clock: Clock = time.monotonic,
        retry_delay: float = DEFAULT_RETRY_DELAY,
        bus: Invalidation | None = None,
        offered: Offered | None = None,
    ) -> None:
        self._fetch = fetch
        self._offered = offered  # None: everything the panel lists (team mode)
        self._bus = bus or Invalidation(None)
        self._bus.on(CATALOG_CHANGED, self._changed_elsewhere)
        self._bus.on_reset(self._missed_changes)
        self._ttl = ttl
        self._clock = clock
        self._retry_delay = retry_delay
        self._snapshot: CatalogSnapshot | None = None
        self._due_at = 0.0  # when the next background refresh may start
        self._loading: asyncio.Task[CatalogSnapshot] | None = None
        self._refresher: asyncio.Task[None] | None = None

    @property
    def snapshot(self) -> CatalogSnapshot | None:
        """The current snapshot without loading anything (None before the first load)."""
        return self._snapshot

    async def get(self) -> CatalogSnapshot:
        """The current snapshot; the first call waits for the load and raises if it fails."""
        snapshot = self._snapshot
        if snapshot is None:
            return await asyncio.shield(self._load())
        if self._clock() >= self._due_at:
            self._load()  # in the background (or joined, if one is in flight)
        return snapshot

    def load_soon(self) -> None:
        """Start the first load now, without waiting for it (start-up): the first menu joins
        it instead of starting one."""
        if self._snapshot is None:
            self._load()

    async def refresh(self) -> CatalogSnapshot:
        """Load now (or join the load already running); raises if it fails."""
        return await asyncio.shield(self._load())

    def start(self) -> None:
        """Refresh every ``ttl`` seconds in a background task, starting now."""
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.create_task(self._refresh_forever(), name="catalog-refresh")

    async def stop(self) -> None:
        """Cancel the background refresher and any load in flight, and wait for them."""
        tasks = [task for task in (self._refresher, self._loading) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._refresher = None

    async def _refresh_forever(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # already logged by _on_loaded; keep the loop alive
                await asyncio.sleep(self._retry_delay)
            else:
                await asyncio.sleep(self._ttl)

    def _load(self, *, announce: bool = True) -> asyncio.Task[CatalogSnapshot]:
        """The load in flight, or a new one: concurrent callers share one fetch. A load that
        has finished but whose callback has not run yet is not in flight: joining it would
        hand a refresh the snapshot from before."""
        if self._loading is None or self._loading.done():
            self._loading = asyncio.create_task(
                self._fetch_snapshot(announce=announce), name="catalog-load"
            )
            self._loading.add_done_callback(self._on_loaded)
        return self._loading

    async def _fetch_snapshot(self, *, announce: bool) -> CatalogSnapshot:
        try:
            services = await self._fetch()
            if self._offered is not None:
                services = [service for service in services if self._offered(service)]
            snapshot = CatalogSnapshot(services)
        except Exception:
            self._due_at = self._clock() + self._retry_delay
            raise
        previous, self._snapshot = self._snapshot, snapshot
        self._due_at = self._clock() + self._ttl
        if announce and previous is not None and previous.services != snapshot.services:
            # A load the news itself started stays quiet: one change, one round of refreshes.
            self._bus.publish_soon(CATALOG_CHANGED)
        return snapshot

    def _changed_elsewhere(self, _: int) -> None:
        if self._snapshot is not None:  # nothing loaded yet: the first get() loads anyway
            self._load(announce=False)

    def _missed_changes(self) -> None:
        self._due_at = 0.0  # the next get() refreshes in the background

    def _on_loaded(self, task: asyncio.Task[CatalogSnapshot]) -> None:
        if self._loading is task:
            self._loading = None
        if task.cancelled():
            return
        # Retrieving the exception here also keeps asyncio from reporting it as never retrieved
        # when a background refresh fails with nobody awaiting it.
        error = task.exception()
        if error is None:
            return
        if self._snapshot is not None:
            log.warning("catalog refresh failed, keeping the previous catalog: %s", error)
        else:
            log.warning("catalog load failed: %s", error)
