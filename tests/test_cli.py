"""`python -m bot` as a process: a clear one-line error without settings, a real answer to
/start against the emulator, and a clean exit on SIGTERM within 10 seconds."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from playground.telegram import TelegramEmulator

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "777000:CLI-test"


def _env(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "PANEL_", "DATABASE"))}
    env.update({"PYTHONPATH": str(ROOT), "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/b.db"})
    env.update(values)
    return env


async def _run(tmp_path: Path, *args: str, **env: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=tmp_path,  # no stray .env
        env=_env(tmp_path, **env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_missing_token_is_one_line_and_exit_2(tmp_path: Path) -> None:
    process = await _run(tmp_path)
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    lines = stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert "BOT_TOKEN" in lines[0]
    assert "Traceback" not in stderr.decode()


async def test_malformed_setting_is_named(tmp_path: Path) -> None:
    process = await _run(tmp_path, BOT_TOKEN=TOKEN, PANEL_API_URL="sandbox", ADMIN_IDS="x,1")
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    assert "ADMIN_IDS" in stderr.decode() and len(stderr.decode().strip().splitlines()) == 1


async def test_migrate_command(tmp_path: Path) -> None:
    process = await _run(tmp_path, "migrate", BOT_TOKEN=TOKEN, PANEL_API_URL="sandbox")
    await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0
    assert (tmp_path / "b.db").exists()


async def test_bot_answers_start_and_stops_on_sigterm(tmp_path: Path) -> None:
    emulator = TelegramEmulator(token=TOKEN)
    url = await emulator.start()
    process = await _run(
        tmp_path, BOT_TOKEN=TOKEN, TELEGRAM_API_URL=url, PANEL_API_URL="sandbox", POLL_INTERVAL="1"
    )
    try:
        alice = emulator.user(4242, first_name="Alice")
        reply = await alice.send("/start", timeout=30)
        assert "Hello, Alice" in reply.text
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 10)
        assert time.monotonic() - started < 10
        assert process.returncode == 0
        _, stderr = await process.communicate()
        assert TOKEN not in stderr.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await emulator.stop()
