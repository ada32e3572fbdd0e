"""A simulated SMM panel speaking API v2 over HTTP, for tests, benchmarks and the playground.

Standalone: ``python -m playground.sandbox --port 8081 [--key KEY] [--step-seconds N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import re
import signal
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from bot.panel.models import (
    OrderStatus,
    RefillStatus,
    Service,
    read_services,
)
from bot.services import (
    OrderFigures,
    counted_field,
    is_package,
    is_subscription,
    order_price,
    service_type,
)

CENTS5 = Decimal("0.00001")
MAX_IDS = 100
API_PATH = "/api/v2"

# --- the catalog -------------------------------------------------------------------------------


def _svc(
    service: int, name: str, type_: str, category: str, rate: str | int,
    min_: str | int, max_: str | int, **extra: Any,
) -> dict[str, Any]:  # fmt: skip
    return {
        "service": service, "name": name, "type": type_, "category": category,
        "rate": rate, "min": min_, "max": max_, **extra,
    }  # fmt: skip


IG_FOLLOWERS = "Instagram Followers"
IG_LIKES = "Instagram Likes & Comments"
IG_MENTIONS = "Instagram Mentions"
IG_AUTO = "Instagram Auto / Subscriptions"
WEB = "Website Traffic & SEO"

# The seed document's two services, verbatim: the panel's own (Filipino) API page names them.
SEED_CATALOG: list[dict[str, Any]] = [
    _svc(1448, "Mga Tagasubaybay sa Instagram", "Default", "Instagram", "0.90", "50", "10000",
         refill=True),
    _svc(1452, "Mga Komento sa Facebook", "Custom Comments", "Facebook", "8", "10", "1500",
         refill=False),
]  # fmt: skip
# What those services are called in the English catalog (everything else about them is the seed's).
SEED_ENGLISH_NAMES = {1448: "Instagram Followers", 1452: "Facebook Comments"}

# Flags and numbers deliberately come in the mixed forms real panels use (true, "1", missing,
# numbers as strings or as numbers) so every client parsing path is exercised.
DEFAULT_CATALOG: list[dict[str, Any]] = [
    *(seed | {"name": SEED_ENGLISH_NAMES[seed["service"]]} for seed in SEED_CATALOG),
    _svc(2001, "Instagram Followers [Real, 30 days refill]", "Default", IG_FOLLOWERS, "1.25",
         100, 50000, refill="1", cancel="1", dripfeed=True,
         desc="Start 0-1 h, speed 5k/day, 30 days refill button."),
    _svc(2002, "Instagram Followers [Cheap, no refill]", "Default", IG_FOLLOWERS, "0.0315",
         "10", "100000", refill=False, cancel=False, dripfeed="0"),
    _svc(2003, "Instagram Followers [Philippines]", "Default", IG_FOLLOWERS, "2.4", "50",
         "5000", refill="1", cancel="0"),
    _svc(2010, "Instagram Likes [Instant]", "Default", IG_LIKES, "0.12", "20", "20000",
         refill="0", cancel=True, dripfeed=True),
    _svc(2011, "Instagram Likes Package 1000", "Package", IG_LIKES, "2.50", 1, 1),
    _svc(2012, "Instagram Comment Likes", "Comment Likes", IG_LIKES, "3.2", "20", "5000",
         refill=False, cancel=True),
    _svc(2020, "Instagram Custom Comments", "Custom Comments", IG_LIKES, "12.5", "5", "1000",
         cancel="0", desc="One comment per line."),
    _svc(2021, "Instagram Custom Comments Package (10)", "Custom Comments Package", IG_LIKES,
         "4.2", "1", "1"),
    _svc(2022, "Instagram Comment Replies", "Comment Replies", IG_LIKES, "15", "1", "500",
         refill=False),
    _svc(2030, "Instagram Mentions [Custom List]", "Mentions Custom List", IG_MENTIONS, "6.5",
         "10", "10000"),
    _svc(2031, "Instagram Mentions", "Mentions", IG_MENTIONS, "5.75", "100", "20000",
         cancel="1"),
    _svc(2032, "Instagram Mentions with Hashtags", "Mentions with Hashtags", IG_MENTIONS,
         "7.1", "100", "20000"),
    _svc(2033, "Instagram Mentions [Hashtag Users]", "Mentions Hashtag", IG_MENTIONS, "6",
         "100", "10000"),
    _svc(2034, "Instagram Mentions [User Followers]", "Mentions User Followers", IG_MENTIONS,
         "6.25", "100", "10000"),
    _svc(2035, "Instagram Mentions [Media Likers]", "Mentions Media Likers", IG_MENTIONS,
         "6.40", "100", "10000"),
    _svc(2040, "Instagram Auto Likes [Subscription]", "Subscriptions", IG_AUTO, "0.15", "50",
         "5000", description="Likes on every new post for the chosen period."),
    _svc(2041, "Instagram Reel Views", "Default", IG_AUTO, "0.015", "100", "10000000",
         dripfeed="1", cancel=False),
    _svc(2100, "TikTok Followers", "Default", "TikTok", "2.10", "100", "50000", refill=True,
         cancel=True),
    _svc(2101, "TikTok Views", "Default", "TikTok", "0.0045", "100", "100000000",
         dripfeed="1", refill="0"),
    _svc(2102, "TikTok Likes", "Default", "TikTok", "0.35", "50", "100000", cancel="1"),
    _svc(2103, "TikTok Custom Comments", "Custom Comments", "TikTok", "9", "5", "500"),
    _svc(2200, "YouTube Views [Non-drop]", "Default", "YouTube", "1.80", "500", "1000000",
         refill="1", cancel="1", dripfeed=True, desc="Non-drop, lifetime refill."),
    _svc(2201, "YouTube Subscribers", "Default", "YouTube", "18.5", "50", "10000",
         refill=True, cancel=False, desc="Slow start (24-72 h)."),
    _svc(2202, "YouTube Likes", "Default", "YouTube", "2.75", "20", "50000"),
    _svc(2203, "YouTube Custom Comments", "Custom Comments", "YouTube", 25, 5, 200,
         refill=False, cancel=False),
    _svc(2300, "Facebook Page Likes", "Default", "Facebook", "3.40", "100", "50000",
         refill=True, cancel=True),
    _svc(2301, "Facebook Post Reactions", "Default", "Facebook", "0.95", "50", "20000"),
    _svc(2302, "Facebook Group Members [Invites from Groups]", "Invites from Groups",
         "Facebook", "12", "100", "10000"),
    _svc(2400, "Telegram Channel Members", "Default", "Telegram", "0.85", "100", "100000",
         refill="1", cancel="1", dripfeed="1"),
    _svc(2401, "Telegram Post Views [Last 5 Posts]", "Default", "Telegram", "0.02", "100",
         "1000000"),
    _svc(2402, "Telegram Poll Votes", "Poll", "Telegram", "1.1", "50", "50000"),
    _svc(2403, "Telegram Group Members [Invites from Groups]", "Invites from Groups",
         "Telegram", "4.5", "100", "20000", refill=False),
    _svc(2500, "Twitter/X Followers", "Default", "Twitter / X", "4.80", "100", "20000",
         refill=True, cancel=True),
    _svc(2501, "Twitter/X Retweets", "Default", "Twitter / X", "1.95", "20", "10000"),
    _svc(2502, "Twitter/X Poll Votes", "Poll", "Twitter / X", "2.2", "100", "100000"),
    _svc(2600, "Spotify Plays", "Default", "Spotify", "0.75", "1000", "10000000",
         dripfeed=True, refill="1"),
    _svc(2601, "Spotify Followers", "Default", "Spotify", "1.05", "100", "100000",
         refill=False),
    _svc(2602, "Spotify Monthly Listeners Package", "Package", "Spotify", "19.99", "1", "1"),
    _svc(2700, "Website Traffic [Worldwide]", "Default", WEB, "0.05", "1000", "1000000",
         dripfeed=True, cancel="1"),
    _svc(2701, "Website Traffic [Google Keyword Search]", "SEO", WEB, "3.5", "100", "100000",
         desc="Visitors from Google search for your keywords."),
    _svc(2702, "Website Traffic [Philippines]", "Default", WEB, "0.0825", "500", "500000",
         refill="0", cancel="0"),
]  # fmt: skip


def generate_catalog(n: int, *, first_id: int = 10001) -> list[dict[str, Any]]:
    """``n`` services built by cycling the default catalog, with varied rates (benchmarks)."""
    catalog: list[dict[str, Any]] = []
    for i in range(n):
        base = DEFAULT_CATALOG[i % len(DEFAULT_CATALOG)]
        rate = Decimal(str(base["rate"])) * (1 + Decimal(i % 7) / 10)
        catalog.append(
            base | {"service": first_id + i, "name": f"{base['name']} #{i + 1}", "rate": str(rate)}
        )
    return catalog


# --- simulated state ---------------------------------------------------------------------------


@dataclass
class SandboxOrder:
    """An order as the sandbox sees it; ``status`` etc. are current after each request."""

    id: int
    service: Service
    fields: dict[str, str]
    quantity: int
    runs: int
    charge: Decimal
    created_at: float
    partial_remains: int  # > 0: this order will end Partial with that many remaining
    status: OrderStatus | str = OrderStatus.PENDING
    start_count: int | None = None
    remains: int = 0
    refunded: Decimal = Decimal(0)


@dataclass
class SandboxRefill:
    id: int
    order: int
    created_at: float
    rejected: bool
    status: RefillStatus = RefillStatus.PENDING


@dataclass(frozen=True)
class LoggedRequest:
    """One API request as received, without the key."""

    action: str
    params: dict[str, str]
    path: str = API_PATH


@dataclass
class _Fault:
    delay: float = 0.0
    http_status: int | None = None
    body: str = ""
    invalid_json: bool = False


class _Refusal(Exception):
    """A validation failure, answered as HTTP 200 ``{"error": message}`` like real panels."""


@dataclass(frozen=True)
class _TypeRule:
    needs: tuple[str, ...]


# The fields `add` requires, by type; looked up through ``bot.services.service_type``.
TYPE_RULES: dict[str, _TypeRule] = {
    "Default": _TypeRule(("link", "quantity")),
    "Package": _TypeRule(("link",)),
    "Custom Comments": _TypeRule(("link", "comments")),
    "Custom Comments Package": _TypeRule(("link", "comments")),
    "Mentions": _TypeRule(("link", "quantity", "usernames")),
    "Mentions with Hashtags": _TypeRule(("link", "quantity", "usernames", "hashtags")),
    "Mentions Custom List": _TypeRule(("link", "usernames")),
    "Mentions Hashtag": _TypeRule(("link", "quantity", "hashtag")),
    "Mentions User Followers": _TypeRule(("link", "quantity", "username")),
    "Comment Likes": _TypeRule(("link", "quantity", "username")),
    "Mentions Media Likers": _TypeRule(("link", "quantity", "media")),
    "Poll": _TypeRule(("link", "quantity", "answer_number")),
    "Comment Replies": _TypeRule(("link", "username", "comments")),
    "Invites from Groups": _TypeRule(("link", "quantity", "groups")),
    "SEO": _TypeRule(("link", "quantity", "keywords")),
    "Subscriptions": _TypeRule(("username", "min", "max", "delay")),
}

MISSING_FIELD_ERRORS = {
    "link": "Link is required",
    "quantity": "Quantity is required",
    "comments": "Comments are required",
    "usernames": "Usernames are required",
    "hashtags": "Hashtags are required",
    "hashtag": "Hashtag is required",
    "username": "Username is required",
    "media": "Media is required",
    "answer_number": "Answer number is required",
    "groups": "Groups are required",
    "keywords": "Keywords are required",
    "min": "Min is required",
    "max": "Max is required",
    "delay": "Delay is required",
}

SUBSCRIPTION_DELAYS = frozenset({0, 5, 10, 15, 20, 30, 40, 50, 60, 90, 120, 150, 180, 240, 360})
LINK_RE = re.compile(r"^(https?://)?[\w-]+(\.[\w-]+)+(:\d+)?([/?#]\S*)?$", re.IGNORECASE)
INT_RE = re.compile(r"^\s*-?\d+\s*$")


def _int_or_none(raw: str | None) -> int | None:
    return int(raw) if raw is not None and INT_RE.match(raw) else None


def _lines(raw: str) -> list[str]:
    return [line for line in raw.splitlines() if line.strip()]


def _money(value: Decimal) -> str:
    return str(value.quantize(CENTS5, rounding=ROUND_HALF_UP))


# --- the panel ---------------------------------------------------------------------------------


class SandboxPanel:
    """The simulated panel: catalog, balance, orders moving over simulated time, faults."""

    def __init__(
        self,
        api_key: str = "sandbox-key",
        *,
        services: Sequence[Mapping[str, Any]] | None = None,
        balance: Decimal = Decimal("100.84292"),
        currency: str = "USD",
        step_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        partial_every: int = 5,
        reject_every: int = 4,
        first_order_id: int = 23501,
    ) -> None:
        self.api_key = api_key
        self.currency = currency
        self.step_seconds = step_seconds
        self.partial_every = partial_every
        self.reject_every = reject_every
        self.request_log: list[LoggedRequest] = []
        self._raw_catalog = [dict(s) for s in (services or DEFAULT_CATALOG)]
        self._services = {s.id: s for s in read_services(self._raw_catalog)}
        if len(self._services) != len(self._raw_catalog):
            raise ValueError("catalog has malformed or duplicate services")
        self._balance = Decimal(balance)
        self._orders: dict[int, SandboxOrder] = {}
        self._refills: dict[int, SandboxRefill] = {}
        self._running_orders: dict[int, SandboxOrder] = {}
        self._running_refills: dict[int, SandboxRefill] = {}
        self._next_order_id = first_order_id
        self._fail_next_add: deque[str] = deque()
        self._partial_next = 0  # orders still to be placed that will end Partial
        self._faults: defaultdict[str, deque[_Fault]] = defaultdict(deque)
        # Simulated time = mark + (real time since the mark) × speed; advance() moves the mark.
        self._clock = clock
        self._speed = 1.0
        self._real_mark = clock()
        self._sim_mark = 0.0
        self._runner: web.AppRunner | None = None
        self.url: str | None = None

    @classmethod
    def from_catalog(cls, services: Sequence[Mapping[str, Any]], **kwargs: Any) -> SandboxPanel:
        return cls(services=services, **kwargs)

    # --- controls ------------------------------------------------------------------------------

    @property
    def services(self) -> dict[int, Service]:
        return dict(self._services)

    def remove_service(self, service_id: int) -> None:
        """Drop a service from the catalog, as a panel does when a provider stops one."""
        self._services.pop(service_id, None)
        self._raw_catalog = [s for s in self._raw_catalog if int(s["service"]) != service_id]

    def set_rate(self, service_id: int, rate: str) -> None:
        """Change a service's price, as a provider does (the next `services` answer shows it)."""
        for raw in self._raw_catalog:
            if int(raw["service"]) == service_id:
                raw["rate"] = rate
        self._services = {s.id: s for s in read_services(self._raw_catalog)}

    @property
    def balance(self) -> Decimal:
        self._settle()
        return self._balance

    def set_balance(self, balance: Decimal) -> None:
        self._balance = Decimal(balance)

    @property
    def orders(self) -> dict[int, SandboxOrder]:
        self._settle()
        return dict(self._orders)

    @property
    def refills(self) -> dict[int, SandboxRefill]:
        self._settle()
        return dict(self._refills)

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        """Simulated seconds since the sandbox was created."""
        return self._sim_mark + (self._clock() - self._real_mark) * self._speed

    def advance(self, seconds: float) -> None:
        """Move simulated time forward: orders and refills progress accordingly."""
        self._sim_mark += seconds
        self._settle()

    def speed_up(self, factor: float) -> None:
        """Simulated time runs ``factor`` times as fast as real time from now on (0 pauses)."""
        if factor < 0:
            raise ValueError("speed factor must be >= 0")
        self._sim_mark, self._real_mark = self.now(), self._clock()
        self._speed = float(factor)

    def fail_next_add(self, message: str = "Not enough funds on balance") -> None:
        """The next ``add`` is refused with ``{"error": message}``."""
        self._fail_next_add.append(message)

    def partial_next(self) -> None:
        """The next order placed ends Partial (some of it is not delivered and refunded).

        An order that cannot end Partial (a package, a quantity below 2) leaves the promise for
        the one after it."""
        self._partial_next += 1

    def delay_next(self, action: str, seconds: float) -> None:
        """The next request for ``action`` is processed, then answered ``seconds`` late."""
        self._faults[action].append(_Fault(delay=seconds))

    def fail_next_http(
        self, action: str, status: int = 502, body: str = "<html>Bad gateway</html>"
    ) -> None:
        """The next request for ``action`` gets this HTTP answer and is not processed."""
        self._faults[action].append(_Fault(http_status=status, body=body))

    def invalid_json_next(self, action: str) -> None:
        """The next request for ``action`` is processed, but its answer is cut short."""
        self._faults[action].append(_Fault(invalid_json=True))

    def actions(self) -> list[str]:
        """The actions received so far, in order."""
        return [r.action for r in self.request_log]

    def state(self) -> dict[str, Any]:
        self._settle()
        by_status = Counter(str(o.status) for o in self._orders.values())
        refills = Counter(str(r.status) for r in self._refills.values())
        return {
            "balance": _money(self._balance),
            "currency": self.currency,
            "orders": {"total": len(self._orders), **by_status},
            "refills": {"total": len(self._refills), **refills},
            "services": len(self._services),
            "speed": self._speed,
            "step_seconds": self.step_seconds,
            "time": round(self.now(), 3),
            "requests": len(self.request_log),
            "partial_next": self._partial_next,
        }

    # --- the API, without HTTP -----------------------------------------------------------------

    def handle(self, params: Mapping[str, str]) -> Any:
        """Answer one API v2 request (already decoded form fields) with a JSON-able value."""
        self._settle()
        if not hmac.compare_digest(params.get("key", "").encode(), self.api_key.encode()):
            return {"error": "Invalid API key"}
        action = params.get("action", "").strip()
        if not action:
            return {"error": "Incorrect request"}
        handler = self._handlers().get(action)
        if handler is None:
            return {"error": "Invalid action"}
        try:
            return handler(params)
        except _Refusal as refusal:
            return {"error": str(refusal)}

    def _handlers(self) -> dict[str, Callable[[Mapping[str, str]], Any]]:
        return {
            "balance": self._balance_answer,
            "services": self._services_answer,
            "add": self._add,
            "status": self._status,
            "refill": self._refill,
            "refill_status": self._refill_status,
            "cancel": self._cancel,
        }

    def _balance_answer(self, _params: Mapping[str, str]) -> Any:
        return {"balance": _money(self._balance), "currency": self.currency}

    def _services_answer(self, _params: Mapping[str, str]) -> Any:
        return self._raw_catalog

    # --- add ---

    def _add(self, params: Mapping[str, str]) -> Any:
        if self._fail_next_add:
            raise _Refusal(self._fail_next_add.popleft())
        service = self._services.get(_int_or_none(params.get("service")) or 0)
        if service is None:
            raise _Refusal("Incorrect service ID")
        rule = TYPE_RULES[service_type(service)]
        for name in rule.needs:
            if not params.get(name, "").strip():
                raise _Refusal(MISSING_FIELD_ERRORS[name])
        if "link" in rule.needs and not LINK_RE.match(params["link"].strip()):
            raise _Refusal("Incorrect link")
        if is_subscription(service):
            quantity, figures = self._check_subscription(service, params)
        else:
            quantity, figures = self._check_quantity(service, params)
        charge = order_price(service, figures).quantize(CENTS5, rounding=ROUND_HALF_UP)
        if charge > self._balance:
            raise _Refusal("Not enough funds on balance")
        runs = figures.runs or 1
        return {"order": self._place(service, params, quantity, runs, charge).id}

    def _check_quantity(
        self, service: Service, params: Mapping[str, str]
    ) -> tuple[int, OrderFigures]:
        if is_package(service):
            return 1, OrderFigures()
        if (counted := counted_field(service)) is not None:
            quantity = len(_lines(params[counted]))
        elif (given := _int_or_none(params.get("quantity"))) is not None:
            quantity = given
        else:
            raise _Refusal("Incorrect quantity")
        self._check_range(service, quantity)
        return quantity, OrderFigures(quantity=quantity, runs=self._check_runs(service, params))

    @staticmethod
    def _check_range(service: Service, quantity: int) -> None:
        if quantity < service.min:
            raise _Refusal(f"Quantity less than minimal {service.min}")
        if quantity > service.max:
            raise _Refusal(f"Quantity more than maximal {service.max}")

    @staticmethod
    def _check_runs(service: Service, params: Mapping[str, str]) -> int:
        if not params.get("runs", "").strip():
            return 1
        if not service.dripfeed:
            raise _Refusal("Drip-feed is disabled for this service")
        runs, interval = _int_or_none(params["runs"]), _int_or_none(params.get("interval"))
        if runs is None or runs < 1:
            raise _Refusal("Incorrect runs")
        if interval is None or interval < 1:
            raise _Refusal("Incorrect interval")
        return runs

    def _check_subscription(
        self, service: Service, params: Mapping[str, str]
    ) -> tuple[int, OrderFigures]:
        low, high = _int_or_none(params["min"]), _int_or_none(params["max"])
        if low is None or high is None or low > high:
            raise _Refusal("Incorrect min/max")
        self._check_range(service, low)
        self._check_range(service, high)
        posts = _int_or_none(params.get("posts", "0") or "0")  # none or 0: open-ended
        if posts is None or posts < 0:
            raise _Refusal("Incorrect posts")
        old_posts = _int_or_none(params.get("old_posts", "0") or "0")
        if old_posts is None or old_posts < 0:
            raise _Refusal("Incorrect old posts")
        if _int_or_none(params["delay"]) not in SUBSCRIPTION_DELAYS:
            raise _Refusal("Incorrect delay")
        if params.get("expiry", "").strip() and not _future_date(params["expiry"]):
            raise _Refusal("Incorrect expiry date")
        # Charged up front for the largest quantity on every covered post (on one post when
        # open-ended); a simplification.
        figures = OrderFigures(max=high, posts=posts, old_posts=old_posts)
        return high * (figures.covered_posts or 1), figures

    def _place(
        self, service: Service, params: Mapping[str, str], quantity: int, runs: int,
        charge: Decimal,
    ) -> SandboxOrder:  # fmt: skip
        order_id, self._next_order_id = self._next_order_id, self._next_order_id + 1
        count = len(self._orders) + 1
        can_end_partial = quantity >= 2 and not is_package(service)
        promised = can_end_partial and self._partial_next > 0
        if promised:
            self._partial_next -= 1
        every = self.partial_every > 0 and count % self.partial_every == 0
        partial = can_end_partial and (promised or every)
        order = SandboxOrder(
            id=order_id,
            service=service,
            fields={k: v for k, v in params.items() if k not in ("key", "action")},
            quantity=quantity,
            runs=runs,
            charge=charge,
            created_at=self.now(),
            partial_remains=max(1, quantity // 7) if partial else 0,
            remains=quantity,
        )
        self._balance -= charge
        self._orders[order_id] = self._running_orders[order_id] = order
        return order

    # --- status ---

    def _status(self, params: Mapping[str, str]) -> Any:
        if params.get("orders", "").strip():
            return {raw: self._status_item(raw) for raw in self._ids(params["orders"])}
        return self._status_item(params.get("order", ""))

    def _status_item(self, raw: str) -> dict[str, Any]:
        order = self._orders.get(_int_or_none(raw) or 0)
        if order is None:
            return {"error": "Incorrect order ID"}
        return {
            "charge": _money(order.charge),
            "start_count": None if order.start_count is None else str(order.start_count),
            "status": str(order.status),
            "remains": str(order.remains),
            "currency": self.currency,
        }

    @staticmethod
    def _ids(raw: str) -> list[str]:
        ids = list(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
        if len(ids) > MAX_IDS:
            raise _Refusal(f"Too many ids, maximum is {MAX_IDS}")
        return ids

    # --- refill ---

    def _refill(self, params: Mapping[str, str]) -> Any:
        if params.get("orders", "").strip():
            return [self._refill_item(raw) for raw in self._ids(params["orders"])]
        return {"refill": str(self._request_refill(params.get("order", "")).id)}

    def _refill_item(self, raw: str) -> dict[str, Any]:
        order_id = _int_or_none(raw)
        key: int | str = raw if order_id is None else order_id
        try:
            return {"order": key, "refill": self._request_refill(raw).id}
        except _Refusal as refusal:
            return {"order": key, "refill": {"error": str(refusal)}}

    def _request_refill(self, raw: str) -> SandboxRefill:
        order = self._orders.get(_int_or_none(raw) or 0)
        if order is None:
            raise _Refusal("Incorrect order ID")
        if not order.service.refill:
            raise _Refusal("Refill is disabled for this service")
        if order.status not in (OrderStatus.COMPLETED, OrderStatus.PARTIAL):
            raise _Refusal("Order is not eligible for refill")
        if any(r.order == order.id for r in self._running_refills.values()):
            raise _Refusal("Refill is already in progress")
        refill_id = len(self._refills) + 1
        rejected = self.reject_every > 0 and refill_id % self.reject_every == 0
        refill = SandboxRefill(refill_id, order.id, self.now(), rejected)
        self._refills[refill_id] = self._running_refills[refill_id] = refill
        return refill

    def _refill_status(self, params: Mapping[str, str]) -> Any:
        if params.get("refills", "").strip():
            return [self._refill_status_item(raw) for raw in self._ids(params["refills"])]
        refill = self._refills.get(_int_or_none(params.get("refill")) or 0)
        if refill is None:
            raise _Refusal("Refill not found")
        return {"status": str(refill.status)}

    def _refill_status_item(self, raw: str) -> dict[str, Any]:
        refill_id = _int_or_none(raw)
        refill = self._refills.get(refill_id or 0)
        key: int | str = raw if refill_id is None else refill_id
        if refill is None:
            return {"refill": key, "status": {"error": "Refill not found"}}
        return {"refill": key, "status": str(refill.status)}

    # --- cancel ---

    def _cancel(self, params: Mapping[str, str]) -> Any:
        raw_ids = params.get("orders", "").strip() or params.get("order", "").strip()
        if not raw_ids:
            raise _Refusal("Incorrect order ID")
        return [self._cancel_item(raw) for raw in self._ids(raw_ids)]

    def _cancel_item(self, raw: str) -> dict[str, Any]:
        order_id = _int_or_none(raw)
        key: int | str = raw if order_id is None else order_id
        order = self._orders.get(order_id or 0)
        if order is None:
            return {"order": key, "cancel": {"error": "Incorrect order ID"}}
        if not order.service.cancel:
            return {"order": key, "cancel": {"error": "Cancel is disabled for this service"}}
        if order.status == OrderStatus.CANCELED:
            return {"order": key, "cancel": {"error": "Order is already canceled"}}
        if order.id not in self._running_orders:
            return {"order": key, "cancel": {"error": "Order is already completed"}}
        self._refund(order, order.charge)
        order.status, order.remains = OrderStatus.CANCELED, order.quantity
        del self._running_orders[order.id]
        return {"order": key, "cancel": 1}

    # --- time passing ----------------------------------------------------------------------------

    def _settle(self) -> None:
        """Bring every running order and refill up to the current simulated time."""
        now = self.now()
        for order in list(self._running_orders.values()):
            self._progress_order(order, now)
        for refill in list(self._running_refills.values()):
            self._progress_refill(refill, now)

    def _progress_order(self, order: SandboxOrder, now: float) -> None:
        stage = self.step_seconds * order.runs  # drip-feed orders take runs × as long
        elapsed = now - order.created_at
        if elapsed >= 2 * stage:
            self._finish(order)
        elif elapsed >= stage:
            # Subscriptions report "Active" like real panels: a status the client must keep.
            running = "Active" if is_subscription(order.service) else None
            order.status = running or OrderStatus.IN_PROGRESS
            order.start_count = self._start_count(order)
            done = int(order.quantity * (elapsed - stage) / stage) if stage else order.quantity
            order.remains = max(order.quantity - done, order.partial_remains)

    def _finish(self, order: SandboxOrder) -> None:
        order.start_count = self._start_count(order)
        if order.partial_remains:
            order.status, order.remains = OrderStatus.PARTIAL, order.partial_remains
            share = order.charge * order.remains / order.quantity
            self._refund(order, share.quantize(CENTS5, rounding=ROUND_HALF_UP))
        else:
            order.status, order.remains = OrderStatus.COMPLETED, 0
        del self._running_orders[order.id]

    def _refund(self, order: SandboxOrder, amount: Decimal) -> None:
        order.charge -= amount
        order.refunded += amount
        self._balance += amount

    @staticmethod
    def _start_count(order: SandboxOrder) -> int:
        return order.start_count if order.start_count is not None else order.id * 7919 % 20000

    def _progress_refill(self, refill: SandboxRefill, now: float) -> None:
        elapsed = now - refill.created_at
        if elapsed >= 2 * self.step_seconds:
            refill.status = RefillStatus.REJECTED if refill.rejected else RefillStatus.COMPLETED
            del self._running_refills[refill.id]
        elif elapsed >= self.step_seconds:
            refill.status = RefillStatus.IN_PROGRESS

    # --- HTTP ------------------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """The aiohttp application: the API at ``/api/v2`` and ``/``, controls under /sandbox/."""
        app = web.Application()
        app.router.add_post(API_PATH, self._api_view)
        app.router.add_post("/", self._api_view)
        app.router.add_get("/sandbox/state", self._state_view)
        app.router.add_post("/sandbox/advance", self._advance_view)
        app.router.add_post("/sandbox/speed", self._speed_view)
        app.router.add_post("/sandbox/fail-next-add", self._fail_next_add_view)
        app.router.add_post("/sandbox/partial-next", self._partial_next_view)
        app.router.add_post("/sandbox/balance", self._balance_view)
        return app

    async def _api_view(self, request: web.Request) -> web.StreamResponse:
        params = await _read_params(request)
        action = params.get("action", "").strip()
        logged = {k: v for k, v in params.items() if k != "key"}
        self.request_log.append(LoggedRequest(action, logged, request.path))
        fault = self._faults[action].popleft() if self._faults.get(action) else _Fault()
        if fault.http_status is not None:
            return web.Response(
                status=fault.http_status, text=fault.body, content_type="text/html"
            )
        answer = json.dumps(self.handle(params))
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.invalid_json:
            answer = answer[: len(answer) // 2]
        return web.Response(text=answer, content_type="application/json")

    async def _state_view(self, _request: web.Request) -> web.StreamResponse:
        return web.json_response(self.state())

    async def _advance_view(self, request: web.Request) -> web.StreamResponse:
        return await self._control(request, "seconds", lambda v: self.advance(float(v)))

    async def _speed_view(self, request: web.Request) -> web.StreamResponse:
        return await self._control(request, "factor", lambda v: self.speed_up(float(v)))

    async def _fail_next_add_view(self, request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        self.fail_next_add(str(body.get("message") or "Not enough funds on balance"))
        return web.json_response(self.state())

    async def _partial_next_view(self, _request: web.Request) -> web.StreamResponse:
        self.partial_next()
        return web.json_response(self.state())

    async def _balance_view(self, request: web.Request) -> web.StreamResponse:
        return await self._control(request, "balance", self.set_balance)

    async def _control(
        self, request: web.Request, name: str, apply: Callable[[Decimal], None]
    ) -> web.StreamResponse:
        """Apply the number in the JSON body's ``name`` field; 400 when there is none."""
        body = await _json_object(request)
        try:
            value = Decimal(str(body[name]))
            if not value.is_finite():
                raise ValueError(name)
            apply(value)
        except (KeyError, ArithmeticError, ValueError):
            return web.json_response({"error": f"expected a number in {name!r}"}, status=400)
        return web.json_response(self.state())

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve over HTTP; the full API URL, e.g. ``http://127.0.0.1:PORT/api/v2``."""
        self._runner = web.AppRunner(self.make_app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound_port = self._runner.addresses[0][1]
        shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
        shown = f"[{shown}]" if ":" in shown else shown
        self.url = f"http://{shown}:{bound_port}{API_PATH}"
        return self.url

    @property
    def base_url(self) -> str:
        if self.url is None:
            raise RuntimeError("the sandbox is not started")
        return self.url.removesuffix(API_PATH)

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def _read_params(request: web.Request) -> dict[str, str]:
    """Form fields, or a JSON object body; other values are stringified like a form would."""
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            return {}
        if not isinstance(body, dict):
            return {}
        return {str(k): "\n".join(map(str, v)) if isinstance(v, list) else str(v)
                for k, v in body.items() if v is not None}  # fmt: skip
    form = await request.post()
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _future_date(raw: str) -> bool:
    try:
        return datetime.strptime(raw.strip(), "%d/%m/%Y").date() >= date.today()
    except ValueError:
        return False


# --- standalone --------------------------------------------------------------------------------


async def _serve(sandbox: SandboxPanel, host: str, port: int) -> None:
    url = await sandbox.start(host=host, port=port)
    print(f"Sandbox panel API URL: {url}", flush=True)
    print(f"API key: {sandbox.api_key}", flush=True)
    print(f"Controls: {sandbox.base_url}/sandbox/state  (Ctrl-C to stop)", flush=True)
    stopped = asyncio.Event()
    # SIGTERM (docker, systemd) stops as cleanly as Ctrl-C; not available on Windows.
    with contextlib.suppress(NotImplementedError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    try:
        await stopped.wait()
    finally:
        await sandbox.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the sandbox SMM panel (API v2).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--key", default="sandbox-key", help="the API key to accept")
    parser.add_argument("--step-seconds", type=float, default=10.0, help="seconds per stage")
    parser.add_argument("--balance", type=Decimal, default=Decimal("100.84292"))
    parser.add_argument("--services", type=int, default=0, help="generate N services instead")
    args = parser.parse_args(argv)
    catalog = generate_catalog(args.services) if args.services else None
    sandbox = SandboxPanel(
        args.key, services=catalog, balance=args.balance, step_seconds=args.step_seconds
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(sandbox, args.host, args.port))


if __name__ == "__main__":
    main()
