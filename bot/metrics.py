"""The numbers to run the bot by, and its health: Prometheus metrics, `/healthz` and `/readyz`.

Each `Services` has its own `Metrics` (its own CollectorRegistry, never the global one), so tests
and several bots in one process count apart. Counters and histograms move as things happen (the
callbacks below are what the wiring hands to the panel client, the outbox sender, the poller
and the update middleware); the database gauges are read at scrape time, two small queries, so
no update pays for them. Every instance reports the same database-wide gauges: aggregate them
with max(), not sum().
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Final

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage import metrics as queries
from storage.db import utcnow
from storage.models import SubmissionState

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

PREFIX: Final = "smmbot"
PROBE_TIMEOUT = 2.0  # seconds a readiness check may take: a load balancer's probe is short
GAUGE_TIMEOUT = 5.0  # seconds for the gauge queries, well inside Prometheus's scrape timeout
# Panel calls wait for the rate limit and may take PANEL_TIMEOUT (30 s by default).
PANEL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

Probe = Callable[[], Awaitable[object]]


class Metrics:
    """Every metric of one bot, in a registry of its own; `render` is the exposition text."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.updates = Counter(
            f"{PREFIX}_updates",
            "Updates handled, by the handler that took them (unhandled: none) and outcome",
            ["handler", "outcome"],
            registry=registry,
        )
        self.update_seconds = Histogram(
            f"{PREFIX}_update_seconds",
            "Time to handle one update, middlewares included, by handler",
            ["handler"],
            registry=registry,
        )
        self.panel_calls = Counter(
            f"{PREFIX}_panel_calls",
            "Requests to the panel (each retry is one), by action",
            ["action"],
            registry=registry,
        )
        self.panel_errors = Counter(
            f"{PREFIX}_panel_errors",
            "Panel requests that failed, by action and kind "
            "(refused: the panel said no; unavailable: no usable answer; "
            "unknown: an add that may have been placed)",
            ["action", "kind"],
            registry=registry,
        )
        self.panel_seconds = Histogram(
            f"{PREFIX}_panel_call_seconds",
            "Time of one panel request, its wait for the rate limit included, by action",
            ["action"],
            buckets=PANEL_BUCKETS,
            registry=registry,
        )
        self.telegram_refusals = Counter(
            f"{PREFIX}_telegram_refusals",
            "Outbox sends Telegram refused: 429 (too many requests), 403 (blocked)",
            ["code"],
            registry=registry,
        )
        self.poll_cycle_seconds = Histogram(
            f"{PREFIX}_poll_cycle_seconds",
            "Time of one status poll cycle (every due order and refill)",
            buckets=POLL_BUCKETS,
            registry=registry,
        )
        self.outbox_depth = Gauge(
            f"{PREFIX}_outbox_depth",
            "Messages waiting in the outbox (database-wide: the same on every instance)",
            registry=registry,
        )
        self.outbox_oldest_age = Gauge(
            f"{PREFIX}_outbox_oldest_age_seconds",
            "Age of the oldest message waiting in the outbox (0 when it is empty)",
            registry=registry,
        )
        self.orders = Gauge(
            f"{PREFIX}_orders",
            "Orders by state (database-wide: the same on every instance)",
            ["state"],
            registry=registry,
        )
        # Known states show as 0 before any order reaches them, so alerts see a series.
        for state in SubmissionState:
            self.orders.labels(state=state.value)
        for code in ("429", "403"):
            self.telegram_refusals.labels(code=code)
        self._refreshing = asyncio.Lock()

    # --- what the wiring hands out --------------------------------------------------------------

    def update_handled(self, handler: str, seconds: float, outcome: str) -> None:
        self.updates.labels(handler=handler, outcome=outcome).inc()
        self.update_seconds.labels(handler=handler).observe(seconds)

    def panel_call(self, action: str, seconds: float, outcome: str) -> None:
        """`PanelClient`'s observer: outcome is ok, refused, unavailable or unknown."""
        self.panel_calls.labels(action=action).inc()
        self.panel_seconds.labels(action=action).observe(seconds)
        if outcome != "ok":
            self.panel_errors.labels(action=action, kind=outcome).inc()

    def telegram_refused(self, code: int) -> None:
        """`OutboxSender`'s observer: Telegram answered a send with this error code."""
        self.telegram_refusals.labels(code=str(code)).inc()

    def poll_cycle(self, seconds: float) -> None:
        self.poll_cycle_seconds.observe(seconds)

    # --- scraping -------------------------------------------------------------------------------

    async def refresh(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Read the database gauges now (raises what the database raises)."""
        async with self._refreshing, asyncio.timeout(GAUGE_TIMEOUT), sessions() as session:
            backlog = await queries.outbox_backlog(session)
            by_state = await queries.orders_by_state(session)
        self.outbox_depth.set(backlog.depth)
        self.outbox_oldest_age.set(_age_seconds(backlog.oldest, utcnow()))
        for state in {s.value for s in SubmissionState} | set(by_state):
            self.orders.labels(state=state).set(by_state.get(state, 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _age_seconds(since: datetime | None, now: datetime) -> float:
    # Instances' clocks differ a little: a message written "in the future" is just new.
    return 0.0 if since is None else max(0.0, (now - since).total_seconds())


def dependency_probes(
    sessions: async_sessionmaker[AsyncSession], redis: Redis | None
) -> dict[str, Probe]:
    """What an instance needs to serve updates: the database, and Redis when there is one.

    The panel is not among them: when it is down every instance is, and taking them all out of
    the load balancer would only add Telegram's redeliveries; it has a metric and an alert.
    """

    async def database() -> None:
        async with sessions() as session:
            await queries.ping(session)

    probes: dict[str, Probe] = {"database": database}
    if redis is not None:
        probes["redis"] = redis.ping
    return probes


async def _probe(check: Probe) -> str:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            await check()
    except Exception as error:  # any failure means not ready; its text may name a host
        return f"unreachable ({type(error).__name__})"
    return "ok"


def create_metrics_app(
    metrics: Metrics,
    sessions: async_sessionmaker[AsyncSession],
    probes: Mapping[str, Probe],
) -> web.Application:
    """/metrics (Prometheus text), /healthz (the process is up) and /readyz (200 when every
    probe passes, else 503; the body says which failed)."""

    async def scrape(_request: web.Request) -> web.Response:
        try:
            await metrics.refresh(sessions)
        except Exception as error:  # the other metrics still count; /readyz tells the rest
            log.warning("metrics: database gauges not refreshed (%s)", type(error).__name__)
        return web.Response(
            body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4}
        )

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_request: web.Request) -> web.Response:
        names = list(probes)
        results = await asyncio.gather(*(_probe(probes[name]) for name in names))
        report = dict(zip(names, results, strict=True))
        ready = all(result == "ok" for result in results)
        return web.Response(
            status=200 if ready else 503,
            text=json.dumps(report, sort_keys=True) + "\n",
            content_type="application/json",
        )

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def serve_metrics(app: web.Application, host: str | None, port: int) -> web.AppRunner:
    """Listen on host:port (every interface when host is None); `cleanup()` stops it."""
    runner = web.AppRunner(app, access_log=None)  # a probe every few seconds is no news
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
