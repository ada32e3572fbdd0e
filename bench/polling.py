"""Polling: one `Poller.poll_once()` cycle over N open orders, against the sandbox panel.

The panel runs in a subprocess (bench/panel_process.py) on loopback, so `time.process_time()`
here is the bot's CPU alone (its SQLite thread included) and the panel's CPU is measured apart.
The baseline is the same cycle, the same database writes, but one `status` call per order — the
way several existing bots poll.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import case, delete, insert, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.measure import Clock, median
from bench.panel_process import (
    CHARGE,
    FIRST_ORDER_ID,
    MOVED_EVERY,
    PROGRESS,
    QUANTITY,
    PanelProcess,
    start_count,
    start_panel_process,
    stored_state,
)
from bench.profiling import ProfileSummary, profiled
from bot.config import Settings
from bot.i18n import create_i18n
from bot.panel.client import PanelClient
from bot.panel.models import OrderStatusResult
from bot.poller import Poller
from migrations import upgrade_database
from playground.telegram.recording import TOKEN
from storage.db import create_engine, create_session_factory
from storage.models import Chat, Order, OutboxMessage, SubmissionState, User

UNLIMITED_RPS = 1_000_000.0
# What the panel's answers change, see bench/panel_process.py `panel_answer`.
BUSY = "busy"  # 1% completed (stored + announced), 10% moved on (stored), 89% unchanged
QUIET = "quiet"  # 1% completed, 99% unchanged
INSERT_CHUNK = 10_000

Sessions = async_sessionmaker[AsyncSession]


@dataclass
class CycleRow:
    orders: int
    method: str  # "batched" (ours) or "one call per order" (the baseline)
    max_rps: float
    mix: str  # BUSY or QUIET: how many orders changed since the last poll
    panel_calls: int  # counted at the panel, per cycle
    wall_runs: list[float] = field(default_factory=list)  # seconds
    cpu_runs: list[float] = field(default_factory=list)  # our process CPU seconds
    panel_cpu_runs: list[float] = field(default_factory=list)  # the panel process CPU seconds
    changes: int = 0
    messages: int = 0

    @property
    def repeats(self) -> int:
        return len(self.wall_runs)

    @property
    def wall(self) -> float:
        return median(self.wall_runs)

    @property
    def cpu_per_order_us(self) -> float:
        return median(self.cpu_runs) / self.orders * 1e6

    @property
    def panel_cpu_per_order_us(self) -> float:
        return median(self.panel_cpu_runs) / self.orders * 1e6

    @property
    def expected_calls(self) -> int:
        return math.ceil(self.orders / 100) if self.method == "batched" else self.orders


@dataclass
class PollingResult:
    rows: list[CycleRow]
    profile: ProfileSummary | None = None  # one busy batched cycle
    profile_orders: int = 0

    def row(
        self, orders: int, method: str = "batched", max_rps: float | None = None, mix: str = BUSY
    ) -> CycleRow:
        for row in self.rows:
            if (row.orders, row.method, row.mix) == (orders, method, mix) and (
                max_rps is None or row.max_rps == max_rps
            ):
                return row
        raise KeyError((orders, method, max_rps, mix))

    def baseline_pairs(self) -> list[tuple[CycleRow, CycleRow]]:
        """(ours, baseline) for every size measured both ways, with the same rate limit."""
        pairs = []
        for baseline in self.rows:
            if baseline.method != "batched":
                ours = self.row(baseline.orders, "batched", baseline.max_rps)
                pairs.append((ours, baseline))
        return pairs


class OneCallPerOrder:
    """The panel as several existing bots use it: `for o in orders: await client.status(o)`."""

    def __init__(self, client: PanelClient) -> None:
        self._client = client

    async def statuses(self, orders: Iterable[int]) -> dict[int, OrderStatusResult]:
        return {order: await self._client.status(order) for order in orders}


# --- the database --------------------------------------------------------------------------------
async def create_order_database(url: str, n_orders: int, n_chats: int = 1000) -> None:
    """A migrated database holding `n_orders` placed, open orders, all due now."""
    await upgrade_database(url)
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    now = datetime.now(UTC)
    n_chats = max(1, min(n_chats, n_orders))
    status, remains = stored_state()
    try:
        async with sessions.begin() as session:
            chats = [
                {"id": chat, "type": "private", "created_at": now, "updated_at": now}
                for chat in range(1, n_chats + 1)
            ]
            await session.execute(insert(Chat), chats)
            people = [
                {"id": chat, "first_name": "Customer", "telegram_language": "en",
                 "created_at": now, "updated_at": now}
                for chat in range(1, n_chats + 1)
            ]  # fmt: skip
            await session.execute(insert(User), people)
        for start in range(0, n_orders, INSERT_CHUNK):
            rows = [
                _order_row(FIRST_ORDER_ID + i, 1 + i % n_chats, now, status, remains)
                for i in range(start, min(start + INSERT_CHUNK, n_orders))
            ]
            async with sessions.begin() as session:
                await session.execute(insert(Order), rows)
    finally:
        await engine.dispose()


def _order_row(
    panel_id: int, chat: int, now: datetime, status: str, remains: int
) -> dict[str, Any]:
    placed = now - timedelta(hours=1)
    return {
        "panel_order_id": panel_id,
        "chat_id": chat,
        "user_id": chat,
        "service_id": 10001,
        "service_name": "Instagram Followers [Real, 30 days refill] #3",
        "service_type": "Default",
        "service_rate": Decimal("1.25"),
        "category": "Instagram Followers",
        "can_refill": True,
        "can_cancel": True,
        "link": f"https://instagram.com/p/{panel_id}",
        "quantity": QUANTITY,
        "fields": {},
        "price": Decimal("1.25"),
        "charge": CHARGE,
        "currency": "USD",
        "state": str(SubmissionState.PLACED),
        "status": status,
        "remains": remains,
        "start_count": start_count(panel_id),
        "poll_active": True,
        "next_poll_at": now - timedelta(minutes=1),
        "created_at": placed,
        "updated_at": placed,
        "placed_at": placed,
    }


async def make_all_due(sessions: Sessions, mix: str = BUSY) -> None:
    """Undo a cycle: every order open, as stored before the cycle, due now.

    QUIET stores what the panel will say for the orders that move on, so only completions
    change."""
    status, remains = stored_state()
    stored_remains: Any = remains
    if mix == QUIET:
        moving = Order.panel_order_id % MOVED_EVERY == MOVED_EVERY // 2
        stored_remains = case((moving, QUANTITY - PROGRESS), else_=remains)
    async with sessions.begin() as session:
        await session.execute(
            update(Order).values(
                status=status,
                remains=stored_remains,
                poll_active=True,
                next_poll_at=datetime.now(UTC) - timedelta(minutes=1),
                lease_owner=None,
                lease_until=None,
            )
        )
        await session.execute(delete(OutboxMessage))


# --- one size ------------------------------------------------------------------------------------
def bench_settings(panel: PanelProcess, database_url: str, **overrides: Any) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        bot_token=TOKEN,
        panel_api_url=panel.url,
        panel_api_key=panel.key,
        database_url=database_url,
        **overrides,
    )


async def measure_cycles(
    panel: PanelProcess,
    database_url: str,
    n_orders: int,
    repeats: int,
    *,
    method: str = "batched",
    max_rps: float = UNLIMITED_RPS,
    mix: str = BUSY,
    profile: list[ProfileSummary] | None = None,
) -> CycleRow:
    """`repeats` cycles over every order; with `profile`, one more under cProfile."""
    settings = bench_settings(panel, database_url)
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    client = PanelClient(panel.url, panel.key, max_rps=max_rps)
    source: Any = client if method == "batched" else OneCallPerOrder(client)
    poller = Poller(settings=settings, sessions=sessions, panel=source, i18n=create_i18n("en"))
    row = CycleRow(orders=n_orders, method=method, max_rps=max_rps, mix=mix, panel_calls=0)
    try:
        for _ in range(repeats):
            await make_all_due(sessions, mix)
            before = await panel.stats()
            clock = Clock().start()
            report = await poller.poll_once()
            wall, cpu = clock.wall, clock.cpu
            after = await panel.stats()
            if report.orders_polled != n_orders or report.panel_failed:
                raise RuntimeError(f"the cycle polled {report.orders_polled} of {n_orders}")
            row.wall_runs.append(wall)
            row.cpu_runs.append(cpu)
            row.panel_cpu_runs.append(after["cpu"] - before["cpu"])
            row.panel_calls = after["requests"] - before["requests"]
            row.changes, row.messages = report.changes, report.messages
        if profile is not None:
            await make_all_due(sessions, mix)
            _, summary = await profiled(poller.poll_once)
            profile.append(summary)
    finally:
        await client.close()
        await engine.dispose()
    return row


async def bench_polling(
    sizes: Sequence[int],
    repeats: dict[int, int] | int,
    *,
    baseline_up_to: int = 10_000,
    batched_rps: float = 1000.0,
    default_rps_size: int | None = None,
    quiet_size: int | None = None,
    profile_size: int | None = None,
    n_services: int = 5000,
) -> PollingResult:
    """Every size batched (at `batched_rps`), and, up to `baseline_up_to` orders, both ways
    without a rate limit; `default_rps_size` also runs at the default PANEL_MAX_RPS (5), and
    `quiet_size` also with the QUIET mix; `profile_size` profiles one more batched cycle."""
    panel = await start_panel_process(n_services, max(sizes))
    rows: list[CycleRow] = []
    profiles: list[ProfileSummary] = []
    try:
        with tempfile.TemporaryDirectory(prefix="smm-bench-polling-") as folder:
            for size in sizes:
                n = repeats if isinstance(repeats, int) else repeats[size]
                url = f"sqlite+aiosqlite:///{Path(folder) / f'orders-{size}.db'}"
                await create_order_database(url, size)
                traced = profiles if size == profile_size else None
                rows.append(
                    await measure_cycles(panel, url, size, n, max_rps=batched_rps, profile=traced)
                )
                if size <= baseline_up_to:
                    rows.append(await measure_cycles(panel, url, size, n))
                    rows.append(
                        await measure_cycles(panel, url, size, n, method="one call per order")
                    )
                if size == quiet_size:
                    rows.append(
                        await measure_cycles(panel, url, size, n, max_rps=batched_rps, mix=QUIET)
                    )
                if size == default_rps_size:
                    default_rps = Settings.model_fields["panel_max_rps"].default
                    rows.append(await measure_cycles(panel, url, size, n, max_rps=default_rps))
    finally:
        panel.stop()
    return PollingResult(rows, profiles[0] if profiles else None, profile_size or 0)
