"""Catalog: a big `services` answer parsed, indexed, and shown as a page, in microseconds.

Parsing is the panel client's own reader (`decode_json` + `read_services`, what
`PanelClient.services()` runs on the body); the pages are the handlers' keyboards rendered inside
an i18n context, as in a real update.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiogram.utils.i18n import gettext as _

from bench.measure import median
from bot.billing import Markups
from bot.catalog import CatalogSnapshot
from bot.i18n import create_i18n
from bot.ordering import PriceList
from bot.panel.models import decode_json, read_services
from handlers import keyboards
from playground.sandbox import generate_catalog

PAGE_SIZE = 8  # the default PAGE_SIZE setting
SEARCH_QUERY = "instagram followers real"
CURRENCY = "USD"
PRICES = PriceList(CURRENCY, None, Markups())  # the panel's rates, as in team mode
MENU = keyboards.Menu(flow=4242, by=1001)  # the conversation the screens are built for


@dataclass
class CatalogResult:
    n_services: int
    answer_bytes: int
    categories: int
    iterations: dict[str, int] = field(default_factory=dict)
    micros: dict[str, float] = field(default_factory=dict)  # operation → median µs
    search_hits: int = 0


def timed(operation: Callable[[], Any], iterations: int) -> float:
    """Median microseconds of one call, over `iterations` calls (after one warm-up call)."""
    operation()
    times: list[float] = []
    clock = time.perf_counter
    for _iteration in range(iterations):
        begun = clock()
        operation()
        times.append(clock() - begun)
    return median(times) * 1e6


def bench_catalog(n_services: int, iterations: int, parse_iterations: int) -> CatalogResult:
    body = json.dumps(generate_catalog(n_services))
    services = read_services(decode_json(body))
    snapshot = CatalogSnapshot(services)
    i18n = create_i18n("en")
    result = CatalogResult(
        n_services=n_services,
        answer_bytes=len(body.encode()),
        categories=len(snapshot.categories),
    )
    # The largest category is the worst case for a services page.
    biggest = max(snapshot.categories, key=lambda category: category.service_count)
    found = snapshot.search(SEARCH_QUERY, limit=20)
    result.search_hits = len(found)

    def categories_page() -> Any:
        page = snapshot.categories_page(0, PAGE_SIZE)
        text = _("Choose a category:")
        if page.pages > 1:
            text += " " + _("(page {page} of {pages})").format(page=1, pages=page.pages)
        return text, keyboards.categories(page, [category.key for category in page.items], MENU)

    def services_page() -> Any:
        page = snapshot.services_page(biggest.key, 1, PAGE_SIZE)
        text = _("<b>{category}</b>\nChoose a service:").format(category=biggest.name)
        return text, keyboards.services(page, biggest.key, PRICES, MENU)

    def search_screen() -> Any:
        hits = snapshot.search(SEARCH_QUERY, limit=20)
        return keyboards.search_results(hits, PRICES, MENU)

    def markup_json() -> Any:
        return services_page()[1].model_dump_json(exclude_none=True)

    cases: list[tuple[str, Callable[[], Any], int]] = [
        ("parse the answer (JSON → list[Service])", lambda: read_services(decode_json(body)),
         parse_iterations),
        ("build the CatalogSnapshot", lambda: CatalogSnapshot(services), parse_iterations),
        ("category page: text + keyboards.categories", categories_page, iterations),
        ("services page: text + keyboards.services", services_page, iterations),
        ("search (snapshot.search, 20 hits max)", lambda: snapshot.search(SEARCH_QUERY, 20),
         iterations),
        ("search screen: search + keyboards.search_results", search_screen, iterations),
        ("services page keyboard to JSON (what aiogram sends)", markup_json, iterations),
    ]  # fmt: skip
    with i18n.context(), i18n.use_locale("en"):
        for name, operation, n in cases:
            result.micros[name] = timed(operation, n)
            result.iterations[name] = n
    return result
