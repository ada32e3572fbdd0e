"""`python -m bench`: run every benchmark at full size and rewrite bench/RESULTS.md.

`--quick` runs tiny sizes in seconds (to check that everything runs) and `--only` a few of the
benchmarks; both print the report instead of overwriting RESULTS.md unless `--output` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from bench.report import render
from bench.suite import BENCHMARKS, FULL, QUICK, run_suite

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: seconds, not minutes")
    parser.add_argument(
        "--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS), metavar="NAME",
        help=f"run only these: {', '.join(BENCHMARKS)}",
    )  # fmt: skip
    parser.add_argument("--output", type=Path, help="where to write the report")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # One warning per 429 would drown the progress lines; the benchmark counts them instead.
    logging.getLogger("bot.outbox").setLevel(logging.ERROR)

    partial = args.quick or set(args.only) != set(BENCHMARKS)
    output = args.output or (None if partial else RESULTS)
    sizes = QUICK if args.quick else FULL
    results = asyncio.run(run_suite(sizes, args.only, say=lambda text: print(text, flush=True)))
    report = render(results)
    if output is None:
        sys.stdout.write(report)
    else:
        output.write_text(report, encoding="utf-8")
        print(f"Wrote {output} ({results.total_seconds / 60:.1f} minutes)")
    if results.failures:
        sys.exit(f"{len(results.failures)} benchmark(s) failed: {', '.join(results.failures)}")


if __name__ == "__main__":
    main()
