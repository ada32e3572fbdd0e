"""The event loop the bot runs on (uvloop where the platform has it, else asyncio's own), and
the collector's view of what start-up made.

uvloop runs the same coroutines with less overhead per task switch and per socket event, which
every update pays several times (aiogram, aiohttp, the database driver); aiogram and aiohttp
support it. Without it (Windows, PyPy) the bot runs on asyncio's loop unchanged.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, or None (asyncio's default) where uvloop is not installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - installed on every platform that has it
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the bot's event loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)


def settle_start_up_objects() -> None:
    """Move everything alive once the bot has started (its modules, the catalog, the pools)
    out of the collector's reach: a full collection walked those ~270,000 objects each time,
    100 ms or more during which no update is answered. Garbage made later is collected as
    before; what start-up left behind is collected first."""
    gc.collect()
    gc.freeze()
