"""What the figures were measured on: CPU, cores, memory, Python and the key packages."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "aiogram",
    "aiohttp",
    "SQLAlchemy",
    "aiosqlite",
    "pydantic",
    "pydantic-core",
    "aiolimiter",
)


@dataclass(frozen=True)
class Machine:
    cpu: str
    cores: int
    memory_gib: float
    python: str
    system: str
    sqlite: str
    packages: dict[str, str] = field(default_factory=dict)
    date: str = ""
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)  # load average when the run started
    code: str = ""  # the commit measured, and whether the code had uncommitted changes


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe_code() -> str:
    """The commit of the code under test, noting uncommitted changes to it (bench/ aside)."""
    root = Path(__file__).resolve().parents[1]

    def git(*arguments: str) -> str:
        done = subprocess.run(
            ["git", *arguments], cwd=root, capture_output=True, text=True, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "unknown (not a git checkout)"
    changed = git(
        "status", "--porcelain", "--", "bot", "handlers", "storage", "migrations", "playground"
    )
    return f"{commit}" + (" with uncommitted changes" if changed else "")


def describe_machine() -> Machine:
    import sqlite3

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return Machine(
        cpu=_cpu_model(),
        cores=cores or 0,
        memory_gib=_memory_gib(),
        python=f"{platform.python_implementation()} {platform.python_version()}",
        system=f"{platform.system()} {platform.release()}",
        sqlite=sqlite3.sqlite_version,
        packages={name: _version(name) for name in PACKAGES},
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        load=os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0),
        code=describe_code(),
    )
