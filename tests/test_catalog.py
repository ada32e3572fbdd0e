"""The cached catalog: order, pagination, stable category keys, search and background refresh."""

from __future__ import annotations

import asyncio
import logging
import random
from decimal import Decimal

import pytest

from bot.catalog import Catalog, CatalogSnapshot, Page, category_key, normalize_text, paginate
from bot.panel.errors import PanelUnavailable
from bot.panel.models import Service
from tests.factories import FakeClock, make_service

PANEL = [
    make_service(service=1, name="Instagram Likes [Real]", category="Instagram", max=1000),
    make_service(service=2, name="Telegram Members", category="Telegram", max=1000),
    make_service(service=3, name="Instagram Followers", category="Instagram", max=1000),
    make_service(service=4, name="Canción Plays", category="Spotify Música", max=1000),
    make_service(service=5, name="Telegram Post Views", category="Telegram", max=1000),
    make_service(service=1000, name="YouTube Views 1000/day", category="YouTube", max=1000),
]


class FakePanel:
    """A ``services`` call that counts fetches and can be held open or made to fail."""

    def __init__(self, services: list[Service]) -> None:
        self.services = services
        self.calls = 0
        self.failure: Exception | None = None
        self.gate: asyncio.Event | None = None
        self._called = asyncio.Condition()

    async def fetch(self) -> list[Service]:
        self.calls += 1
        async with self._called:
            self._called.notify_all()
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        return list(self.services)

    async def wait_for_calls(self, count: int) -> None:
        """Wait for a background fetch without asserting how long it takes."""
        async with asyncio.timeout(5), self._called:
            await self._called.wait_for(lambda: self.calls >= count)


async def settle() -> None:
    """Let background tasks run to completion."""
    for _ in range(5):
        await asyncio.sleep(0)


# --- snapshot ------------------------------------------------------------------------------


def test_categories_and_services_keep_the_panel_order() -> None:
    snapshot = CatalogSnapshot(PANEL)
    assert [c.name for c in snapshot.categories] == [
        "Instagram",
        "Telegram",
        "Spotify Música",
        "YouTube",
    ]
    assert [c.service_count for c in snapshot.categories] == [2, 2, 1, 1]
    instagram = snapshot.categories[0]
    assert [s.id for s in snapshot.services_in(instagram.key)] == [1, 3]
    assert [s.id for s in snapshot.services] == [1, 2, 3, 4, 5, 1000]


def test_service_lookup_by_id() -> None:
    snapshot = CatalogSnapshot(PANEL)
    found = snapshot.service(3)
    assert found is not None and found.name == "Instagram Followers"
    assert snapshot.service(999) is None


def test_a_duplicated_service_id_keeps_the_first() -> None:
    snapshot = CatalogSnapshot(
        [*PANEL, make_service(service=1, name="Impostor", category="Other", max=1000)]
    )
    found = snapshot.service(1)
    assert found is not None and found.name == "Instagram Likes [Real]"
    assert [c.name for c in snapshot.categories][-1] == "YouTube"


def test_category_keys_are_short_and_derived_from_the_name() -> None:
    snapshot = CatalogSnapshot(PANEL)
    for category in snapshot.categories:
        assert len(category.key) <= 8
        assert category.key == category_key(category.name) == snapshot.category_key(category.name)
        assert snapshot.category_by_key(category.key) == category
    assert len({c.key for c in snapshot.categories}) == len(snapshot.categories)
    assert snapshot.category_by_key("nope") is None


def test_category_keys_fit_callback_data() -> None:
    # aiogram's CallbackData separates values with ":"; keys must never contain it.
    for name in ["Instagram", "", "ÄÖÜ ✨", "a:b", "x" * 500]:
        key = category_key(name)
        assert 0 < len(key) <= 8
        assert key.isascii() and ":" not in key


def test_category_keys_are_stable_across_refreshes_in_another_order() -> None:
    before = CatalogSnapshot(PANEL)
    shuffled = PANEL[::-1]
    after = CatalogSnapshot(shuffled)
    for category in before.categories:
        again = after.category_by_key(category.key)
        assert again is not None and again.name == category.name
    # The order follows the new answer; only the keys are stable.
    assert after.categories[0].name == "YouTube"


def test_a_removed_category_key_means_none() -> None:
    before = CatalogSnapshot(PANEL)
    spotify = before.categories[2]
    after = CatalogSnapshot([s for s in PANEL if s.category != "Spotify Música"])
    assert after.category_by_key(spotify.key) is None
    page = after.services_page(spotify.key, 0, 5)
    assert page.items == () and page.total == 0


# --- pagination ----------------------------------------------------------------------------


def test_paginate_empty_gives_one_empty_page() -> None:
    page: Page[int] = paginate([], 0, 5)
    assert (page.items, page.page, page.pages, page.total) == ((), 0, 1, 0)
    assert not page.has_prev and not page.has_next
    assert paginate([], 7, 5).page == 0


def test_paginate_exact_multiple() -> None:
    items = list(range(10))
    first, last = paginate(items, 0, 5), paginate(items, 1, 5)
    assert first.pages == last.pages == 2
    assert first.items == (0, 1, 2, 3, 4) and last.items == (5, 6, 7, 8, 9)
    assert not first.has_prev and first.has_next
    assert last.has_prev and not last.has_next


def test_paginate_partial_last_page() -> None:
    page = paginate(list(range(11)), 2, 5)
    assert page.items == (10,) and page.pages == 3 and page.total == 11
    assert page.has_prev and not page.has_next


@pytest.mark.parametrize(("asked", "shown"), [(-1, 0), (-100, 0), (3, 2), (99, 2)])
def test_paginate_clamps_out_of_range_pages(asked: int, shown: int) -> None:
    page = paginate(list(range(11)), asked, 5)
    assert page.page == shown
    assert page.items


def test_paginate_rejects_a_zero_size() -> None:
    with pytest.raises(ValueError):
        paginate([1], 0, 0)


def test_snapshot_pages() -> None:
    snapshot = CatalogSnapshot(PANEL)
    categories = snapshot.categories_page(1, 3)
    assert [c.name for c in categories.items] == ["YouTube"]
    assert categories.page == 1 and categories.pages == 2
    telegram = snapshot.category_key("Telegram")
    services = snapshot.services_page(telegram, 5, 1)
    assert [s.id for s in services.items] == [5]
    assert services.page == 1 and services.total == 2


# --- search --------------------------------------------------------------------------------


def ids(found: list[Service]) -> list[int]:
    return [service.id for service in found]


def test_search_needs_every_word_in_name_or_category() -> None:
    snapshot = CatalogSnapshot(PANEL)
    assert ids(snapshot.search("instagram likes")) == [1]
    assert ids(snapshot.search("instagram")) == [1, 3]
    assert ids(snapshot.search("telegram views")) == [5]
    assert ids(snapshot.search("instagram views")) == []


def test_search_ignores_case_accents_and_spacing() -> None:
    snapshot = CatalogSnapshot(PANEL)
    assert ids(snapshot.search("  CANCION   musica ")) == [4]
    assert ids(snapshot.search("cancIón")) == [4]
    assert ids(snapshot.search("INSTAGRAM likes [real]")) == [1]
    assert normalize_text("Ｉｎｓｔａｇｒａｍ Çafé") == "instagram cafe"


def test_search_by_service_id_comes_first() -> None:
    snapshot = CatalogSnapshot(PANEL)
    assert ids(snapshot.search("3")) == [3]
    # 1000 is an id and also appears in a name; the service is listed once.
    assert ids(snapshot.search("1000")) == [1000]
    assert ids(snapshot.search("42")) == []


def test_search_edge_cases() -> None:
    snapshot = CatalogSnapshot(PANEL)
    assert snapshot.search("") == []
    assert snapshot.search("   ") == []
    assert snapshot.search("instagram", limit=0) == []
    assert ids(snapshot.search("instagram", limit=1)) == [1]
    assert snapshot.search("9" * 5000) == []
    # Punctuation is plain text, never a pattern.
    assert ids(snapshot.search("[real")) == [1]
    assert snapshot.search("(") == []
    assert snapshot.search(".*") == []


def test_a_5000_service_snapshot_builds_and_searches() -> None:
    rng = random.Random(7)
    networks = ["Instagram", "TikTok", "Telegram", "YouTube", "Facebook", "Twitter/X"]
    kinds = ["Likes", "Followers", "Views", "Comments", "Members", "Shares"]
    grades = ["Real", "Fast", "HQ"]
    services = [
        make_service(
            service=number,
            name=f"{rng.choice(networks)} {rng.choice(kinds)} [{rng.choice(grades)}]",
            category=f"{rng.choice(networks)} {rng.choice(kinds)} #{number % 40}",
            max=1000,
        )
        for number in range(1, 5001)
    ]
    snapshot = CatalogSnapshot(services)
    assert len(snapshot.services) == 5000
    assert sum(c.service_count for c in snapshot.categories) == 5000
    found = snapshot.search("instagram likes", limit=5000)
    assert found and all("instagram" in normalize_text(s.name + s.category) for s in found)
    assert len(snapshot.search("instagram likes")) == 50
    assert ids(snapshot.search("4321")) == [4321]
    last = snapshot.categories_page(10_000, 8)
    assert last.page == last.pages - 1


# --- the cache -----------------------------------------------------------------------------


async def test_first_get_loads_and_later_gets_use_the_cache() -> None:
    panel = FakePanel(PANEL)
    catalog = Catalog(panel.fetch, ttl=600, clock=FakeClock(now=0.0))
    assert catalog.snapshot is None
    first = await catalog.get()
    second = await catalog.get()
    assert first is second
    assert panel.calls == 1
    assert catalog.snapshot is first


async def test_a_failed_first_load_propagates() -> None:
    panel = FakePanel(PANEL)
    panel.failure = PanelUnavailable("HTTP 502", action="services")
    catalog = Catalog(panel.fetch, clock=FakeClock(now=0.0))
    with pytest.raises(PanelUnavailable):
        await catalog.get()
    panel.failure = None
    assert len((await catalog.get()).services) == len(PANEL)
    assert panel.calls == 2


async def test_expired_ttl_returns_the_old_catalog_and_refreshes_in_background() -> None:
    clock = FakeClock(now=0.0)
    panel = FakePanel(PANEL)
    catalog = Catalog(panel.fetch, ttl=600, clock=clock)
    old = await catalog.get()

    clock.now = 599
    assert await catalog.get() is old
    await settle()
    assert panel.calls == 1

    panel.services = PANEL[:2]
    clock.now = 600
    assert await catalog.get() is old  # no waiting for the panel
    await settle()
    assert panel.calls == 2
    new = await catalog.get()
    assert new is not old and len(new.services) == 2


async def test_a_failed_refresh_keeps_the_old_catalog(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(now=0.0)
    panel = FakePanel(PANEL)
    catalog = Catalog(panel.fetch, ttl=600, clock=clock, retry_delay=30)
    old = await catalog.get()

    panel.failure = PanelUnavailable("timeout", action="services")
    clock.now = 700
    with caplog.at_level(logging.WARNING, logger="bot.catalog"):
        assert await catalog.get() is old
        await settle()
    assert panel.calls == 2
    assert "keeping the previous catalog" in caplog.text
    assert await catalog.get() is old

    # No hammering of a failing panel: the next try waits for retry_delay.
    await settle()
    assert panel.calls == 2
    panel.failure = None
    clock.now = 730
    await catalog.get()
    await settle()
    assert panel.calls == 3
    assert catalog.snapshot is not old


async def test_concurrent_gets_share_one_fetch() -> None:
    panel = FakePanel(PANEL)
    panel.gate = asyncio.Event()
    catalog = Catalog(panel.fetch, clock=FakeClock(now=0.0))
    waiting = [asyncio.create_task(catalog.get()) for _ in range(10)]
    await settle()
    assert panel.calls == 1
    panel.gate.set()
    snapshots = await asyncio.gather(*waiting)
    assert all(snapshot is snapshots[0] for snapshot in snapshots)
    assert panel.calls == 1


async def test_concurrent_gets_during_a_background_refresh_issue_one_fetch() -> None:
    clock = FakeClock(now=0.0)
    panel = FakePanel(PANEL)
    catalog = Catalog(panel.fetch, ttl=600, clock=clock)
    old = await catalog.get()
    panel.gate = asyncio.Event()
    clock.now = 1000
    results = await asyncio.gather(*(catalog.get() for _ in range(20)))
    assert all(result is old for result in results)
    await settle()
    assert panel.calls == 2
    assert await catalog.get() is old  # still refreshing
    assert panel.calls == 2
    panel.gate.set()
    await settle()
    assert (await catalog.get()) is not old
    assert panel.calls == 2


async def test_refresh_forces_a_load_and_raises_on_failure() -> None:
    panel = FakePanel(PANEL)
    catalog = Catalog(panel.fetch, clock=FakeClock(now=0.0))
    old = await catalog.get()
    panel.services = PANEL[:1]
    new = await catalog.refresh()
    assert new is not old and len(new.services) == 1
    assert await catalog.get() is new
    panel.failure = PanelUnavailable("HTTP 500", action="services")
    with pytest.raises(PanelUnavailable):
        await catalog.refresh()
    assert await catalog.get() is new


async def test_background_refresher_starts_and_stops_cleanly() -> None:
    panel = FakePanel(PANEL)
    catalog = Catalog(panel.fetch, ttl=0.01)
    catalog.start()
    catalog.start()  # a second start does not add a second refresher
    await panel.wait_for_calls(3)
    assert catalog.snapshot is not None
    await catalog.stop()
    calls = panel.calls
    await asyncio.sleep(0.03)
    assert panel.calls == calls
    await catalog.stop()  # stopping twice is harmless


async def test_stop_cancels_a_load_in_flight() -> None:
    panel = FakePanel(PANEL)
    panel.gate = asyncio.Event()
    catalog = Catalog(panel.fetch, ttl=600)
    catalog.start()
    await settle()
    assert panel.calls == 1
    await catalog.stop()
    assert catalog.snapshot is None


async def test_the_refresher_survives_panel_errors() -> None:
    panel = FakePanel(PANEL)
    panel.failure = PanelUnavailable("HTTP 502", action="services")
    catalog = Catalog(panel.fetch, ttl=600, retry_delay=0.01)
    catalog.start()
    await panel.wait_for_calls(2)
    assert catalog.snapshot is None
    panel.failure = None
    await panel.wait_for_calls(panel.calls + 1)
    await settle()
    assert catalog.snapshot is not None
    await catalog.stop()


def test_decimal_rates_survive_the_snapshot() -> None:
    snapshot = CatalogSnapshot(PANEL)
    found = snapshot.service(1)
    assert found is not None and found.rate == Decimal("0.90")
