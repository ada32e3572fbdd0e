"""The whole benchmark run: the sizes of a full run (and of a quick one), and running them."""

from __future__ import annotations

import time
import traceback
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bench.burst import BurstResult, bench_burst
from bench.catalog import CatalogResult, bench_catalog
from bench.delivery import DeliveryResult, bench_delivery
from bench.instances import InstancesResult, Workload, bench_instances
from bench.machine import Machine, describe_machine
from bench.memory import MemoryResult, bench_memory
from bench.polling import PollingResult, bench_polling
from bench.updates import UpdatesResult, bench_updates
from playground.telegram import RateLimits

T = TypeVar("T")
BENCHMARKS = ("updates", "polling", "delivery", "catalog", "memory", "instances", "burst")


@dataclass(frozen=True)
class Sizes:
    updates: int = 1350  # 150 conversations of 9 updates
    updates_repeats: int = 5
    updates_catalog: int = 5000
    concurrent_updates: int = 900
    concurrent_repeats: int = 3
    concurrency: int = 8
    polling_sizes: tuple[int, ...] = (1000, 10_000, 100_000)
    polling_repeats: tuple[tuple[int, int], ...] = ((1000, 5), (10_000, 3), (100_000, 3))
    polling_baseline_up_to: int = 10_000
    polling_quiet_size: int = 10_000
    polling_profile_size: int = 10_000
    polling_default_rps_size: int = 1000
    polling_services: int = 5000
    delivery_chats: int = 1000
    delivery_per_chat: int = 3
    delivery_groups: int = 2
    delivery_per_group: int = 20
    delivery_repeats: int = 1
    delivery_limits: RateLimits = field(default_factory=RateLimits)
    # The overall limit sets the pace: 812 messages are 27 s at 30/s, a group's 6 need 18 s.
    instances_workload: Workload = field(
        default_factory=lambda: Workload(private_chats=400, per_chat=2, groups=2, per_group=6)
    )
    instances_limits: RateLimits = field(default_factory=RateLimits)
    catalog_services: int = 5000
    catalog_iterations: int = 2000
    catalog_parse_iterations: int = 15
    memory_services: int = 5000
    memory_orders: int = 100_000
    burst_customers: int = 300
    burst_in_flight: int = 80
    burst_notices: int = 240


FULL = Sizes()
# Seconds, not minutes: checks that everything runs, says nothing about speed.
QUICK = Sizes(
    updates=45,
    updates_repeats=3,
    updates_catalog=200,
    concurrent_updates=45,
    concurrent_repeats=3,
    polling_sizes=(300, 1000),
    polling_repeats=((300, 3), (1000, 3)),
    polling_baseline_up_to=300,
    polling_quiet_size=300,
    polling_profile_size=300,
    polling_default_rps_size=300,
    polling_services=200,
    delivery_chats=20,
    delivery_per_chat=2,
    delivery_groups=2,
    delivery_per_group=3,
    delivery_limits=RateLimits(
        global_per_second=200, per_chat_per_second=20, per_group_per_minute=600
    ),
    instances_workload=Workload(private_chats=20, per_chat=2, groups=2, per_group=3),
    instances_limits=RateLimits(
        global_per_second=200, per_chat_per_second=20, per_group_per_minute=600
    ),
    catalog_services=500,
    catalog_iterations=50,
    catalog_parse_iterations=3,
    memory_services=200,
    memory_orders=1000,
    burst_customers=20,
    burst_in_flight=10,
    burst_notices=30,
)


@dataclass
class Results:
    machine: Machine
    sizes: Sizes
    updates: UpdatesResult | None = None
    updates_concurrent: UpdatesResult | None = None
    polling: PollingResult | None = None
    delivery: DeliveryResult | None = None
    catalog: CatalogResult | None = None
    memory: MemoryResult | None = None
    burst: BurstResult | None = None
    instances: InstancesResult | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # wall time of each benchmark
    failures: dict[str, str] = field(default_factory=dict)  # benchmark → what went wrong

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


async def _timed(
    results: Results, name: str, run: Callable[[], Awaitable[T]], say: Callable[[str], Any]
) -> T | None:
    """Run one benchmark; a failure is recorded (and printed) and the others still run."""
    say(f"{name}…")
    started = time.perf_counter()
    try:
        outcome = await run()
    except Exception as error:
        traceback.print_exc()
        results.failures[name] = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        say(f"{name}: FAILED ({results.failures[name]})")
        return None
    finally:
        results.seconds[name] = time.perf_counter() - started
    say(f"{name}: {results.seconds[name]:.0f} s")
    return outcome


async def run_suite(
    sizes: Sizes, only: Collection[str] = BENCHMARKS, say: Callable[[str], Any] = print
) -> Results:
    results = Results(machine=describe_machine(), sizes=sizes)
    if "updates" in only:
        results.updates = await _timed(
            results,
            "update handling",
            lambda: bench_updates(
                sizes.updates, sizes.updates_repeats, catalog_size=sizes.updates_catalog
            ),
            say,
        )
        results.updates_concurrent = await _timed(
            results,
            f"update handling, {sizes.concurrency} at a time",
            lambda: bench_updates(
                sizes.concurrent_updates,
                sizes.concurrent_repeats,
                catalog_size=sizes.updates_catalog,
                concurrency=sizes.concurrency,
                profile=False,
            ),
            say,
        )
    if "polling" in only:
        results.polling = await _timed(
            results,
            "polling",
            lambda: bench_polling(
                sizes.polling_sizes,
                dict(sizes.polling_repeats),
                baseline_up_to=sizes.polling_baseline_up_to,
                quiet_size=sizes.polling_quiet_size,
                profile_size=sizes.polling_profile_size,
                default_rps_size=sizes.polling_default_rps_size,
                n_services=sizes.polling_services,
            ),
            say,
        )
    if "delivery" in only:
        results.delivery = await _timed(
            results,
            "delivery",
            lambda: bench_delivery(
                sizes.delivery_chats,
                sizes.delivery_per_chat,
                sizes.delivery_groups,
                sizes.delivery_per_group,
                repeats=sizes.delivery_repeats,
                limits=sizes.delivery_limits,
            ),
            say,
        )
    if "catalog" in only:

        async def catalog() -> CatalogResult:
            return bench_catalog(
                sizes.catalog_services, sizes.catalog_iterations, sizes.catalog_parse_iterations
            )

        results.catalog = await _timed(results, "catalog", catalog, say)
    if "memory" in only:
        results.memory = await _timed(
            results,
            "memory",
            lambda: bench_memory(sizes.memory_services, sizes.memory_orders),
            say,
        )
    if "burst" in only:
        results.burst = await _timed(
            results,
            "several instances",
            lambda: bench_burst(sizes.burst_customers, sizes.burst_in_flight, sizes.burst_notices),
            say,
        )
    if "instances" in only:
        results.instances = await _timed(
            results,
            "delivery by several instances",
            lambda: bench_instances(sizes.instances_workload, sizes.instances_limits),
            say,
        )
    return results
