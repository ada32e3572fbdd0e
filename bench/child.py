"""One benchmark on one codebase: the process `python -m bench` starts for every measurement.

Run as ``python -m bench.child --job NAME --round N --sizes full --out FILE`` with BENCH_CODE
set to the codebase's root (bench/codebase.py): `bench/__init__.py` has put that root first on
sys.path before anything below imports the bot, so this checkout's harness measures that
codebase's `bot`, `handlers`, `storage`, `playground`, `tests` and `migrations`. The processes
a benchmark starts inherit BENCH_CODE (the memory probe, the panel process) or run in the
codebase's root with its PYTHONPATH (tests/cluster.py's `python -m bot run`), so they run the
same code. The result is pickled to FILE with where each package was imported from, which the
parent checks.

**The seams the harness depends on**, in the baseline and in every later codebase alike (keep
them stable, or change the harness with them):

- `bot.config.Settings`: the fields `bot_token`, `panel_api_url`, `panel_api_key`,
  `database_url`, `fsm_storage`, `redis_url`, `open_to_all`, `panel_max_rps`,
  `telegram_api_url`, `outbox_global_per_second`, `outbox_chat_interval`,
  `outbox_group_per_minute`, `_env_file=None`; for the sizing (bench/sizing.py, read when
  present): `update_concurrency`, `database_pool_size`, `shared_redis_pool_size`, a panel
  concurrency field if one appears (`panel_concurrency`), `panel_max_rps`.
- `bot.app`: `create_services(settings)` (migrating), `create_dispatcher(services)`,
  `create_bot(settings)`; `Services.close()`, `.catalog.get()`, `.ordering.currency()`,
  `.engine` (SQLAlchemy events count the SQL), `.sessions`, `.settings`, `.panel`, `.i18n`.
- `bot.panel.client.PanelClient(url, key, max_rps=…)` with `status`, `close` and its
  `max_concurrency` default; `bot.panel.models.Service`, `OrderStatus`, `OrderStatusResult`.
- `bot.poller.Poller(settings=, sessions=, panel=, i18n=)` and `poll_once()` returning a report
  with `orders_polled`, `panel_failed`, `changes`, `messages`; `bot.i18n.create_i18n`.
- `bot.outbox.OutboxSender`, `bot.limits.TelegramLimits.create`, `storage.outbox.enqueue` and
  `queue_length`; `storage.db.create_engine`, `create_session_factory`;
  `migrations.upgrade_database`.
- `storage.models.Chat`, `User`, `Order`, `OutboxMessage`, `SubmissionState` with the columns
  bench/updates.py and bench/polling.py insert.
- `handlers.callbacks.ServicePick`, `ServicesPage`; `handlers.flows.flow_number`;
  `bot.catalog.CatalogSnapshot` (`services`, `category_key`), `read_services`,
  `decode_json` and the page renderers bench/catalog.py calls.
- `playground.sandbox.SandboxPanel` (`from_catalog`, `start`, `stop`, `make_app`,
  `speed_up`, `request_log`, `_orders`, `SandboxOrder`), `generate_catalog`;
  `playground.telegram`: `TelegramEmulator`, `RateLimits`, `recording.recording_bot`,
  `recording.TOKEN`, `BOT_USER`, the chat user's `send(text, timeout=)`.
- `tests.cluster`: `Cluster(backends, workdir, instances=, telegram_limits=None)` with
  `start`, `stop`, `env(index)`, `bots[i].pid`, `emulator`, `engine`, `instances`;
  `Backends(database_url, maintenance_url, database_name, redis_url)`, `recreate_database`,
  `flush_redis`, `TELEGRAM_LIMITS`.
- The event loop: if the codebase defines `bot.loop.loop_factory()` (returning a loop
  factory for `asyncio.Runner`, or None for asyncio's own), the in-process benchmarks run on
  the loop it chooses, as the bot would; otherwise on asyncio's default loop.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.codebase import CODE_ENV, ROOT, check_imported_from
from bench.jobs import JOB, Outcome
from bench.sizes import FULL, QUICK


def loop_factory(in_process: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The codebase's loop for a bot running in this process; otherwise (the bot runs in
    processes of its own, this one only drives them) uvloop where installed, for either
    codebase alike, so the harness itself takes as little of the machine as it can."""
    if in_process:
        try:
            chosen = importlib.import_module("bot.loop")
        except ImportError:  # the baseline runs on asyncio's loop, as its bot did
            return None
        choose = getattr(chosen, "loop_factory", None)
        return choose() if callable(choose) else None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.child", description=__doc__)
    parser.add_argument("--job", required=True, choices=sorted(JOB))
    parser.add_argument("--round", type=int, default=0)
    parser.add_argument("--sizes", choices=("full", "quick"), default="full")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("bot.outbox").setLevel(logging.ERROR)  # 429s are counted, not logged
    job = JOB[args.job]
    sizes = QUICK if args.sizes == "quick" else FULL
    code = Path(os.environ.get(CODE_ENV) or ROOT)
    started = time.perf_counter()

    async def measure() -> tuple[Any, str]:
        result = await job.run(sizes, args.round)
        return result, type(asyncio.get_running_loop()).__module__

    with asyncio.Runner(loop_factory=loop_factory(job.in_process)) as runner:
        result, loop = runner.run(measure())
    outcome = Outcome(
        job=job.name,
        round=args.round,
        result=result,
        imported=check_imported_from(code),
        loop=loop,
        seconds=time.perf_counter() - started,
    )
    args.out.write_bytes(pickle.dumps(outcome))


if __name__ == "__main__":
    main()
