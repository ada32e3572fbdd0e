"""The package layout holds: the product (`bot`) never imports the offline world (`playground`)
at import time; only the `playground` command and `PANEL_API_URL=sandbox` reach it, lazily."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NO_PLAYGROUND = (
    "import bot.app, bot.cli, bot.runner; import sys; "
    "loaded = sorted(m for m in sys.modules if m == 'playground' or m.startswith('playground.')); "
    "assert not loaded, loaded"
)


def test_bot_does_not_import_playground(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", NO_PLAYGROUND],
        cwd=tmp_path,  # no stray .env, nothing importable from the working directory
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
