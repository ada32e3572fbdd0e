"""Which code a benchmark measures: this checkout ("after") or the issue's starting commit
("before"), checked out as a detached `git worktree` in `.bench/baseline` (git-ignored)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

BASELINE = "5d3cf1c"  # issue 15's starting point: every "before" figure is measured on it
ROOT = Path(__file__).resolve().parents[1]
WORKTREE = ROOT / ".bench" / "baseline"
CODE_ENV = "BENCH_CODE"  # read by bench/__init__.py in every process the harness starts
PACKAGES = ("bot", "handlers", "storage", "playground", "tests", "migrations")
BEFORE, AFTER = "before", "after"


@dataclass(frozen=True)
class Codebase:
    side: str  # BEFORE or AFTER
    path: Path
    commit: str

    def env(self) -> dict[str, str]:
        """The environment of a child measuring this codebase."""
        return os.environ | {CODE_ENV: str(self.path)}


def _git(*arguments: str, cwd: Path = ROOT) -> str:
    done = subprocess.run(["git", *arguments], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def current() -> Codebase:
    return Codebase(AFTER, ROOT, _git("rev-parse", "--short", "HEAD"))


def baseline(say: object = print) -> Codebase:
    """The worktree of BASELINE, created once and reused while it is at that commit."""
    wanted = _git("rev-parse", f"{BASELINE}^{{commit}}")
    if WORKTREE.exists():
        try:
            at = _git("rev-parse", "HEAD", cwd=WORKTREE)
        except subprocess.CalledProcessError:
            at = ""
        if at == wanted and not _git("status", "--porcelain", cwd=WORKTREE):
            return Codebase(BEFORE, WORKTREE, wanted[:7])
        _git("worktree", "remove", "--force", str(WORKTREE))
    _git("worktree", "prune")
    WORKTREE.parent.mkdir(parents=True, exist_ok=True)
    if callable(say):
        say(f"creating the baseline worktree of {BASELINE} in {WORKTREE}")
    _git("worktree", "add", "--detach", str(WORKTREE), wanted)
    return Codebase(BEFORE, WORKTREE, wanted[:7])


def imported_from() -> dict[str, str]:
    """Where this process took each of the codebase's packages from (imported by now)."""
    found = {}
    for name in PACKAGES:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None):
            found[name] = str(Path(module.__file__ or "").resolve().parent.parent)
    return found


def check_imported_from(expected: Path) -> dict[str, str]:
    """Fail if any package imported so far came from somewhere else than `expected`."""
    found = imported_from()
    wrong = {name: where for name, where in found.items() if Path(where) != expected.resolve()}
    if wrong:
        raise RuntimeError(f"measuring {expected} but imported {wrong}")
    return found
