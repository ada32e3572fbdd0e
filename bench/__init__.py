"""Benchmarks of the bot: `python -m bench` (or `make bench`) runs them and rewrites RESULTS.md.

Each benchmark is a function taking its sizes and returning a result dataclass, so the smoke
test (tests/test_bench_smoke.py) can run it with tiny sizes and keep it from rotting.
"""
