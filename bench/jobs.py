"""The jobs `python -m bench` runs, each in a child process (bench/child.py): which benchmark
each is part of, whether it is a row of the issue's table (measured on both codebases), and
what the child hands back. Everything bot-related is imported inside the jobs, so the parent
can read this registry without importing a codebase."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench.sizes import Sizes


@dataclass(frozen=True)
class Job:
    name: str
    benchmark: str  # what `--only` selects
    table: bool  # a row of the table: measured on both codebases, once per round
    run: Callable[[Sizes, int], Awaitable[Any]]  # (sizes, round) → the result
    in_process: bool = True  # the bot runs in this process: on the codebase's event loop


async def _updates(sizes: Sizes, round_: int) -> Any:
    from bench.updates import bench_updates

    return await bench_updates(
        sizes.updates,
        sizes.updates_repeats,
        catalog_size=sizes.updates_catalog,
        profile=round_ == 0,
    )


async def _updates_pg(sizes: Sizes, round_: int) -> Any:
    from bench.backends import MISSING, bench_backends
    from bench.updates import bench_updates

    backends = bench_backends()
    if backends is None:
        return Skipped(MISSING)
    return await bench_updates(
        sizes.pg_updates,
        sizes.pg_repeats,
        catalog_size=sizes.updates_catalog,
        profile=round_ == 0,
        backends=backends,
    )


async def _updates_concurrent(sizes: Sizes, _round: int) -> Any:
    from bench.updates import bench_updates

    return await bench_updates(
        sizes.concurrent_updates,
        sizes.concurrent_repeats,
        catalog_size=sizes.updates_catalog,
        concurrency=sizes.concurrency,
        profile=False,
    )


async def _burst(sizes: Sizes, _round: int) -> Any:
    from bench.burst import bench_burst

    return await bench_burst(sizes.burst_customers, sizes.burst_in_flight, sizes.burst_rate)


async def _sweep(sizes: Sizes, _round: int) -> Any:
    from bench.burst import bench_sweep

    return await bench_sweep(
        sizes.burst_customers,
        sizes.burst_in_flight,
        sizes.burst_loads,
        sizes.burst_notices,
        sizes.burst_rate if sizes.burst_three else None,
        sizes.burst_tries,
    )


async def _polling(sizes: Sizes, round_: int) -> Any:
    from bench.polling import bench_polling

    size = sizes.polling_table_size
    return await bench_polling(
        [size],
        sizes.polling_table_repeats,
        baseline_up_to=0,
        profile_size=size if round_ == 0 else None,
        n_services=sizes.polling_services,
    )


async def _polling_more(sizes: Sizes, _round: int) -> Any:
    from bench.polling import bench_polling

    return await bench_polling(
        sizes.polling_sizes,
        dict(sizes.polling_repeats),
        baseline_up_to=sizes.polling_baseline_up_to,
        quiet_size=sizes.polling_quiet_size,
        default_rps_size=sizes.polling_default_rps_size,
        n_services=sizes.polling_services,
    )


async def _memory(sizes: Sizes, round_: int) -> Any:
    from bench.memory import bench_memory

    return await bench_memory(sizes.memory_services, sizes.memory_orders, baselines=round_ == 0)


async def _delivery(sizes: Sizes, _round: int) -> Any:
    from bench.delivery import bench_delivery

    return await bench_delivery(
        sizes.delivery_chats,
        sizes.delivery_per_chat,
        sizes.delivery_groups,
        sizes.delivery_per_group,
        repeats=sizes.delivery_repeats,
        limits=sizes.delivery_limits,
    )


async def _catalog(sizes: Sizes, _round: int) -> Any:
    from bench.catalog import bench_catalog

    return bench_catalog(
        sizes.catalog_services, sizes.catalog_iterations, sizes.catalog_parse_iterations
    )


async def _instances(sizes: Sizes, _round: int) -> Any:
    from bench.backends import REDIS_ENV
    from bench.instances import bench_instances

    return await bench_instances(
        sizes.instances_workload, sizes.instances_limits, os.environ.get(REDIS_ENV)
    )


@dataclass(frozen=True)
class Skipped:
    reason: str


# In the order they run: the table's rows first (before and after), then the after-only ones.
JOBS: tuple[Job, ...] = (
    Job("updates", "updates", True, _updates),
    Job("updates_pg", "updates_pg", True, _updates_pg),
    Job("burst", "burst", True, _burst, in_process=False),
    Job("polling", "polling", True, _polling),
    Job("memory", "memory", True, _memory, in_process=False),
    Job("updates_concurrent", "updates", False, _updates_concurrent),
    Job("burst_sweep", "burst", False, _sweep, in_process=False),
    Job("polling_more", "polling", False, _polling_more),
    Job("catalog", "catalog", False, _catalog),
    Job("delivery", "delivery", False, _delivery),
    Job("instances", "instances", False, _instances),
)
JOB = {job.name: job for job in JOBS}


@dataclass(frozen=True)
class Outcome:
    """What a child hands back: the benchmark's result and where its code came from."""

    job: str
    round: int
    result: Any
    imported: dict[str, str]  # package → the root it was imported from
    loop: str  # the event loop's module ("asyncio.unix_events", "uvloop")
    seconds: float
