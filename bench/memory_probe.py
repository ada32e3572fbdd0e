"""The bot process whose memory `bench.memory` measures: run as a subprocess, prints JSON.

It builds what `python -m bot` builds (services with migrations, the dispatcher, the bot), loads
the catalog from the panel, runs one poll cycle over every order in the database, and reports
its peak RSS and its RSS after each stage.

The peak is /proc's VmHWM, not `getrusage().ru_maxrss`: on Linux a child's ru_maxrss starts at
the RSS its parent had when it forked (kept across exec), so it would count the benchmark's own
memory; VmHWM belongs to this process's address space alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _status_kib(field: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kib() -> int:
    """The current resident set size (0 where there is no /proc)."""
    return _status_kib("VmRSS")


def peak_kib() -> int:
    """The peak resident set size; ru_maxrss (KiB on Linux) where there is no /proc."""
    return _status_kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def probe(panel_url: str, key: str, database_url: str) -> dict[str, Any]:
    stages: dict[str, int] = {"started": rss_kib()}
    from bot.app import create_bot, create_dispatcher, create_services
    from bot.config import Settings
    from bot.poller import Poller

    stages["imported the bot"] = rss_kib()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        bot_token="123456:BENCH-token",
        panel_api_url=panel_url,
        panel_api_key=key,
        database_url=database_url,
        panel_max_rps=1000,
    )
    services = await create_services(settings)
    bot = create_bot(settings)
    create_dispatcher(services)
    stages["services and dispatcher built"] = rss_kib()
    snapshot = await services.catalog.get()
    stages["catalog loaded"] = rss_kib()
    poller = Poller(
        settings=settings, sessions=services.sessions, panel=services.panel, i18n=services.i18n
    )
    report = await poller.poll_once()
    stages["poll cycle done"] = rss_kib()
    await services.close()
    await bot.session.close()
    from bench.codebase import imported_from

    return {
        "code": imported_from(),  # where bot, storage… came from (the parent checks)
        # The kernel updates VmHWM lazily; a later VmRSS reading can be a little higher.
        "peak_kib": max(peak_kib(), *stages.values()),
        "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "stages": stages,
        "services": len(snapshot.services),
        "orders_polled": report.orders_polled,
    }


PEAK = "from bench.memory_probe import peak_kib; print(peak_kib())"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--panel-url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--database-url", required=True)
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(probe(args.panel_url, args.key, args.database_url))))


if __name__ == "__main__":
    main()
