"""Every benchmark in bench/ runs, with tiny sizes, so none of them rots between `make bench` runs.

These check that each benchmark measures what it claims (conversations complete, ⌈N/100⌉ panel
calls, nothing lost), never how fast anything is: benchmarks are not tests.
"""

from __future__ import annotations

import math

from bench import report, table
from bench.catalog import bench_catalog
from bench.codebase import AFTER, BEFORE, ROOT
from bench.delivery import bench_delivery
from bench.jobs import Outcome
from bench.machine import describe_machine
from bench.memory import bench_memory
from bench.polling import BUSY, QUIET, bench_polling
from bench.sizes import QUICK
from bench.suite import Results, run_suite
from bench.updates import STEPS, UpdatesResult, bench_updates
from playground.telegram import RateLimits


async def test_update_handling_runs_whole_conversations() -> None:
    result = await bench_updates(2 * len(STEPS), 3, catalog_size=60)

    assert result.conversations == 2
    assert result.summaries == 2  # every conversation reached its order summary
    assert result.errors == 0
    assert len(result.ours_runs) == len(result.echo_runs) == len(result.ratio_runs) == 3
    assert set(result.sql_by_step) == set(STEPS)
    assert result.profile is not None and result.profile.top_self
    assert "## 1. Update handling" in "\n".join(report.updates_section(result, result))


async def test_polling_makes_one_call_per_hundred_orders() -> None:
    result = await bench_polling(
        [250], 1, baseline_up_to=250, quiet_size=250, profile_size=250, n_services=50
    )

    batched = result.row(250, "batched", 1000.0)
    assert batched.panel_calls == math.ceil(250 / 100) == batched.expected_calls
    assert result.row(250, "one call per order").panel_calls == 250
    assert result.row(250, mix=QUIET).mix == QUIET
    assert batched.mix == BUSY and batched.messages > 0  # completions were announced
    assert result.profile is not None
    assert "## 2. Polling" in "\n".join(report.polling_section(result))


async def test_delivery_loses_nothing() -> None:
    limits = RateLimits(global_per_second=500, per_chat_per_second=50, per_group_per_minute=3000)
    result = await bench_delivery(4, 2, 1, 2, limits=limits)

    assert result.messages == 10
    assert result.lost_runs == [0] and result.duplicate_runs == [0]
    assert not result.timed_out
    assert "## 3. Delivery" in "\n".join(report.delivery_section(result))


async def test_catalog_and_the_whole_report() -> None:
    catalog = bench_catalog(100, 5, 2)
    results = Results(machine=describe_machine(), sizes=QUICK)
    results.outcomes["catalog"] = {AFTER: [Outcome("catalog", 0, catalog, {}, "asyncio", 0.1)]}
    results.seconds["catalog"] = 0.1

    assert catalog.search_hits > 0 and all(us > 0 for us in catalog.micros.values())
    text = report.render(results)
    assert "## Machine" in text and "## 4. Catalog" in text


async def test_memory_probe_reports_a_peak() -> None:
    # Without the baseline interpreters: importing aiogram alone takes seconds.
    result = await bench_memory(30, 300, baselines=False)

    assert result.services_loaded == 30 and result.orders_polled == 300
    assert result.peak_kib >= max(result.stages.values()) > 0
    assert "## 5. Memory" in "\n".join(report.memory_section(result))


def test_before_and_after_are_measured_side_by_side() -> None:
    # The orchestration `make bench` runs, on tiny sizes: a child process per codebase, here
    # this checkout as both sides (the real run checks out the baseline commit instead).
    results = run_suite(QUICK, ["updates"], quick=True, before=ROOT, jobs=["updates"], say=str)

    assert not results.failures
    for side in (BEFORE, AFTER):
        (outcome,) = results.outcomes["updates"][side]
        assert set(outcome.imported.values()) == {str(ROOT)}
        assert isinstance(outcome.result, UpdatesResult) and outcome.result.cpu_runs
    (cpu_row, ratio_row) = table.rows(results)
    assert cpu_row.before and cpu_row.after and ratio_row.before and ratio_row.after
    assert "| CPU per update, benchmark mix, SQLite |" in report.render(results)
