"""The sandbox panel in a process of its own, holding many open orders, for the benchmarks.

In a separate process, the benchmark's `time.process_time()` is the bot's CPU alone, and the
panel's own CPU is read from `GET /bench/stats`. Run: ``python -m bench.panel_process --orders N``;
it prints one JSON line with its URL and key, then serves until stdin closes or SIGTERM.

The orders are created directly, not through `add`: `SandboxPanel.handle()` first brings every
running order up to date (`_settle`), so N adds cost O(N²), and every later request O(N). Here the
orders exist with a fixed answer each (see `panel_answer`) and none is "running", so a `status`
call costs the same with 100 or 100,000 orders.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import aiohttp
from aiohttp import web

from bot.panel.models import OrderStatus
from playground.sandbox import SandboxOrder, SandboxPanel, generate_catalog

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "bench-key"
FIRST_ORDER_ID = 1
QUANTITY = 1000
CHARGE = Decimal("0.90000")
PROGRESS = 100  # how far a moving order got since the last poll

# What a poll finds, by panel order id: 1 in 100 orders completed (announced), 1 in 10 moved
# on (remains stored, nothing announced), the rest unchanged since the last poll.
COMPLETED_EVERY = 100
MOVED_EVERY = 10


def start_count(order_id: int) -> int:
    return order_id * 7919 % 20000


def panel_answer(order_id: int) -> tuple[str, int]:
    """(status, remains) the panel reports for this order."""
    if order_id % COMPLETED_EVERY == 0:
        return str(OrderStatus.COMPLETED), 0
    if order_id % MOVED_EVERY == MOVED_EVERY // 2:
        return str(OrderStatus.IN_PROGRESS), QUANTITY - PROGRESS
    return str(OrderStatus.IN_PROGRESS), QUANTITY


def stored_state() -> tuple[str, int]:
    """(status, remains) the bot has stored for every order before the cycle."""
    return str(OrderStatus.IN_PROGRESS), QUANTITY


def build_sandbox(n_services: int, n_orders: int) -> SandboxPanel:
    sandbox = SandboxPanel.from_catalog(
        generate_catalog(n_services), api_key=API_KEY, partial_every=0, reject_every=0
    )
    sandbox.speed_up(0)
    services = list(sandbox.services.values())
    now = sandbox.now()
    orders = sandbox._orders  # the fast path described in the module docstring
    for order_id in range(FIRST_ORDER_ID, FIRST_ORDER_ID + n_orders):
        status, remains = panel_answer(order_id)
        orders[order_id] = SandboxOrder(
            id=order_id,
            service=services[order_id % len(services)],
            fields={"link": f"https://instagram.com/p/{order_id}", "quantity": str(QUANTITY)},
            quantity=QUANTITY,
            runs=1,
            charge=CHARGE,
            created_at=now,
            partial_remains=0,
            status=status,
            start_count=start_count(order_id),
            remains=remains,
        )
    return sandbox


def make_app(sandbox: SandboxPanel) -> web.Application:
    app = sandbox.make_app()

    async def stats(_request: web.Request) -> web.Response:
        actions = Counter(request.action for request in sandbox.request_log)
        return web.json_response(
            {"cpu": time.process_time(), "requests": len(sandbox.request_log), **actions}
        )

    app.router.add_get("/bench/stats", stats)
    return app


async def serve(n_services: int, n_orders: int, stdin: IO[str] | None) -> None:
    sandbox = build_sandbox(n_services, n_orders)
    runner = web.AppRunner(make_app(sandbox), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    url = f"http://127.0.0.1:{port}/api/v2"
    print(json.dumps({"url": url, "key": API_KEY, "orders": n_orders}), flush=True)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGTERM, stopped.set)
    if stdin is not None:  # the parent going away closes our stdin: stop with it

        def on_input() -> None:
            if not stdin.readline():
                stopped.set()

        loop.add_reader(stdin.fileno(), on_input)
    try:
        await stopped.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=5000)
    parser.add_argument("--orders", type=int, default=0)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.services, args.orders, sys.stdin))


# --- the parent's side ---------------------------------------------------------------------------
@dataclass
class PanelProcess:
    """A running panel process: its API URL and key, and its own counters."""

    process: subprocess.Popen[str]
    url: str
    key: str

    @property
    def stats_url(self) -> str:
        return self.url.removesuffix("/api/v2") + "/bench/stats"

    async def stats(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as session, session.get(self.stats_url) as response:
            data: dict[str, Any] = await response.json()
            return data

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


async def start_panel_process(n_services: int, n_orders: int) -> PanelProcess:
    command = [
        sys.executable,
        "-m",
        "bench.panel_process",
        "--services",
        str(n_services),
        "--orders",
        str(n_orders),
    ]
    # Started in a thread: building 100,000 orders takes the child a few seconds.
    process = await asyncio.to_thread(
        subprocess.Popen,
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
        cwd=ROOT,
    )
    assert process.stdout is not None
    line = await asyncio.to_thread(process.stdout.readline)
    if not line:
        process.wait()
        raise RuntimeError(f"the panel process exited with {process.returncode}")
    hello = json.loads(line)
    return PanelProcess(process, hello["url"], hello["key"])


if __name__ == "__main__":
    main()
