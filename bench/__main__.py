"""`python -m bench`: every benchmark at full size, on this checkout and on the issue's starting
commit side by side, rewriting bench/RESULTS.md.

`--quick` runs tiny sizes in seconds (to check that everything runs) and `--only` a few of the
benchmarks; both print the report instead of overwriting RESULTS.md unless `--output` is given.
`--no-baseline` measures this checkout alone (the smoke test's way; `make bench` never uses it).
Every run keeps its figures in .bench/results.pickle; `--rerender` writes the report again from
them (after changing bench/report.py) without measuring anything.
"""

from __future__ import annotations

import argparse
import logging
import pickle
import sys
from dataclasses import replace
from pathlib import Path

from bench.codebase import ROOT
from bench.report import render
from bench.sizes import FULL, QUICK
from bench.suite import BENCHMARKS, Results, run_suite

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
KEPT = ROOT / ".bench" / "results.pickle"  # the last run's figures (git-ignored)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: seconds, not minutes")
    parser.add_argument(
        "--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS), metavar="NAME",
        help=f"run only these: {', '.join(BENCHMARKS)}",
    )  # fmt: skip
    parser.add_argument("--output", type=Path, help="where to write the report")
    parser.add_argument(
        "--no-baseline", action="store_true", help="measure this checkout only (no before)"
    )
    parser.add_argument(
        "--before", type=Path, help="measure this root as the before side instead of BASELINE"
    )
    parser.add_argument("--rounds", type=int, help="runs of each table row on each side")
    parser.add_argument(
        "--rerender", action="store_true", help=f"report the figures kept in {KEPT} again"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    partial = args.quick or args.no_baseline or set(args.only) != set(BENCHMARKS)
    output = args.output or (None if partial else RESULTS)
    sizes = QUICK if args.quick else FULL
    if args.rounds:
        sizes = replace(sizes, rounds=args.rounds)
    if args.rerender:
        kept = pickle.loads(KEPT.read_bytes())
        results: Results = kept["results"]
        partial = kept["partial"]
        output = args.output or (None if partial else RESULTS)
    else:
        results = run_suite(
            sizes,
            args.only,
            quick=args.quick,
            before=args.before,
            with_baseline=not args.no_baseline,
            say=lambda text: print(text, flush=True),
        )
        KEPT.parent.mkdir(exist_ok=True)
        KEPT.write_bytes(pickle.dumps({"results": results, "partial": partial}))
    report = render(results)
    if output is None:
        sys.stdout.write(report)
    else:
        output.write_text(report, encoding="utf-8")
        print(f"Wrote {output} ({results.total_seconds / 60:.1f} minutes)")
    if results.failures:
        sys.exit(f"{len(results.failures)} run(s) failed: {', '.join(results.failures)}")


if __name__ == "__main__":
    main()
