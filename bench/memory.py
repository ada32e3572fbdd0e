"""Memory: peak RSS of the bot process with a big catalog loaded and many orders polled.

The bot runs in a subprocess (bench/memory_probe.py) so nothing of the benchmark itself is
counted; the panel runs in another (bench/panel_process.py). Baselines: a bare `python` and a
`python -c "import aiogram"`. Peaks are VmHWM (see bench/memory_probe.py for why not ru_maxrss).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench.codebase import CODE_ENV
from bench.memory_probe import PEAK
from bench.panel_process import ROOT, start_panel_process
from bench.polling import create_order_database


@dataclass
class MemoryResult:
    n_services: int
    n_orders: int
    peak_kib: int
    python_kib: int  # a bare interpreter (that imported the few lines reading /proc)
    aiogram_kib: int  # an interpreter that imported aiogram
    ru_maxrss_kib: int  # what getrusage says, inflated by the parent's RSS at fork (see probe)
    stages: dict[str, int] = field(default_factory=dict)  # RSS after each stage, KiB
    services_loaded: int = 0
    orders_polled: int = 0

    @property
    def over_aiogram_kib(self) -> int:
        return self.peak_kib - self.aiogram_kib


async def _run(*arguments: str) -> str:
    completed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, *arguments],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{arguments[:2]} failed: {completed.stderr[-2000:]}")
    return completed.stdout.strip().splitlines()[-1]


async def _nothing() -> str:
    return "0"


def _check_code(imported: dict[str, str]) -> None:
    """The probe ran the codebase this process measures (BENCH_CODE, or this checkout)."""
    expected = str(Path(os.environ.get(CODE_ENV) or ROOT).resolve())
    wrong = {name: where for name, where in imported.items() if where != expected}
    if wrong or "bot" not in imported:
        raise RuntimeError(f"the memory probe ran other code than {expected}: {imported}")


async def bench_memory(n_services: int, n_orders: int, *, baselines: bool = True) -> MemoryResult:
    """The bot's peak RSS; with `baselines`, also a bare interpreter's and aiogram's alone."""
    folder = tempfile.TemporaryDirectory(prefix="smm-bench-memory-")
    database_url = f"sqlite+aiosqlite:///{Path(folder.name) / 'bot.db'}"
    # The baselines, the panel and the database are independent: prepare them side by side.
    python_out, aiogram_out, panel, _ = await asyncio.gather(
        _run("-c", PEAK) if baselines else _nothing(),
        _run("-c", "import aiogram; " + PEAK) if baselines else _nothing(),
        start_panel_process(n_services, n_orders),
        create_order_database(database_url, n_orders),
    )
    try:
        report = json.loads(
            await _run(
                "-m",
                "bench.memory_probe",
                "--panel-url",
                panel.url,
                "--key",
                panel.key,
                "--database-url",
                database_url,
            )
        )
    finally:
        panel.stop()
        folder.cleanup()
    _check_code(report.get("code", {}))
    return MemoryResult(
        n_services=n_services,
        n_orders=n_orders,
        peak_kib=int(report["peak_kib"]),
        python_kib=int(python_out),
        aiogram_kib=int(aiogram_out),
        ru_maxrss_kib=int(report["ru_maxrss_kib"]),
        stages={name: int(kib) for name, kib in report["stages"].items()},
        services_loaded=int(report["services"]),
        orders_polled=int(report["orders_polled"]),
    )
