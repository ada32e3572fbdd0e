"""The issue's table: six rows, each before and after (median and spread of every run), its
target, the verdict and what limits it, computed from the measured data (bench/report.py
renders it)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from bench.burst import BurstResult, BurstRun, SweepResult
from bench.codebase import AFTER, BEFORE
from bench.measure import median
from bench.memory import MemoryResult
from bench.polling import PollingResult
from bench.profiling import ProfileSummary
from bench.suite import Results
from bench.updates import STEPS, UpdatesResult

SQLITE_CPU_MS = 1.0
RATIO = 0.10
PG_CPU_MS = 1.5
BURST_P95_MS = 50.0
SWEEP_P95_MS = 100.0
POLL_CPU_US = 35.0
PEAK_RSS_MIB = 210.0


@dataclass
class Row:
    measure: str
    unit: str
    before: list[float]
    after: list[float]
    target: float
    lower_is_better: bool = True
    digits: int = 2
    limits: str = ""  # what limits it, from the data
    note: str = ""  # added to the verdict (the ratio's word, the sweep)
    skipped: str | None = None
    extra: dict[str, list[float]] = field(default_factory=dict)  # side → p50s (the burst)

    @property
    def met(self) -> bool | None:
        if not self.after:
            return None
        value = median(self.after)
        return value <= self.target if self.lower_is_better else value >= self.target

    @property
    def target_text(self) -> str:
        sign = "≤" if self.lower_is_better else "≥"
        return f"{sign} {self.target:g}{self.unit}"


# --- merging the rounds --------------------------------------------------------------------------
def merged_updates(found: Sequence[UpdatesResult]) -> UpdatesResult | None:
    """The rounds of one side as one result: every run, the first profile and SQL count."""
    if not found:
        return None
    first = next((r for r in found if r.profile is not None), found[0])
    cpu = [ms for r in found for ms in r.cpu_runs]
    return replace(
        first,
        repeats=sum(r.repeats for r in found),
        ours_runs=[v for r in found for v in r.ours_runs],
        echo_runs=[v for r in found for v in r.echo_runs],
        ratio_runs=[v for r in found for v in r.ratio_runs],
        cpu_runs=cpu,
        cpu_per_update_ms=median(cpu),
        summaries=min(r.summaries for r in found),
        errors=sum(r.errors for r in found),
        ms_by_step={
            step: median([r.ms_by_step[step] for r in found if step in r.ms_by_step])
            for step in STEPS
        },
        transaction_us=median([r.transaction_us for r in found]),
    )


def polling_cpu_runs(found: Sequence[PollingResult]) -> list[float]:
    return [cpu / row.orders * 1e6 for r in found for row in r.rows for cpu in row.cpu_runs]


def burst_runs(results: Results, side: str) -> list[BurstRun]:
    found: list[BurstResult] = results.results("burst", side)
    return [r.run for r in found if r.run is not None]


# --- what limits it ------------------------------------------------------------------------------
def top_areas(profile: ProfileSummary | None, n: int = 3) -> str:
    if profile is None:
        return ""
    return ", ".join(f"{area} {share:.0%}" for area, share in profile.by_area[:n])


def sql_per_update(updates: UpdatesResult) -> tuple[float, float]:
    counts = list(updates.sql_by_step.values())
    statements = sum(count.statements for count in counts) / len(counts)
    transactions = sum(count.transactions for count in counts) / len(counts)
    return statements, transactions


def updates_limits(updates: UpdatesResult | None) -> str:
    if updates is None:
        return "–"
    statements, transactions = sql_per_update(updates)
    fixed_ms = transactions * updates.transaction_us / 1000
    slowest = max(updates.ms_by_step, key=lambda step: updates.ms_by_step[step])
    parts = [
        f"{statements:.1f} SQL statements in {transactions:.1f} transactions per update; one "
        f"trivial transaction costs {updates.transaction_us:,.0f} µs (wall), so their fixed "
        f"cost is ~{fixed_ms:.2f} ms of the {updates.cpu_per_update_ms:.2f} ms CPU "
        f"({fixed_ms / updates.cpu_per_update_ms:.0%})",
        f"slowest step: {slowest} ({updates.ms_by_step[slowest]:.2f} ms wall, "
        f"{updates.sql_by_step[slowest].transactions} transactions)",
    ]
    if updates.profile is not None:
        parts.append(f"profile: {top_areas(updates.profile)}")
    return "; ".join(parts)


def ratio_limits(updates: UpdatesResult | None) -> str:
    if updates is None:
        return "–"
    echo_us = 1e6 / updates.echo_per_second
    return (
        f"the echo bot takes {echo_us:,.0f} µs of wall per update in the same loop, so the "
        f"ratio {RATIO:g} allows {echo_us / RATIO / 1000:.2f} ms; ours takes "
        f"{1000 / updates.ours_per_second:.2f} ms (the work listed in the row above)"
    )


def burst_limits(run: BurstRun | None, pg: UpdatesResult | None, in_flight: int) -> str:
    if run is None:
        return "–"
    parts = [
        f"answered {run.updates_per_second:,.0f} updates/s of {run.offered_per_second:,.0f} "
        f"offered; the bot process used {run.cpu_per_update_ms:.2f} ms CPU per update (webhook "
        f"in, Bot API out, PostgreSQL, Redis), {run.cores_busy:.0%} of a core over the burst, "
        "on its one event loop"
    ]
    if pg is not None:
        parts.append(
            f"{pg.cpu_per_update_ms:.2f} ms of it is the in-process handling (row above), "
            f"{run.cpu_per_update_ms - pg.cpu_per_update_ms:.2f} ms the HTTP around it"
        )
    parts.append(f"the machine's load average was {run.load_average:.1f} as it began")
    concurrency = run.sizing.get("dispatcher concurrency (UPDATE_CONCURRENCY)", "")
    if concurrency.isdigit() and int(concurrency) < in_flight:
        parts.append(
            f"with {in_flight} in flight and UPDATE_CONCURRENCY {concurrency}, up to "
            f"{in_flight - int(concurrency)} wait for a dispatcher slot"
        )
    return "; ".join(parts)


def polling_limits(found: Sequence[PollingResult]) -> str:
    if not found:
        return "–"
    row = found[0].rows[0]
    profile = next((r.profile for r in found if r.profile is not None), None)
    parts = [
        f"{row.panel_calls:,} panel calls for {row.orders:,} orders "
        f"(⌈N/100⌉ = {row.expected_calls:,}); the panel's own CPU "
        f"{row.panel_cpu_per_order_us:,.0f} µs/order in its process, not counted"
    ]
    if profile is not None:
        parts.append(f"profile: {top_areas(profile)}")
    return "; ".join(parts)


def memory_limits(found: Sequence[MemoryResult]) -> str:
    if not found:
        return "–"
    first = found[0]
    names = list(first.stages)
    steps = ", ".join(
        f"{after} +{(first.stages[after] - first.stages[before]) / 1024:,.0f} MiB"
        for before, after in itertools.pairwise(names)
    )
    parts = []
    aiogram = next((r.aiogram_kib for r in found if r.aiogram_kib), 0)
    if aiogram:
        parts.append(
            f"`import aiogram` alone peaks at {aiogram / 1024:,.0f} MiB, so everything else "
            f"adds {(first.peak_kib - aiogram) / 1024:,.0f} MiB"
        )
    parts.append(f"RSS by stage: started {first.stages[names[0]] / 1024:,.0f} MiB, {steps}")
    return "; ".join(parts)


# --- the rows ------------------------------------------------------------------------------------
def _side(results: Results, job: str, side: str) -> list[UpdatesResult]:
    found: list[UpdatesResult] = results.results(job, side)
    return found


def rows(results: Results) -> list[Row]:
    sqlite = {side: _side(results, "updates", side) for side in (BEFORE, AFTER)}
    pg = {side: _side(results, "updates_pg", side) for side in (BEFORE, AFTER)}
    sqlite_after, pg_after = merged_updates(sqlite[AFTER]), merged_updates(pg[AFTER])

    def runs_of(
        found: dict[str, list[UpdatesResult]], pick: Callable[[UpdatesResult], list[float]]
    ) -> tuple[list[float], list[float]]:
        return tuple(  # type: ignore[return-value]
            [v for r in found[side] for v in pick(r)] for side in (BEFORE, AFTER)
        )

    cpu = Row(
        "CPU per update, benchmark mix, SQLite",
        " ms",
        *runs_of(sqlite, lambda r: r.cpu_runs),
        SQLITE_CPU_MS,
        limits=updates_limits(sqlite_after),
    )
    ratio = Row(
        "ratio to aiogram's echo bot (same loop, same run)",
        "",
        *runs_of(sqlite, lambda r: r.ratio_runs),
        RATIO,
        lower_is_better=False,
        digits=3,
        limits=ratio_limits(sqlite_after),
    )
    if cpu.met is not None and ratio.met is not None and cpu.met != ratio.met:
        word = "met" if ratio.met else "missed"
        cpu.note = (
            f"the ratio, measured side by side in the same loop, is {word} and governs where "
            "the two disagree"
        )
    pg_row = Row(
        "CPU per update, benchmark mix, PostgreSQL + Redis",
        " ms",
        *runs_of(pg, lambda r: r.cpu_runs),
        PG_CPU_MS,
        limits=updates_limits(pg_after),
        skipped=results.skipped("updates_pg"),
    )
    bursts = {side: burst_runs(results, side) for side in (BEFORE, AFTER)}
    burst = Row(
        f"p95 latency, {results.sizes.burst_customers} customers, "
        f"{results.sizes.burst_in_flight} in flight, "
        f"{results.sizes.burst_rate:g} updates/s offered, one instance, PostgreSQL",
        " ms",
        [run.p95 * 1000 for run in bursts[BEFORE]],
        [run.p95 * 1000 for run in bursts[AFTER]],
        BURST_P95_MS,
        digits=0,
        limits=burst_limits(
            bursts[AFTER][0] if bursts[AFTER] else None, pg_after, results.sizes.burst_in_flight
        ),
        note=sweep_note(results),
        skipped=results.skipped("burst"),
        extra={side: [run.p50 * 1000 for run in bursts[side]] for side in (BEFORE, AFTER)},
    )
    polls = {side: results.results("polling", side) for side in (BEFORE, AFTER)}
    size = results.sizes.polling_table_size
    polling = Row(
        f"polling CPU per order, {size:,} orders, 11% changed",
        " µs",
        polling_cpu_runs(polls[BEFORE]),
        polling_cpu_runs(polls[AFTER]),
        POLL_CPU_US,
        digits=0,
        limits=polling_limits(polls[AFTER]),
    )
    memories = {side: results.results("memory", side) for side in (BEFORE, AFTER)}
    memory = Row(
        f"peak RSS, {results.sizes.memory_services:,} services + "
        f"{results.sizes.memory_orders:,} orders polled",
        " MiB",
        [r.peak_kib / 1024 for r in memories[BEFORE]],
        [r.peak_kib / 1024 for r in memories[AFTER]],
        PEAK_RSS_MIB,
        digits=0,
        limits=memory_limits(memories[AFTER]),
    )
    selected = {
        "updates": (cpu, ratio),
        "updates_pg": (pg_row,),
        "burst": (burst,),
        "polling": (polling,),
        "memory": (memory,),
    }
    return [row for job, chosen in selected.items() if job in results.outcomes for row in chosen]


def sweep_note(results: Results) -> str:
    found: list[SweepResult] = results.results("burst_sweep")
    if not found or not found[0].loads:
        return ""
    sweep = found[0]
    best = sweep.highest_within_limit
    last = sweep.rates[-1]
    tried = ", ".join(f"{rate:g}" for rate in sweep.rates)
    if best is None:
        return f"no offered load tried ({tried}/s) kept the median p95 ≤ {SWEEP_P95_MS:g} ms"
    stop = (
        f"; at {last:g}/s it was {sweep.p95_at(last) * 1000:,.0f} ms"
        if last != best
        else " (the highest tried)"
    )
    return (
        f"highest offered load with p95 ≤ {SWEEP_P95_MS:g} ms (after): **{best:g} updates/s** "
        f"(median p95 of {len(sweep.tries(best))}: {sweep.p95_at(best) * 1000:,.0f} ms)"
        f"{stop}"
    )


def spread(values: Sequence[float], digits: int) -> str:
    if not values:
        return "–"
    low, high = min(values), max(values)
    middle = f"{median(values):,.{digits}f}"
    return f"**{middle}** ({low:,.{digits}f}–{high:,.{digits}f}, {len(values)} runs)"


def change_text(row: Row) -> str:
    """How after compares with before; no factor where the runs' ranges overlap, since the
    difference of the medians is then within the run-to-run spread."""
    if not row.after or not row.before:
        return ""
    if max(min(row.before), min(row.after)) <= min(max(row.before), max(row.after)):
        return " (before and after overlap: no change beyond the run-to-run spread)"
    before, after = median(row.before), median(row.after)
    change = before / after if row.lower_is_better else after / before
    if change >= 1:
        return f" ({change:.1f}× better than before)"
    return f" ({1 / change:.1f}× worse than before)"


def verdict(row: Row) -> str:
    if row.skipped:
        return f"skipped: {row.skipped}"
    if row.met is None:
        return "–"
    text = ("**met**" if row.met else "**missed**") + change_text(row)
    return text + (f"; {row.note}" if row.note else "")
