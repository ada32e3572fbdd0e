"""A burst of customers against 1 and 3 instances: the real bot processes on PostgreSQL and
Redis, in webhook mode behind a round-robin load balancer (the multi-instance test's harness,
`tests/cluster.py`).

Two measurements for each number of instances:

- **Updates**: `customers` people each send `/start` and then `/order` (the category menu, from
  the cached catalog), at most `in_flight` of them waiting for an answer at any moment. Update
  throughput is updates answered per second of wall time; latency is from the moment a person
  sends to the moment the bot's answer arrives in their chat (delivery by webhook included).
  Telegram's limits are off for this part: with them, the 30 answers a second Telegram allows
  would be all it measures.
- **Messages**: `notices` outbox rows for as many chats, drained against a peer that enforces
  Telegram's limits (30 a second overall): messages per second and the 429s the peer answered.

Skips (with the reason in the report) unless TEST_DATABASE_URL and TEST_REDIS_URL are set; it
uses a database and a Redis db of its own derived from them, created and dropped here.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import async_sessionmaker

from storage import outbox
from tests.cluster import TELEGRAM_LIMITS, Cluster, backends_from_env

FIRST_CUSTOMER = 50_000_000
FIRST_READER = 60_000_000


@dataclass(frozen=True)
class BurstRun:
    instances: int
    updates: int
    answered: int
    seconds: float
    latencies: tuple[float, ...]
    messages: int
    message_seconds: float
    too_many_requests: int  # 429s from the overall window while the notices drained

    @property
    def updates_per_second(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0

    @property
    def messages_per_second(self) -> float:
        return (self.messages - 1) / self.message_seconds if self.message_seconds else 0.0

    def latency(self, share: float) -> float:
        """The latency under which `share` of the answers came (0.95: the p95)."""
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@dataclass
class BurstResult:
    customers: int
    in_flight: int
    notices: int
    runs: list[BurstRun] = field(default_factory=list)
    skipped: str | None = None


async def bench_burst(
    customers: int, in_flight: int, notices: int, instance_counts: Sequence[int] = (1, 3)
) -> BurstResult:
    result = BurstResult(customers, in_flight, notices)
    backends = backends_from_env("bench")
    if backends is None:
        result.skipped = "TEST_DATABASE_URL and TEST_REDIS_URL are not both set"
        return result
    for count in instance_counts:
        with tempfile.TemporaryDirectory(prefix="bench-burst-") as workdir:
            cluster = Cluster(backends, Path(workdir), instances=count, telegram_limits=None)
            try:
                await cluster.start()
                result.runs.append(await _run(cluster, customers, in_flight, notices))
            finally:
                await cluster.stop()
    return result


async def _run(cluster: Cluster, customers: int, in_flight: int, notices: int) -> BurstRun:
    gate = asyncio.Semaphore(in_flight)
    latencies: list[float] = []
    answered = 0

    async def customer(user_id: int) -> None:
        nonlocal answered
        person = cluster.emulator.user(user_id, first_name=f"Burst{user_id}")
        async with gate:
            for text in ("/start", "/order"):
                sent = time.perf_counter()
                try:
                    await person.send(text, timeout=60)
                except AssertionError:
                    continue  # unanswered: counted by its absence
                latencies.append(time.perf_counter() - sent)
                answered += 1

    await _warm_up(cluster)
    started = time.perf_counter()
    await asyncio.gather(*(customer(FIRST_CUSTOMER + n) for n in range(customers)))
    seconds = time.perf_counter() - started
    messages, message_seconds, refused = await _drain(cluster, notices)
    return BurstRun(
        instances=cluster.instances,
        updates=2 * customers,
        answered=answered,
        seconds=seconds,
        latencies=tuple(latencies),
        messages=messages,
        message_seconds=message_seconds,
        too_many_requests=refused,
    )


async def _warm_up(cluster: Cluster) -> None:
    """Every instance loads the catalog once before timing, as a running bot has."""
    person = cluster.emulator.user(FIRST_CUSTOMER - 1, first_name="Warm")
    for _ in range(cluster.instances):
        await person.send("/order", timeout=60)


async def _drain(cluster: Cluster, notices: int) -> tuple[int, float, int]:
    """Queue `notices` messages (one per chat) with Telegram's limits on; how many went out,
    over how many seconds, and how many 429s the overall window answered."""
    cluster.emulator.set_limits(TELEGRAM_LIMITS)
    chats = [FIRST_READER + n for n in range(notices)]
    for chat in chats:
        cluster.emulator.user(chat, first_name=f"Reader{chat}")
    first = len(cluster.emulator.sent_at)
    assert cluster.engine is not None
    sessions = async_sessionmaker(cluster.engine, expire_on_commit=False)
    async with sessions.begin() as session:
        for chat in chats:
            await outbox.enqueue(session, chat, f"Burst notice for {chat}")
    await cluster.emulator.wait_until(
        lambda: len(cluster.emulator.sent_at) - first >= notices, 30 + notices / 10, tick=0.1
    )
    times = cluster.emulator.sent_at[first:]
    seconds = times[-1] - times[0] if len(times) > 1 else 0.0
    return len(times), seconds, cluster.emulator.rate_refusals.get("overall", 0)


# --- the report -------------------------------------------------------------------------------


def burst_summary(result: BurstResult) -> tuple[str, str, str, str]:
    """The summary table's row: figures, target, verdict."""
    if result.skipped or not result.runs:
        return ("7. A burst on several instances", f"skipped: {result.skipped}", "–", "–")
    figures = "; ".join(
        f"{run.instances} instance{'s' if run.instances > 1 else ''}: "
        f"{run.updates_per_second:.0f} updates/s, p95 {run.latency(0.95) * 1000:.0f} ms, "
        f"{run.messages_per_second:.1f} messages/s, {run.too_many_requests} 429s"
        for run in result.runs
    )
    met = all(r.too_many_requests == 0 and r.answered == r.updates for r in result.runs)
    verdict = "met" if met else "**not met**"
    return (
        "7. A burst on several instances",
        figures,
        "every update answered; 0 answers of 429",
        verdict,
    )


def burst_section(result: BurstResult) -> list[str]:
    lines = [
        "## 7. A burst on several instances",
        "",
        f"A burst of {result.customers:,} customers (each `/start`, then `/order`), at most "
        f"{result.in_flight} waiting for an answer at once, against real bot processes in "
        "webhook mode behind a round-robin load balancer, on PostgreSQL and Redis; then "
        f"{result.notices:,} notices drained against a peer enforcing 30 messages a second "
        "overall. See `bench/burst.py`.",
        "",
    ]
    if result.skipped:
        return [*lines, f"Skipped: {result.skipped}.", ""]
    rows = [
        (
            run.instances,
            f"{run.answered:,} of {run.updates:,}",
            f"{run.updates_per_second:.0f}",
            f"{run.latency(0.5) * 1000:.0f} ms",
            f"{run.latency(0.95) * 1000:.0f} ms",
            f"{run.messages_per_second:.1f}",
            run.too_many_requests,
        )
        for run in result.runs
    ]
    header = (
        "Instances",
        "Updates answered",
        "Updates/s",
        "Latency p50",
        "Latency p95",
        "Messages/s (limit 30)",
        "429s",
    )
    return [*lines, *_table(header, rows), ""]


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return out
