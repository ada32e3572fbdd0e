"""The whole benchmark run: every job in a child process of its own (bench/child.py), the
table's rows on both codebases, round after round, before and after alternating."""

from __future__ import annotations

import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.codebase import AFTER, BEFORE, ROOT, Codebase, baseline, current
from bench.jobs import JOB, JOBS, Job, Outcome, Skipped
from bench.machine import Machine, describe_machine
from bench.sizes import FULL, QUICK, Sizes

BENCHMARKS = tuple(dict.fromkeys(job.benchmark for job in JOBS))
CHILD_TIMEOUT = 15 * 60  # seconds: a child that hangs fails its job, not the whole run
Say = Callable[[str], Any]

__all__ = ["BENCHMARKS", "FULL", "QUICK", "Results", "Sizes", "run_suite"]


@dataclass
class Results:
    machine: Machine
    sizes: Sizes
    codebases: dict[str, Codebase] = field(default_factory=dict)  # side → its code
    # job → side → one outcome per round (table rows); after-only jobs have AFTER alone.
    outcomes: dict[str, dict[str, list[Outcome]]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # job → wall time, every child
    failures: dict[str, str] = field(default_factory=dict)  # "job (side, round)" → error
    wall_seconds: float = 0.0  # the whole run, the baseline's worktree included

    @property
    def total_seconds(self) -> float:
        return self.wall_seconds or sum(self.seconds.values())

    def results(self, job: str, side: str = AFTER) -> list[Any]:
        """The job's results on one side, round by round (skipped ones left out)."""
        found = self.outcomes.get(job, {}).get(side, [])
        return [o.result for o in found if not isinstance(o.result, Skipped)]

    def skipped(self, job: str) -> str | None:
        for outcomes in self.outcomes.get(job, {}).values():
            for outcome in outcomes:
                reason = getattr(outcome.result, "skipped", None)  # BurstResult, SweepResult…
                if isinstance(outcome.result, Skipped):
                    reason = outcome.result.reason
                if isinstance(reason, str):
                    return reason
        return None

    def loops(self, side: str) -> set[str]:
        """The event loops the bot ran on in this process (the cluster's bots choose their
        own; their harness runs on uvloop)."""
        return {
            o.loop
            for job, by_side in self.outcomes.items()
            if JOB[job].in_process
            for o in by_side.get(side, [])
        }


def run_child(codebase: Codebase, job: Job, round_: int, quick: bool) -> Outcome:
    """`python -m bench.child` for one job on one codebase; its outcome, checked."""
    with tempfile.TemporaryDirectory(prefix="smm-bench-child-") as folder:
        out = Path(folder) / "outcome.pickle"
        command = [sys.executable, "-m", "bench.child", "--job", job.name]
        command += ["--round", str(round_), "--sizes", "quick" if quick else "full"]
        command += ["--out", str(out)]
        done = subprocess.run(
            command, cwd=ROOT, env=codebase.env(), timeout=CHILD_TIMEOUT, check=False
        )
        if done.returncode != 0 or not out.exists():
            raise RuntimeError(f"the child exited with {done.returncode} (its stderr is above)")
        outcome: Outcome = pickle.loads(out.read_bytes())
    _check_code(codebase, outcome)
    return outcome


def _check_code(codebase: Codebase, outcome: Outcome) -> None:
    """The child imported the codebase it was meant to, and so did the bots it started."""
    expected = str(codebase.path.resolve())
    wrong = {name: where for name, where in outcome.imported.items() if where != expected}
    runs = [outcome.result.run] if hasattr(outcome.result, "run") else []
    runs += [*getattr(outcome.result, "loads", []), getattr(outcome.result, "three", None)]
    for run in filter(None, runs):
        for index, where in enumerate(getattr(run, "bot_code", ())):
            if where != expected:
                wrong[f"bot process {index}"] = where
    if wrong:
        raise RuntimeError(f"measured the wrong code, expected {expected}: {wrong}")


def _run(
    results: Results, codebase: Codebase, job: Job, round_: int, quick: bool, say: Say
) -> None:
    label = f"{job.name} ({codebase.side} {codebase.commit}, round {round_ + 1})"
    say(f"{label}…")
    started = time.perf_counter()
    try:
        outcome = run_child(codebase, job, round_, quick)
    except Exception as error:
        results.failures[label] = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        say(f"{label}: FAILED ({results.failures[label]})")
        return
    finally:
        seconds = time.perf_counter() - started
        results.seconds[job.name] = results.seconds.get(job.name, 0.0) + seconds
    results.outcomes.setdefault(job.name, {}).setdefault(codebase.side, []).append(outcome)
    say(f"{label}: {seconds:.0f} s")


def run_suite(
    sizes: Sizes,
    only: Collection[str] = BENCHMARKS,
    *,
    quick: bool = False,
    before: Path | None = None,
    with_baseline: bool = True,
    jobs: Collection[str] | None = None,
    say: Say = print,
) -> Results:
    """Every selected job: a table row on both codebases (`sizes.rounds` rounds, the side
    that goes first alternating), the others on this checkout only. `before` measures another
    root as the "before" side instead of BASELINE's worktree; `jobs` narrows `only` to those
    jobs (the smoke test uses both)."""
    started = time.perf_counter()
    results = Results(machine=describe_machine(), sizes=sizes)
    after = current()
    results.codebases[AFTER] = after
    if with_baseline:
        results.codebases[BEFORE] = (
            Codebase(BEFORE, before, "(given)") if before is not None else baseline(say)
        )
    for job in JOBS:
        if job.benchmark not in only or (jobs is not None and job.name not in jobs):
            continue
        if not job.table:
            _run(results, after, job, 0, quick, say)
            continue
        for round_ in range(sizes.rounds):
            sides = [results.codebases[s] for s in (BEFORE, AFTER) if s in results.codebases]
            for codebase in sides if round_ % 2 == 0 else sides[::-1]:
                _run(results, codebase, job, round_, quick, say)
    results.wall_seconds = time.perf_counter() - started
    return results
