"""A burst of customers against real bot processes: open-loop offered load, on PostgreSQL and
Redis, in webhook mode behind a round-robin load balancer (the multi-instance test's harness,
`tests/cluster.py`).

**Offered load, open loop.** `customers` people each send `/start`, then `/order` (the
category menu, from the cached catalog): 2 × `customers` updates, due on a fixed schedule of
`rate` updates a second (every customer's `/start` first, then every `/order`; a person's
`/order` waits for the answer to their `/start`). Latency runs from the moment an update was
*due*, not from when it could be sent: a send that waits for one of the `in_flight` slots (at
most that many updates wait for an answer at once) or for the person's previous answer counts
that wait too, so a bot that falls behind the schedule shows it instead of slowing the arrivals
down. An answer is the bot's reply arriving in the chat (webhook delivery included). Telegram's
limits are off for this part: with them, the 30 answers a second Telegram allows would be all it
measures.

**Messages**: `notices` outbox rows for as many chats, drained against a peer that enforces
Telegram's limits (30 a second overall): messages per second and the 429s the peer answered.

Skips (with the reason in the report) unless TEST_DATABASE_URL and TEST_REDIS_URL are set; it
uses a database and a Redis db of its own (bench/backends.py), created and emptied here.
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from bench.backends import MISSING, bench_backends
from bench.sizing import sizing

if TYPE_CHECKING:
    from tests.cluster import Backends, Cluster

FIRST_CUSTOMER = 50_000_000
FIRST_READER = 60_000_000
CUSTOMER_BLOCK = 1_000_000  # user ids of one load step: a block of their own
P95_LIMIT = 0.100  # the sweep's bar: the highest offered load whose p95 stays under it
TEXTS = ("/start", "/order")


@dataclass(frozen=True)
class BurstRun:
    instances: int
    offered_per_second: float
    updates: int
    answered: int
    seconds: float  # from the first update due to the last answer
    latencies: tuple[float, ...]  # from the moment each update was due
    messages: int = 0
    message_seconds: float = 0.0
    too_many_requests: int = 0  # 429s from the overall window while the notices drained
    sizing: dict[str, str] = field(default_factory=dict)
    bot_code: tuple[str, ...] = ()  # each bot process's working directory: the code it ran
    bot_cpu_seconds: float = 0.0  # CPU of the bot processes (all threads) during the burst
    load_average: float = 0.0  # the machine's 1-minute load average as the burst began

    @property
    def cpu_per_update_ms(self) -> float:
        """The bot processes' CPU per update answered: webhook in, Bot API out, everything."""
        return self.bot_cpu_seconds / self.answered * 1000 if self.answered else float("nan")

    @property
    def cores_busy(self) -> float:
        """How much of one core the bot processes used, on average over the burst."""
        return self.bot_cpu_seconds / self.seconds / self.instances if self.seconds else 0.0

    @property
    def updates_per_second(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0

    @property
    def messages_per_second(self) -> float:
        return (self.messages - 1) / self.message_seconds if self.message_seconds else 0.0

    @property
    def p50(self) -> float:
        return self.latency(0.5)

    @property
    def p95(self) -> float:
        return self.latency(0.95)

    def latency(self, share: float) -> float:
        """The latency under which `share` of the answers came (0.95: the p95); an unanswered
        update counts as slower than every answer."""
        ordered = sorted(self.latencies) + [float("inf")] * (self.updates - len(self.latencies))
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@dataclass
class BurstResult:
    """One offered load on one instance (a row of the table), or skipped."""

    customers: int
    in_flight: int
    rate: float
    run: BurstRun | None = None
    skipped: str | None = None


@dataclass
class SweepResult:
    """Rising offered loads on one instance until the p95 passes P95_LIMIT; then 3 instances
    at the table's load; the message drains."""

    customers: int
    in_flight: int
    loads: list[BurstRun] = field(default_factory=list)  # one instance, rising load
    three: BurstRun | None = None
    skipped: str | None = None

    def tries(self, rate: float) -> list[BurstRun]:
        return [run for run in self.loads if run.offered_per_second == rate]

    def p95_at(self, rate: float) -> float:
        """The median p95 of the tries at this offered load."""
        return statistics.median(run.p95 for run in self.tries(rate))

    @property
    def rates(self) -> list[float]:
        return list(dict.fromkeys(run.offered_per_second for run in self.loads))

    @property
    def highest_within_limit(self) -> float | None:
        """The highest offered load whose median p95 stayed within P95_LIMIT, every lower one
        tried having stayed within it too."""
        best = None
        for rate in self.rates:
            if self.p95_at(rate) > P95_LIMIT:
                break
            best = rate
        return best


# --- running -------------------------------------------------------------------------------------
def _cluster(backends: Backends, workdir: Path, instances: int) -> Cluster:
    from tests.cluster import Cluster

    return Cluster(backends, workdir, instances=instances, telegram_limits=None)


async def bench_burst(customers: int, in_flight: int, rate: float) -> BurstResult:
    result = BurstResult(customers, in_flight, rate)
    backends = bench_backends()
    if backends is None:
        result.skipped = MISSING
        return result
    with tempfile.TemporaryDirectory(prefix="bench-burst-") as workdir:
        cluster = _cluster(backends, Path(workdir), 1)
        try:
            await cluster.start()
            await _warm_up(cluster)
            result.run = await offer(cluster, FIRST_CUSTOMER, customers, in_flight, rate)
        finally:
            await cluster.stop()
    return result


async def bench_sweep(
    customers: int,
    in_flight: int,
    loads: Sequence[float],
    notices: int,
    three_at: float | None,
    tries: int = 3,
) -> SweepResult:
    """`loads` (rising) on one instance, `tries` times each (the median p95 counts: on a
    shared machine one try can be unlucky), stopping after the first load over the bar; the
    drain of `notices` messages; then, with `three_at`, 3 instances at that load."""
    result = SweepResult(customers, in_flight)
    backends = bench_backends()
    if backends is None:
        result.skipped = MISSING
        return result
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as workdir:
        cluster = _cluster(backends, Path(workdir), 1)
        try:
            await cluster.start()
            await _warm_up(cluster)
            step = 0
            for rate in loads:
                for _ in range(tries):
                    first = FIRST_CUSTOMER + step * CUSTOMER_BLOCK
                    result.loads.append(await offer(cluster, first, customers, in_flight, rate))
                    step += 1
                    await asyncio.sleep(1.0)  # let the last answers' work settle
                if result.p95_at(rate) > P95_LIMIT:
                    break
            result.loads[-1] = await _with_drain(cluster, result.loads[-1], notices)
        finally:
            await cluster.stop()
    if three_at is not None:
        with tempfile.TemporaryDirectory(prefix="bench-sweep-3-") as workdir:
            cluster = _cluster(backends, Path(workdir), 3)
            try:
                await cluster.start()
                await _warm_up(cluster)
                run = await offer(cluster, FIRST_CUSTOMER, customers, in_flight, three_at)
                result.three = await _with_drain(cluster, run, notices)
            finally:
                await cluster.stop()
    return result


async def offer(
    cluster: Cluster, first_customer: int, customers: int, in_flight: int, rate: float
) -> BurstRun:
    """Offer 2 × `customers` updates at `rate` a second (see the module docstring)."""
    gate = asyncio.Semaphore(in_flight)
    latencies: list[float] = []
    people = [
        cluster.emulator.user(first_customer + n, first_name=f"Burst{n}") for n in range(customers)
    ]
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2  # every task is waiting before the first update is due
    load_average = os.getloadavg()[0]
    cpu_before = sum(_cpu_seconds(bot.pid) for bot in cluster.bots)

    async def customer(index: int) -> None:
        for step, text in enumerate(TEXTS):
            due = start + (step * customers + index) / rate
            await asyncio.sleep(max(0.0, due - loop.time()))
            async with gate:
                try:
                    await people[index].send(text, timeout=60)
                except AssertionError:
                    continue  # unanswered: counted as slower than every answer
                latencies.append(loop.time() - due)

    # The load generator (this process: the emulator, the proxy, the customers) must not
    # pause either: one full collection of its heap took 150 ms, blamed on the bot as a p95.
    gc.collect()
    gc.disable()
    try:
        await asyncio.gather(*(customer(n) for n in range(customers)))
    finally:
        gc.enable()
    seconds = loop.time() - start
    cpu = sum(_cpu_seconds(bot.pid) for bot in cluster.bots) - cpu_before
    return BurstRun(
        instances=cluster.instances,
        offered_per_second=rate,
        updates=len(TEXTS) * customers,
        answered=len(latencies),
        seconds=seconds,
        latencies=tuple(latencies),
        sizing=cluster_sizing(cluster),
        bot_code=tuple(_cwd(bot.pid) for bot in cluster.bots),
        bot_cpu_seconds=cpu,
        load_average=load_average,
    )


def cluster_sizing(cluster: Cluster) -> dict[str, str]:
    """The queues' sizes of instance 0, from the Settings its environment gives."""
    from bot.config import Settings

    env = cluster.env(0)
    fields: dict[str, Any] = {
        name: env[name.upper()] for name in Settings.model_fields if name.upper() in env
    }
    return sizing(Settings(_env_file=None, **fields))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far, from /proc (0 where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # After the command's ")": state is field 3, utime 14 and stime 15 (proc(5)).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cwd(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return "unknown"


async def _warm_up(cluster: Cluster) -> None:
    """Every instance loads the catalog once before timing, as a running bot has."""
    person = cluster.emulator.user(FIRST_CUSTOMER - 1, first_name="Warm")
    for _ in range(cluster.instances):
        await person.send("/order", timeout=60)


async def _with_drain(cluster: Cluster, run: BurstRun, notices: int) -> BurstRun:
    messages, seconds, refused = await _drain(cluster, notices)
    return BurstRun(
        **{
            **run.__dict__,
            "messages": messages,
            "message_seconds": seconds,
            "too_many_requests": refused,
        }
    )


async def _drain(cluster: Cluster, notices: int) -> tuple[int, float, int]:
    """Queue `notices` messages (one per chat) with Telegram's limits on; how many went out,
    over how many seconds, and how many 429s the overall window answered."""
    from storage import outbox
    from tests.cluster import TELEGRAM_LIMITS

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
    cluster.emulator.set_limits(None)
    return len(times), seconds, cluster.emulator.rate_refusals.get("overall", 0)
