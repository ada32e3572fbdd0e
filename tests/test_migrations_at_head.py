"""A database already at the scripts' head starts without Alembic (about 11 MiB less); one that
is behind is migrated by Alembic as before."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory

from migrations import alembic_config, script_heads

ROOT = Path(__file__).resolve().parent.parent
UPGRADE = """
import sys
from migrations import upgrade_database_sync
upgrade_database_sync(sys.argv[1])
print("alembic" in sys.modules)
"""


def upgrade_in_a_process(url: str) -> bool:
    """Upgrade in a fresh interpreter; whether it imported Alembic."""
    done = subprocess.run(
        [sys.executable, "-c", UPGRADE, url],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        timeout=120,
    )
    return done.stdout.strip().splitlines()[-1] == "True"


def test_the_heads_read_from_the_scripts_are_alembics() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert script_heads() == set(script.get_heads())


def test_a_database_at_head_is_left_alone_without_alembic(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    assert upgrade_in_a_process(url) is True  # a new database: Alembic creates the schema
    assert upgrade_in_a_process(url) is False  # at head: nothing imported, nothing to do


def test_a_database_behind_the_scripts_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade_in_a_process(url)
    command.downgrade(alembic_config(url), "-1")
    assert stored_revisions(path) != script_heads()
    assert upgrade_in_a_process(url) is True
    assert stored_revisions(path) == script_heads()


def stored_revisions(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {version for (version,) in db.execute("SELECT version_num FROM alembic_version")}
