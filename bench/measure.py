"""Small measuring tools shared by the benchmarks: medians and a CPU + wall clock."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Clock:
    """Wall and process CPU time since `start()` (CPU covers every thread of this process)."""

    wall_started: float = 0.0
    cpu_started: float = 0.0

    def start(self) -> Clock:
        self.wall_started = time.perf_counter()
        self.cpu_started = time.process_time()
        return self

    @property
    def wall(self) -> float:
        return time.perf_counter() - self.wall_started

    @property
    def cpu(self) -> float:
        return time.process_time() - self.cpu_started
