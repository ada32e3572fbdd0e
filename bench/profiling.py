"""cProfile summaries for RESULTS.md: time by library, the top functions, our own functions.

Only the event loop's thread is profiled: aiosqlite runs SQLite in a thread of its own, so its
work shows up here as the loop waiting (`select.epoll.poll`) and handing work over
(`SimpleQueue.put_nowait`), not as SQLite functions.
"""

from __future__ import annotations

import cProfile
import pstats
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

OUR_PACKAGES = ("/bot/", "/handlers/", "/storage/")
AREAS = (
    ("SQLAlchemy", ("/sqlalchemy/",)),
    ("waiting for / handing work to the SQLite thread", ("select.epoll", "SimpleQueue")),
    ("aiosqlite", ("/aiosqlite/",)),
    ("aiogram", ("/aiogram/",)),
    ("pydantic", ("/pydantic/", "pydantic_core")),
    ("asyncio", ("/asyncio/", "_asyncio", "selectors", "_contextvars")),
    ("greenlet (SQLAlchemy's async bridge)", ("greenlet",)),
    ("aiohttp + sockets", ("/aiohttp/", "/yarl/", "/multidict/", "_socket")),
    ("our code (bot/, handlers/, storage/)", OUR_PACKAGES),
)
OTHER = "other (stdlib: json, re, logging, typing…)"


@dataclass(frozen=True)
class ProfileRow:
    where: str
    seconds: float
    share: float  # of the profiled time
    calls: int


@dataclass
class ProfileSummary:
    total_seconds: float = 0.0
    by_area: list[tuple[str, float]] = field(default_factory=list)  # (area, share)
    top_self: list[ProfileRow] = field(default_factory=list)  # by time in the function itself
    ours_cumulative: list[ProfileRow] = field(default_factory=list)  # by time under it


async def profiled(run: Callable[[], Awaitable[T]]) -> tuple[T, ProfileSummary]:
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        outcome = await run()
    finally:
        profiler.disable()
    return outcome, summarize(pstats.Stats(profiler))


def area_of(filename: str, function: str) -> str:
    where = f"{filename} {function}"
    for name, marks in AREAS:
        if any(mark in where for mark in marks):
            return name
    return OTHER


def short_name(filename: str, line: int, function: str) -> str:
    for mark in ("site-packages/", "/lib/python3.11/"):
        if mark in filename:
            filename = filename.split(mark, 1)[1]
            break
    else:
        for package in (*OUR_PACKAGES, "/bench/"):
            if package in filename:
                filename = package.strip("/") + "/" + filename.split(package, 1)[1]
                break
    if filename == "~":
        return function
    return f"{filename}:{line} {function}"


def _is_ours(filename: str) -> bool:
    return "/site-packages/" not in filename and any(p in filename for p in OUR_PACKAGES)


def summarize(stats: pstats.Stats, top: int = 15) -> ProfileSummary:
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]]
    raw = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw.values()) or 1.0
    by_area: defaultdict[str, float] = defaultdict(float)
    rows: list[ProfileRow] = []
    ours: list[ProfileRow] = []
    for (filename, line, function), (_prim, calls, own, under, _callers) in raw.items():
        by_area[area_of(filename, function)] += own
        name = short_name(filename, line, function)
        rows.append(ProfileRow(name, own, own / total, calls))
        if _is_ours(filename):
            ours.append(ProfileRow(name, under, under / total, calls))
    rows.sort(key=lambda row: row.seconds, reverse=True)
    ours.sort(key=lambda row: row.seconds, reverse=True)
    return ProfileSummary(
        total_seconds=total,
        by_area=sorted(
            ((area, seconds / total) for area, seconds in by_area.items()),
            key=lambda item: item[1],
            reverse=True,
        ),
        top_self=rows[:top],
        ours_cumulative=ours[:top],
    )
