"""The sizes of a full run (`make bench`) and of a quick one (`--quick`, the smoke test's)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.instances import Workload
from playground.telegram import RateLimits


@dataclass(frozen=True)
class Sizes:
    rounds: int = 3  # runs of each table row on each codebase, before and after alternating
    updates: int = 1350  # 150 conversations of 9 updates
    updates_repeats: int = 2  # per round
    updates_catalog: int = 5000
    pg_updates: int = 1350
    pg_repeats: int = 2  # per round
    concurrent_updates: int = 900
    concurrent_repeats: int = 3
    concurrency: int = 8
    polling_table_size: int = 10_000
    polling_table_repeats: int = 3  # per round
    polling_sizes: tuple[int, ...] = (1000, 100_000)
    polling_repeats: tuple[tuple[int, int], ...] = ((1000, 5), (100_000, 2))
    polling_baseline_up_to: int = 1000
    polling_quiet_size: int = 1000
    polling_default_rps_size: int = 1000
    polling_services: int = 5000
    delivery_chats: int = 500
    delivery_per_chat: int = 3
    delivery_groups: int = 2
    delivery_per_group: int = 12
    delivery_repeats: int = 1
    delivery_limits: RateLimits = field(default_factory=RateLimits)
    # The overall limit sets the pace: 612 messages are 20 s at 30/s, a group's 6 need 18 s.
    instances_workload: Workload = field(
        default_factory=lambda: Workload(private_chats=300, per_chat=2, groups=2, per_group=6)
    )
    instances_limits: RateLimits = field(default_factory=RateLimits)
    catalog_services: int = 5000
    catalog_iterations: int = 2000
    catalog_parse_iterations: int = 15
    memory_services: int = 5000
    memory_orders: int = 100_000
    burst_customers: int = 300
    burst_in_flight: int = 80
    burst_rate: float = 180.0  # offered updates a second: the burst
    burst_loads: tuple[float, ...] = (60, 120, 180, 240, 320, 420, 560)  # the sweep, rising
    burst_tries: int = 3  # of each load in the sweep
    burst_three: bool = True  # also 3 instances at burst_rate
    burst_notices: int = 240


FULL = Sizes()
# Seconds, not minutes: checks that everything runs, says nothing about speed.
QUICK = Sizes(
    rounds=1,
    updates=18,
    updates_repeats=1,
    updates_catalog=200,
    pg_updates=18,
    pg_repeats=1,
    concurrent_updates=18,
    concurrent_repeats=1,
    polling_table_size=300,
    polling_table_repeats=1,
    polling_sizes=(300,),
    polling_repeats=((300, 1),),
    polling_baseline_up_to=300,
    polling_quiet_size=300,
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
    burst_rate=60.0,
    burst_loads=(60, 120),
    burst_tries=1,
    burst_three=False,
    burst_notices=30,
)
