"""RESULTS.md: the issue's table (before and after, each row's spread, target, verdict and
what limits it), the sizing of the queues, then each benchmark's own section (after)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from bench import table as issue_table
from bench.burst import P95_LIMIT, BurstRun, SweepResult
from bench.catalog import CatalogResult
from bench.codebase import AFTER, BASELINE, BEFORE
from bench.delivery import DeliveryResult
from bench.instances import InstancesResult
from bench.memory import MemoryResult
from bench.polling import BUSY, QUIET, CycleRow, PollingResult
from bench.profiling import ProfileSummary
from bench.suite import Results
from bench.updates import STEPS, UpdatesResult

UPDATES_TARGET = issue_table.RATIO  # ours / echo
POLL_CPU_TARGET_US = issue_table.POLL_CPU_US  # our CPU per order polled
DELIVERY_SLACK = 0.10  # within 10% of the ideal drain time
HANDFUL = 5  # "no more than a handful of 429s"
TIME_BUDGET_MINUTES = 20


# --- formatting ----------------------------------------------------------------------------------
def num(value: float, digits: int = 0) -> str:
    if math.isnan(value):
        return "–"
    return f"{value:,.{digits}f}"


def runs(values: Iterable[float], digits: int = 0) -> str:
    return ", ".join(num(value, digits) for value in values)


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def mib(kib: float) -> str:
    return f"{kib / 1024:,.0f} MiB"


def verdict(met: bool, detail: str) -> str:
    return f"**met** ({detail})" if met else f"**missed** ({detail})"


def plural(n: int, word: str) -> str:
    if n == 1:
        return f"{n:,} {word}"
    return f"{n:,} {word[:-1] + 'ies' if word.endswith('y') else word + 's'}"


# --- the file ------------------------------------------------------------------------------------
def render(results: Results) -> str:
    minutes = results.total_seconds / 60
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`python -m bench`); every run rewrites this file, so do not "
        "edit it by hand. How each benchmark works is in the docstring of its module in "
        "`bench/`; how the two codebases are measured side by side is in `bench/child.py`.",
        "",
        f"Measured on {results.machine.date}; the whole run took **{minutes:.1f} minutes** "
        f"(budget {TIME_BUDGET_MINUTES}; "
        + ("within it" if minutes <= TIME_BUDGET_MINUTES else "**over it**")
        + "), the baseline's runs included. Every figure is the **median** of the runs given "
        "next to it. Absolute times drift on a shared machine; the **ratios**, measured side by "
        "side in the same run, hold better.",
        "",
    ]
    lines += machine_section(results)
    if results.failures:
        lines += [
            "## Failures",
            "",
            "These runs failed (details on the run's stderr); their figures are missing:",
            "",
            *table(("Run", "Error"), results.failures.items()),
        ]
    lines += summary_section(results)
    lines += sizing_section(results)
    if found := results.results("updates"):
        concurrent = results.results("updates_concurrent")
        merged = issue_table.merged_updates(found)
        assert merged is not None
        lines += updates_section(merged, concurrent[0] if concurrent else None)
    if found := results.results("updates_pg"):
        merged = issue_table.merged_updates(found)
        assert merged is not None
        lines += pg_section(merged)
    polling = results.results("polling_more") + results.results("polling")
    if polling:
        lines += polling_section(merge_polling(polling))
    if found := results.results("delivery"):
        lines += delivery_section(found[0])
    if found := results.results("catalog"):
        lines += catalog_section(found[0])
    if found := results.results("memory"):
        lines += memory_section(next((m for m in found if m.aiogram_kib), found[0]))
    if found := results.results("instances"):
        lines += instances_section(found[0])
    if "burst" in results.outcomes or "burst_sweep" in results.outcomes:
        lines += burst_section(results)
    lines += [
        "## Run times",
        "",
        "Every child process of each benchmark, both codebases and every round together:",
        "",
        *table(
            ("Job", "Wall time"),
            ((name, f"{seconds:.0f} s") for name, seconds in results.seconds.items()),
        ),
    ]
    return "\n".join(lines).rstrip() + "\n"


def merge_polling(found: Sequence[PollingResult]) -> PollingResult:
    """The after-only matrix and the table's rounds of 10,000 orders as one result."""
    rows = [row for result in found for row in result.rows]
    profiled = next((r for r in found if r.profile is not None), None)
    return PollingResult(
        rows,
        profiled.profile if profiled else None,
        profiled.profile_orders if profiled else 0,
    )


def machine_section(results: Results) -> list[str]:
    machine = results.machine
    packages = ", ".join(f"{name} {version}" for name, version in machine.packages.items())
    code = [
        (
            f"Code measured, {side}",
            f"`{results.codebases[side].path}` at {results.codebases[side].commit}"
            + (f" (BASELINE = {BASELINE}, a `git worktree`)" if side == BEFORE else "")
            + f"; in-process event loop: {', '.join(sorted(results.loops(side))) or '–'}",
        )
        for side in (BEFORE, AFTER)
        if side in results.codebases
    ]
    return [
        "## Machine",
        "",
        *table(
            ("", ""),
            [
                ("CPU", machine.cpu),
                ("Cores", machine.cores),
                (
                    "Load average at the start (1, 5, 15 min)",
                    ", ".join(f"{load:.2f}" for load in machine.load)
                    + (" (other work was running)" if machine.load[0] >= 0.5 else ""),
                ),
                ("Memory", f"{machine.memory_gib:.1f} GiB"),
                ("Python", machine.python),
                ("OS", machine.system),
                ("SQLite", machine.sqlite),
                ("Packages", packages),
                ("This checkout", f"commit {machine.code}"),
                *code,
            ],
        ),
    ]


# --- summary -------------------------------------------------------------------------------------
def summary_section(results: Results) -> list[str]:
    rounds = results.sizes.rounds
    lines = [
        "## Summary: the issue's table",
        "",
        f"Before: the code at {BASELINE}, the issue's starting point, from a `git worktree`; "
        "after: this checkout. Both measured in this run by the same harness, each benchmark "
        f"in a fresh process per codebase and round, {rounds} round{'s' if rounds != 1 else ''}"
        ", the side that goes first alternating. Each cell: **median** (min–max, runs). The "
        "verdict judges the after figure against the target; where the CPU row and the ratio "
        "row disagree, the ratio (measured side by side with the echo bot in the same loop, "
        "so the machine's drift cancels out) governs.",
        "",
    ]
    found = issue_table.rows(results)
    body = []
    for row in found:
        before = issue_table.spread(row.before, row.digits) + row.unit if row.before else "–"
        after = issue_table.spread(row.after, row.digits) + row.unit if row.after else "–"
        if row.extra.get(BEFORE):
            before += f"; p50 {issue_table.spread(row.extra[BEFORE], 0)} ms"
        if row.extra.get(AFTER):
            after += f"; p50 {issue_table.spread(row.extra[AFTER], 0)} ms"
        body.append(
            (row.measure, before, after, row.target_text, issue_table.verdict(row), row.limits)
        )
    lines += table(
        ("Measure", "Before", "After", "Target", "Verdict", "What limits it (after)"), body
    )
    return lines


def sizing_section(results: Results) -> list[str]:
    """Where a burst queues, as each measured run configured it (from its Settings)."""
    runs: list[tuple[str, dict[str, str]]] = []
    for side in (BEFORE, AFTER):
        if sqlite := results.results("updates", side):
            runs.append((f"{side}: in-process, SQLite", sqlite[0].sizing))
        if pg := results.results("updates_pg", side):
            runs.append((f"{side}: in-process, PostgreSQL + Redis", pg[0].sizing))
        if bursts := issue_table.burst_runs(results, side):
            runs.append((f"{side}: the burst's instance (tests/cluster.py)", bursts[0].sizing))
    if not runs:
        return []
    names = list(dict.fromkeys(name for _, sizes in runs for name in sizes))
    return [
        "## Sizing: where a burst can queue",
        "",
        "As configured in each measured run, read from the Settings it ran with "
        "(`bench/sizing.py`). The in-process runs use the defaults; the burst's instance gets "
        "what `tests/cluster.py` sets in its environment.",
        "",
        *table(
            ("Queue", *(label for label, _ in runs)),
            [(name, *(sizes.get(name, "–") for _, sizes in runs)) for name in names],
        ),
    ]


def burst_section(results: Results) -> list[str]:
    sizes = results.sizes
    lines = [
        "## 7. A burst: offered load on one instance (and three)",
        "",
        f"{sizes.burst_customers} customers each send `/start` then `/order`, the updates due "
        f"on a fixed schedule (open loop) at the offered rate, at most {sizes.burst_in_flight} "
        "waiting for an answer at once; latency runs from when an update was due, so queueing "
        "counts. Real `python -m bot run` processes in webhook mode behind a round-robin "
        "proxy, on PostgreSQL and Redis (`tests/cluster.py`); Telegram's limits off while the "
        "burst runs, on while the notices drain. See `bench/burst.py`.",
        "",
    ]
    rows: list[tuple[str, BurstRun]] = []
    for side in (BEFORE, AFTER):
        rows += [
            (f"{side}, round {n + 1}", run)
            for n, run in enumerate(issue_table.burst_runs(results, side))
        ]
    sweep: list[SweepResult] = results.results("burst_sweep")
    if sweep:
        rows += [("after, sweep", run) for run in sweep[0].loads]
        if sweep[0].three is not None:
            rows.append(("after, 3 instances", sweep[0].three))
    skipped = results.skipped("burst") or results.skipped("burst_sweep")
    if skipped or (sweep and sweep[0].skipped):
        lines += [f"Skipped: {skipped or sweep[0].skipped}.", ""]
    if rows:
        lines += table(
            (
                "Run",
                "Instances",
                "Offered/s",
                "Answered",
                "Answered/s",
                "p50",
                "p95",
                "Bot CPU ms/update",
                "Load average",
                "Messages/s (limit 30)",
                "429s",
            ),
            [
                (
                    label,
                    run.instances,
                    num(run.offered_per_second),
                    f"{run.answered:,} of {run.updates:,}",
                    num(run.updates_per_second),
                    f"{num(run.p50 * 1000)} ms",
                    f"**{num(run.p95 * 1000)} ms**",
                    num(run.cpu_per_update_ms, 2),
                    num(run.load_average, 1),
                    num(run.messages_per_second, 1) if run.messages else "–",
                    run.too_many_requests if run.messages else "–",
                )
                for label, run in rows
            ],
        )
    if sweep and sweep[0].loads:
        best = sweep[0].highest_within_limit
        lines += [
            "The sweep raises the offered load on one instance, "
            f"{plural(len(sweep[0].tries(sweep[0].rates[0])), 'try')} at each, until the "
            f"median p95 passes {P95_LIMIT * 1000:g} ms: "
            + (
                f"the highest load within it is **{num(best)} updates/s**."
                if best is not None
                else "no load tried stayed within it."
            ),
            "",
        ]
    return lines


def pg_section(updates: UpdatesResult) -> list[str]:
    statements, transactions = issue_table.sql_per_update(updates)
    lines = [
        "## 1b. Update handling on PostgreSQL + Redis",
        "",
        "The same mix through the same dispatcher in this process, with the settings "
        "`tests/cluster.py` gives each instance: DATABASE_URL on PostgreSQL, FSM_STORAGE on "
        "Redis (FSM state and its locks), REDIS_URL set (invalidation bus, shared panel "
        "limiter). CPU is this process's (every thread), not the servers'.",
        "",
        *table(
            ("", "Median", f"Runs ({len(updates.cpu_runs)})"),
            [
                (
                    "Ours, CPU ms per update",
                    f"**{num(updates.cpu_per_update_ms, 2)}**",
                    runs(updates.cpu_runs, 2),
                ),
                ("Ours, updates/s", num(updates.ours_per_second), runs(updates.ours_runs)),
                ("Echo, updates/s", num(updates.echo_per_second), runs(updates.echo_runs)),
                ("Ratio ours / echo", num(updates.ratio, 3), runs(updates.ratio_runs, 3)),
            ],
        ),
        f"{statements:.1f} SQL statements in {transactions:.1f} transactions per update; one "
        f"trivial transaction costs {num(updates.transaction_us)} µs here.",
        "",
        *table(
            ("Step", "ms per update", "SQL reads", "SQL writes", "Transactions"),
            [
                (
                    step,
                    num(updates.ms_by_step.get(step, math.nan), 2),
                    updates.sql_by_step[step].reads,
                    updates.sql_by_step[step].writes,
                    updates.sql_by_step[step].transactions,
                )
                for step in STEPS
            ],
        ),
    ]
    if updates.profile is not None:
        lines += profile_lines(
            updates.profile, f"cProfile of one more run of {updates.n_updates:,} updates, PG"
        )
    return lines


def updates_verdict(updates: UpdatesResult) -> str:
    if updates.ratio >= UPDATES_TARGET:
        return verdict(True, f"{num(updates.ratio, 3)} ≥ {UPDATES_TARGET:g}")
    return verdict(
        False, f"{num(updates.ratio, 3)}: {num(UPDATES_TARGET / updates.ratio, 1)}× short"
    )


def batched_rows(polling: PollingResult, mix: str = BUSY) -> list[CycleRow]:
    """Our batched cycles at the rate limit each size was measured with first."""
    seen: set[int] = set()
    rows = []
    for row in polling.rows:
        if row.method == "batched" and row.mix == mix and row.orders not in seen:
            seen.add(row.orders)
            rows.append(row)
    return rows


def polling_verdict(polling: PollingResult) -> str:
    calls_ok = all(row.panel_calls == row.expected_calls for row in polling.rows)
    busy = batched_rows(polling)
    worst = max(row.cpu_per_order_us for row in busy)
    quiet = batched_rows(polling, QUIET)
    parts = [
        verdict(calls_ok, "calls = ⌈N/100⌉ at every size" if calls_ok else "calls ≠ ⌈N/100⌉"),
        verdict(
            worst < POLL_CPU_TARGET_US,
            f"CPU: up to {num(worst)} µs/order with 11% of orders changed, "
            f"{num(worst / POLL_CPU_TARGET_US, 1)}× the target"
            + (f"; {num(quiet[0].cpu_per_order_us)} µs with 1% changed" if quiet else ""),
        ),
    ]
    return "; ".join(parts)


def delivery_verdict(delivery: DeliveryResult) -> str:
    too_many = max(delivery.too_many_runs)
    return "; ".join(
        [
            verdict(
                delivery.over_ideal <= DELIVERY_SLACK and not delivery.timed_out,
                f"time {delivery.over_ideal:+.1%}",
            ),
            verdict(too_many <= HANDFUL, f"{too_many:,} 429s"),
            verdict(max(delivery.lost_runs) == 0, f"{max(delivery.lost_runs)} lost"),
        ]
    )


# --- 1. updates ----------------------------------------------------------------------------------
def updates_section(updates: UpdatesResult, concurrent: UpdatesResult | None) -> list[str]:
    per_update_ms = 1000 / updates.ours_per_second
    counts = list(updates.sql_by_step.values())
    reads = sum(count.reads for count in counts) / len(counts)
    writes = sum(count.writes for count in counts) / len(counts)
    transactions = sum(count.transactions for count in counts) / len(counts)
    trivial_us = updates.transaction_us
    allowed_us = 1e6 / updates.echo_per_second / UPDATES_TARGET
    cheapest = min(STEPS, key=lambda step: updates.ms_by_step.get(step, math.inf))
    floor = updates.sql_by_step[cheapest]
    lines = [
        "## 1. Update handling",
        "",
        "Updates per second through the real dispatcher (`create_dispatcher(services)`: every "
        "middleware, the migrated SQLite database in a temporary file, the locale; the sandbox "
        f"panel on loopback with a {updates.catalog_size:,}-service catalog, loaded before "
        "timing like a running bot has it) against aiogram's echo bot (a `Dispatcher` and one "
        "router answering `message.answer(text)`), fed the same number of updates in the same "
        "run. Both get real `Update` objects, already mounted on the bot, through "
        "`dp.feed_update`, one after the other, with a Bot whose session records requests "
        "instead of sending them (no HTTP, no JSON on either side).",
        "",
        f"The mix: {updates.conversations:,} customers per run, each through one valid "
        f"conversation of {len(STEPS)} updates ({', '.join(STEPS)}), interleaved step by step "
        f"across customers; {updates.n_updates:,} updates per run. The customers are returning "
        "ones (their user row and three placed orders exist, so /orders lists something); one "
        "in four has a Filipino Telegram client. Every conversation reached its order summary "
        f"({updates.summaries:,} of {updates.conversations:,}), with "
        f"{plural(updates.errors, 'error')} logged.",
        "",
        *table(
            ("", "Median", f"Runs ({updates.repeats})"),
            [
                (
                    "Ours, updates/s",
                    f"**{num(updates.ours_per_second)}**",
                    runs(updates.ours_runs),
                ),
                (
                    "Echo, updates/s",
                    f"**{num(updates.echo_per_second)}**",
                    runs(updates.echo_runs),
                ),
                ("Ratio ours / echo", f"**{num(updates.ratio, 3)}**", runs(updates.ratio_runs, 3)),
            ],
        ),
        f"Target ratio ≥ {UPDATES_TARGET:g}: {updates_verdict(updates)}. Ours spends "
        f"{num(per_update_ms, 1)} ms of wall time and {num(updates.cpu_per_update_ms, 1)} ms of "
        "process CPU (its SQLite thread included) per update; the echo bot "
        f"{num(1e6 / updates.echo_per_second)} µs. Bot API calls per update: "
        + ", ".join(f"{name} {num(v, 2)}" for name, v in updates.requests_per_update.items())
        + ".",
        "",
        "### Where an update's time goes",
        "",
        "Per step: the median wall time of one update over every run, and what it did to the "
        "database (SQL statements by kind, and transactions, i.e. connection checkouts), counted "
        "with SQLAlchemy engine events on one more customer's conversation.",
        "",
        *table(
            ("Step", "ms per update", "SQL reads", "SQL writes", "Transactions"),
            [
                (
                    step,
                    num(updates.ms_by_step.get(step, math.nan), 2),
                    updates.sql_by_step[step].reads,
                    updates.sql_by_step[step].writes,
                    updates.sql_by_step[step].transactions,
                )
                for step in STEPS
            ],
        ),
        f"**What limits it.** {database_share_text(updates.profile)}An update averages "
        f"{num(reads + writes, 1)} SQL statements ({num(reads, 1)} reads, {num(writes, 1)} "
        f"writes) in {num(transactions, 1)} transactions, and one trivial transaction (SELECT 1 "
        "and a commit) through the bot's session factory, SQLAlchemy's async session and "
        f"aiosqlite costs {num(trivial_us)} µs, so the transactions' fixed cost alone is about "
        f"{num(transactions * trivial_us / 1000, 1)} of the {num(per_update_ms, 1)} ms. The "
        f"cheapest step, {cheapest}, takes {num(updates.ms_by_step[cheapest], 2)} ms with "
        f"{floor.statements} statements in {floor.transactions} transactions: roughly what every "
        "update pays for the middlewares (the user and chat records, the access decision, the "
        "locale) and the FSM state before any handler does its own work. The echo bot touches no "
        f"database, which is why the ratio is small: a ratio of {UPDATES_TARGET:g} would leave "
        f"{num(allowed_us)} µs per update, "
        + (
            "less than one trivial transaction here."
            if allowed_us < trivial_us
            else f"about {num(allowed_us / trivial_us, 1)} trivial transactions here."
        ),
        "",
    ]
    if concurrent is not None:
        lines += [
            f"**{concurrent.concurrency} updates at a time.** aiogram's polling handles updates "
            "as concurrent tasks, so the same mix was also fed "
            f"{concurrent.concurrency} at a time (consecutive updates belong to different "
            f"customers): {num(concurrent.ours_per_second)} updates/s for ours (runs: "
            f"{runs(concurrent.ours_runs)}), {num(concurrent.echo_per_second)} for the echo bot, "
            f"ratio {num(concurrent.ratio, 3)}, {num(concurrent.cpu_per_update_ms, 1)} ms CPU "
            f"per update ({concurrent.summaries:,} of {concurrent.conversations:,} "
            f"conversations complete, {plural(concurrent.errors, 'error')}). "
            + concurrency_text(updates, concurrent),
            "",
        ]
    if updates.profile is not None:
        lines += profile_lines(
            updates.profile,
            f"cProfile of one more run of {updates.n_updates:,} updates",
        )
    return lines


DATABASE_AREAS = (
    "SQLAlchemy",
    "waiting for / handing work to the SQLite thread",
    "aiosqlite",
    "greenlet (SQLAlchemy's async bridge)",
)


def database_share_text(profile: ProfileSummary | None) -> str:
    if profile is None:
        return ""
    share = sum(part for area, part in profile.by_area if area in DATABASE_AREAS)
    return (
        f"Database work: {share:.0%} of the event loop's profiled time is SQLAlchemy, aiosqlite "
        "and waiting for the SQLite thread (below), and SQLite's own work runs in that thread "
        "on top. "
    )


def concurrency_text(updates: UpdatesResult, concurrent: UpdatesResult) -> str:
    if concurrent.ours_per_second > updates.ours_per_second * 1.1:
        return "Concurrency helps: some of the time one at a time is spent waiting."
    return (
        "Concurrency does not help: the work is CPU-bound on one event loop (CPU per update "
        f"{num(updates.cpu_per_update_ms, 1)} ms one at a time, "
        f"{num(concurrent.cpu_per_update_ms, 1)} ms {concurrent.concurrency} at a time), and "
        "concurrent updates add waits on SQLite's single write lock and more threads (one "
        "aiosqlite thread per connection) competing for the GIL."
    )


def profile_lines(profile: ProfileSummary, what: str) -> list[str]:
    return [
        f"### Profile ({what})",
        "",
        f"{num(profile.total_seconds, 2)} s profiled (the profiler slows the code down). "
        "Only the event loop's thread is seen: SQLite itself runs in aiosqlite's thread, and "
        "shows here as the loop waiting for it and handing work to it.",
        "",
        "Time by library (time spent in the functions themselves):",
        "",
        *table(("Where", "Share"), [(area, f"{share:.0%}") for area, share in profile.by_area]),
        "Top functions by their own time:",
        "",
        *table(
            ("Function", "Own time", "Share", "Calls"),
            [
                (f"`{row.where}`", f"{row.seconds:.3f} s", f"{row.share:.1%}", f"{row.calls:,}")
                for row in profile.top_self
            ],
        ),
        "Our functions by the time spent under them (coroutines are counted on every resume, "
        "so nested ones overlap and shares do not add up):",
        "",
        *table(
            ("Function", "Time under it", "Share", "Calls / resumes"),
            [
                (f"`{row.where}`", f"{row.seconds:.3f} s", f"{row.share:.1%}", f"{row.calls:,}")
                for row in profile.ours_cumulative
            ],
        ),
    ]


# --- 2. polling ----------------------------------------------------------------------------------
def rps(value: float) -> str:
    return "none" if value >= 1e5 else num(value)


def polling_section(polling: PollingResult) -> list[str]:
    rows = []
    for row in polling.rows:
        rows.append(
            (
                f"{row.orders:,}",
                row.method,
                rps(row.max_rps),
                "1% changed" if row.mix == QUIET else "11% changed",
                f"{row.panel_calls:,} ({'✓' if row.panel_calls == row.expected_calls else '✗'})",
                row.repeats,
                f"**{num(row.wall, 2)}** ({runs(row.wall_runs, 2)})",
                f"**{num(row.cpu_per_order_us)}**",
                num(row.panel_cpu_per_order_us),
            )
        )
    lines = [
        "## 2. Polling",
        "",
        "One `Poller.poll_once()` cycle over N placed, open orders, all due, in SQLite (bulk "
        "inserted; 1,000 customers), against the sandbox panel on loopback in a **subprocess**: "
        "`time.process_time()` of the benchmark process is the bot's own CPU (its SQLite thread "
        "included), and the panel's CPU is read from its process. The panel holds every order "
        "with a fixed answer (created directly: the sandbox's `add` and every request walk all "
        "running orders, O(N) each, which 100,000 orders make unusable). In the **11% changed** "
        "mix, 1% of the orders completed (status stored, one outbox notice each), 10% moved on "
        "(remains stored) and 89% are unchanged since the last poll; in the **1% changed** mix "
        "only the completions change. The database is reset to the same state before each run. "
        "Rate limit: `PanelClient(max_rps=…)`, 1000 for our batched cycles (the default "
        "PANEL_MAX_RPS is 5; one row shows it), none for the side-by-side comparison.",
        "",
        *table(
            (
                "Orders",
                "How",
                "max_rps",
                "Mix",
                "Panel calls (= expected)",
                "Runs",
                "Cycle wall s (runs)",
                "Our CPU µs/order",
                "Panel CPU µs/order",
            ),
            rows,
        ),
    ]
    pairs = polling.baseline_pairs()
    if pairs:
        lines += [
            "Batched against one `status` call per order (`for o in orders: await "
            "client.status(o)` plus the same database writes: the same `Poller` with a panel "
            "whose `statuses()` makes one call per id), both without a rate limit, side by side:",
            "",
            *table(
                (
                    "Orders",
                    "Calls",
                    "Wall: one per order / batched",
                    "Our CPU: one per order / batched",
                ),
                [
                    (
                        f"{ours.orders:,}",
                        f"{baseline.panel_calls:,} vs {ours.panel_calls:,}",
                        f"**{num(baseline.wall / ours.wall, 1)}×** "
                        f"({num(baseline.wall, 2)} s vs {num(ours.wall, 2)} s)",
                        f"**{num(baseline.cpu_per_order_us / ours.cpu_per_order_us, 1)}×** "
                        f"({num(baseline.cpu_per_order_us)} vs {num(ours.cpu_per_order_us)} µs)",
                    )
                    for ours, baseline in pairs
                ],
            ),
        ]
    busy = {row.orders: row for row in batched_rows(polling)}
    quiet = batched_rows(polling, QUIET)
    limits = [
        f"Targets (⌈N/100⌉ panel calls per cycle; our CPU under {num(POLL_CPU_TARGET_US)} µs "
        f"per order polled): {polling_verdict(polling)}."
    ]
    if quiet and quiet[0].orders in busy:
        same = busy[quiet[0].orders]
        moved = 0.10 * same.orders
        per_moved = (same.cpu_per_order_us - quiet[0].cpu_per_order_us) * same.orders / moved
        text = (
            f"At {same.orders:,} orders the 10% that moved on cost "
            f"{num(same.cpu_per_order_us - quiet[0].cpu_per_order_us)} µs per polled order: "
            f"about {num(per_moved)} µs each"
        )
        if per_moved > 200:
            text += (
                ", because each order whose status changed is announced on its own: its "
                "customer and refund read, its notices enqueued in the outbox"
            )
        limits.append(text + ".")
    if polling.profile is not None:
        limits.append("The profile below shows where the rest goes.")
    lines += [" ".join(limits), ""]
    if polling.profile is not None:
        lines += profile_lines(
            polling.profile, f"one more batched cycle of {polling.profile_orders:,} orders"
        )
    return lines


# --- 3. delivery ---------------------------------------------------------------------------------
def delivery_section(delivery: DeliveryResult) -> list[str]:
    limits = delivery.limits
    causes = ", ".join(f"{cause} {n}" for cause, n in delivery.too_many_causes.most_common())
    bounds = "; ".join(f"{name} {num(seconds, 1)} s" for name, seconds in delivery.bounds.items())
    runs_note = (
        "one run at full size (a run takes about the ideal time)"
        if delivery.repeats == 1
        else f"{delivery.repeats} runs"
    )
    return [
        "## 3. Delivery",
        "",
        f"{delivery.private_chats * delivery.per_chat:,} notifications to "
        f"{delivery.private_chats:,} private chats ({delivery.per_chat} each) and "
        f"{delivery.groups * delivery.per_group:,} to {delivery.groups} groups "
        f"({delivery.per_group} each), enqueued in one transaction with `storage.outbox.enqueue`"
        ", then drained by the real `OutboxSender.run_forever()` with a real `aiogram.Bot` over "
        "HTTP against the Telegram emulator, which enforces "
        f"{num(limits.global_per_second)} messages/s overall, {num(limits.per_chat_per_second)}"
        f"/s per chat and {num(limits.per_group_per_minute)}/min per group (sliding windows) "
        f"and answers 429 with `retry_after` beyond them. The sender uses the same limits. "
        f"{runs_note.capitalize()}.",
        "",
        f"Ideal time = the largest of what each limit alone needs: {bounds} (overall: every "
        "message at the overall rate; per chat: the busiest chat's messages at the per-chat rate, "
        "a group being a chat too; per group: each group's messages at the per-minute rate).",
        "",
        *table(
            ("", "Result", f"Runs ({delivery.repeats})"),
            [
                (
                    "Drain time",
                    f"**{num(delivery.drain, 1)} s** ({delivery.over_ideal:+.1%} over the ideal "
                    f"{num(delivery.ideal, 1)} s)",
                    runs(delivery.drain_runs, 1),
                ),
                (
                    "429s received",
                    f"**{max(delivery.too_many_runs):,}**",
                    runs(delivery.too_many_runs),
                ),
                ("…judged from the send times", causes or "–", ""),
                (
                    "Most sendMessage calls started within one second",
                    f"{delivery.peak_sends_per_second} (limit {num(limits.global_per_second)})",
                    "",
                ),
                ("Messages lost", f"**{max(delivery.lost_runs)}**", runs(delivery.lost_runs)),
                (
                    "Messages delivered twice",
                    f"{max(delivery.duplicate_runs)}",
                    runs(delivery.duplicate_runs),
                ),
            ],
        ),
        f"Targets: {delivery_verdict(delivery)}.",
        "",
        delivery_limits_text(delivery),
        "",
    ]


def delivery_limits_text(delivery: DeliveryResult) -> str:
    largest = max(delivery.bounds, key=lambda name: delivery.bounds[name])
    text = [
        f"**What limits it.** The ideal is set by the {largest} limit; the drain took "
        f"{num(delivery.drain - delivery.ideal, 1)} s more than that."
    ]
    too_many = max(delivery.too_many_runs)
    overall = delivery.too_many_causes.get("overall", 0)
    if too_many > HANDFUL and overall >= sum(delivery.too_many_causes.values()) / 2:
        text.append(
            "Most 429s come from the overall window: the sender's global limiter is an "
            "`aiolimiter` leaky bucket whose capacity is the whole rate, so after a pause it "
            "lets up to a full second's worth through at once on top of the steady rate (see "
            "the peak above), while Telegram (and the emulator) count any sliding second; and "
            "each 429 pauses every send for its `retry_after`."
        )
    elif too_many:
        text.append("The 429s are split between the limits as shown above.")
    text.append(
        "Nothing is lost either way: a row leaves the outbox only once Telegram accepted it."
    )
    return " ".join(text)


# --- 4. catalog ----------------------------------------------------------------------------------
def catalog_section(catalog: CatalogResult) -> list[str]:
    return [
        "## 4. Catalog",
        "",
        f"A {catalog.n_services:,}-service `services` answer (`generate_catalog("
        f"{catalog.n_services})`: {catalog.answer_bytes / 1024:,.0f} KiB of JSON, "
        f"{catalog.categories} categories). Pages are rendered inside an i18n context as in an "
        "update, with the default page size of 8; the services page is page 2 of the largest "
        f"category; the search finds {catalog.search_hits} services. Median of many iterations "
        "each:",
        "",
        *table(
            ("Operation", "µs", "Iterations"),
            [
                (name, f"**{num(us)}**", f"{catalog.iterations[name]:,}")
                for name, us in catalog.micros.items()
            ],
        ),
        "No target was set. Parsing and indexing happen once per refresh (CATALOG_TTL, 10 "
        "minutes by default) in the background; a page costs a fraction of a millisecond, small "
        "next to the database work of the update that shows it (section 1).",
        "",
    ]


# --- 5. memory -----------------------------------------------------------------------------------
def memory_section(memory: MemoryResult) -> list[str]:
    return [
        "## 5. Memory",
        "",
        "The bot in a subprocess: it builds what `python -m bot` builds (services with "
        "migrations, the dispatcher, the bot), loads the "
        f"{memory.services_loaded:,}-service catalog from the panel (another subprocess), and "
        f"runs one poll cycle over the {memory.orders_polled:,} orders in its database. The "
        "peak is the kernel's VmHWM for the process: `getrusage().ru_maxrss` is not used because "
        "on Linux a child's ru_maxrss starts from the RSS its parent had when it forked (here "
        f"it read {mib(memory.ru_maxrss_kib)}, the benchmark's own size), not from its own.",
        "",
        *table(
            ("Process", "RSS"),
            [
                ("bare `python` (reading /proc)", mib(memory.python_kib)),
                ("`python -c 'import aiogram'`", mib(memory.aiogram_kib)),
                *[(f"bot: {stage}", mib(kib)) for stage, kib in memory.stages.items()],
                ("**bot: peak**", f"**{mib(memory.peak_kib)}**"),
            ],
        ),
        f"The bot's peak is {mib(memory.over_aiogram_kib)} over a process that only imported "
        "aiogram"
        + (
            ", whose type models are most of the footprint"
            if memory.aiogram_kib > memory.peak_kib / 2
            else ""
        )
        + ". The catalog adds "
        f"{mib(catalog_growth(memory))}; the poll cycle leases 500 orders at a time, so "
        f"{memory.n_orders:,} orders in the database cost the process little.",
        "",
    ]


def catalog_growth(memory: MemoryResult) -> int:
    stages = memory.stages
    return stages.get("catalog loaded", 0) - stages.get("services and dispatcher built", 0)


# --- 6. several instances ------------------------------------------------------------------------
def instances_verdict(result: InstancesResult) -> str:
    shared = result.run(3)
    if shared is None:
        return f"skipped ({result.skipped})"
    return "; ".join(
        (
            verdict(shared.too_many == 0 and not shared.timed_out, f"{shared.too_many} 429s"),
            verdict(shared.lost == 0, f"{shared.lost} lost"),
        )
    )


def instances_section(result: InstancesResult) -> list[str]:
    limits, workload = result.limits, result.workload
    ideal = result.messages / limits.global_per_second
    lines = [
        "## 6. Delivery by several instances",
        "",
        f"{workload.private_chats * workload.per_chat:,} notifications to "
        f"{workload.private_chats:,} private chats ({workload.per_chat} each) and "
        f"{workload.groups * workload.per_group:,} to {workload.groups} groups "
        f"({workload.per_group} each) in one SQLite outbox, drained by 1 or 3 real "
        "`OutboxSender.run_forever()` instances, each with its own owner id, database engine, "
        "`aiogram.Bot` (one token) and Redis client, against the Telegram emulator enforcing "
        f"{num(limits.global_per_second)} messages/s overall, "
        f"{num(limits.per_chat_per_second)}/s per chat and "
        f"{num(limits.per_group_per_minute)}/min per group (sliding windows). With limits "
        "shared, the overall and per-group limits go through Redis (`bot.limits.RedisLimiter`, "
        "`TEST_REDIS_URL`); with their own, each instance keeps the whole limit for itself, as "
        "every instance did before. One run of each; the overall limit alone needs "
        f"{num(ideal, 1)} s.",
        "",
    ]
    if result.skipped:
        lines += [f"The shared runs were skipped ({result.skipped}).", ""]
    lines += table(
        (
            "Run",
            "Messages/s",
            "Drain time",
            "429s",
            "Most sends started in one second",
            "Sent by each instance",
            "Lost",
            "Twice",
        ),
        (
            (
                run.label,
                f"**{num(run.per_second(result.messages), 1)}**",
                f"{num(run.seconds, 1)} s" + (" (timed out)" if run.timed_out else ""),
                f"**{run.too_many:,}**",
                f"{run.peak_per_second} (limit {num(limits.global_per_second)})",
                ", ".join(f"{sent:,}" for sent in run.sent_by),
                run.lost,
                run.duplicated,
            )
            for run in result.runs
        ),
    )
    lines += [f"Targets: {instances_verdict(result)}.", "", instances_text(result), ""]
    return lines


def instances_text(result: InstancesResult) -> str:
    text = ["**What it shows.**"]
    if result.run(1) is not None:
        text.append(
            "Shared limits are one allowance, not a split: one instance alone drains at the "
            "whole rate, three take turns (each sends what it claimed), and together they stay "
            "within Telegram's windows."
        )
    own = result.run(3, shared=False)
    if own is not None and own.too_many:
        text.append(
            f"With limits of their own, three instances start up to "
            f"{own.peak_per_second} sends in one second and get {plural(own.too_many, '429')}; "
            "each 429 pauses that instance for its `retry_after`, so they are not faster either."
        )
    text.append("Nothing is lost either way: a row leaves the outbox only once Telegram took it.")
    return " ".join(text)
