"""`python -m bot` as a process: a clear one-line error without settings, a real answer to
/start against the emulator, and a clean exit on SIGTERM within 10 seconds."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
from aiohttp import web

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


# --- Telegram start-up failures: one line saying what to check, no traceback -----------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _finish(process: asyncio.subprocess.Process) -> tuple[str, str]:
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    return stdout.decode(), stderr.decode()


def _assert_one_clear_line(stdout: str, stderr: str, names: str) -> None:
    output = (stdout + stderr).strip().splitlines()
    assert len(output) <= 2, output
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert names in stderr
    for noise in ("Traceback", "Unclosed", "Error in sys.excepthook"):
        assert noise not in stdout + stderr


async def test_a_token_telegram_rejects_exits_2_naming_bot_token(tmp_path: Path) -> None:
    emulator = TelegramEmulator(token=TOKEN)
    url = await emulator.start()
    wrong = "777000:not-the-right-one"
    try:
        process = await _run(
            tmp_path, BOT_TOKEN=wrong, TELEGRAM_API_URL=url, PANEL_API_URL="sandbox"
        )
        stdout, stderr = await _finish(process)
    finally:
        await emulator.stop()
    assert process.returncode == 2
    _assert_one_clear_line(stdout, stderr, "BOT_TOKEN")
    assert wrong not in stdout + stderr and "not-the-right-one" not in stdout + stderr


async def test_a_401_later_in_start_up_closes_everything_cleanly(tmp_path: Path) -> None:
    emulator = TelegramEmulator(token=TOKEN)
    url = await emulator.start()
    emulator.fail_next("deleteWebhook", error_code=401)  # services are open by then
    try:
        process = await _run(
            tmp_path, BOT_TOKEN=TOKEN, TELEGRAM_API_URL=url, PANEL_API_URL="sandbox"
        )
        stdout, stderr = await _finish(process)
    finally:
        await emulator.stop()
    assert process.returncode == 2
    errors = [line for line in stderr.splitlines() if " INFO " not in line]
    assert len(errors) == 1 and "BOT_TOKEN" in errors[0], stderr
    output = stdout + stderr
    assert "Traceback" not in output and "Unclosed" not in output and TOKEN not in output


async def test_a_malformed_token_exits_2_naming_bot_token(tmp_path: Path) -> None:
    process = await _run(tmp_path, BOT_TOKEN="not-a-token", PANEL_API_URL="sandbox")
    stdout, stderr = await _finish(process)
    assert process.returncode == 2
    _assert_one_clear_line(stdout, stderr, "BOT_TOKEN")
    assert "not-a-token" not in stderr


async def _redirect_to_itself(request: web.Request) -> web.Response:
    raise web.HTTPFound(str(request.url))


class _Redirecting:
    """Answers every Bot API call with a 302 to itself."""

    async def __aenter__(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", _redirect_to_itself)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def __aexit__(self, *exc_info: object) -> None:
        await self._runner.cleanup()


@pytest.mark.parametrize("peer", ["refused", "dns", "redirect"])
async def test_an_unreachable_telegram_api_url_exits_1(tmp_path: Path, peer: str) -> None:
    async with _Redirecting() as redirecting:
        url = {
            "refused": f"http://127.0.0.1:{_closed_port()}",
            "dns": "http://telegram-api.invalid",
            "redirect": redirecting,
        }[peer]
        process = await _run(
            tmp_path, BOT_TOKEN=TOKEN, TELEGRAM_API_URL=url, PANEL_API_URL="sandbox"
        )
        stdout, stderr = await _finish(process)
    assert process.returncode == 1
    _assert_one_clear_line(stdout, stderr, "TELEGRAM_API_URL")
    assert TOKEN not in stderr
    assert not (tmp_path / "b.db").exists()  # Telegram is checked before anything is opened


@pytest.mark.parametrize("how", [("--debug",), ("LOG_LEVEL=DEBUG",)])
async def test_debug_shows_the_traceback_still_without_the_token(
    tmp_path: Path, how: tuple[str]
) -> None:
    emulator = TelegramEmulator(token=TOKEN)
    url = await emulator.start()
    wrong = "777000:not-the-right-one"
    args = [arg for arg in how if arg.startswith("--")]
    env = dict(arg.split("=", 1) for arg in how if "=" in arg)
    try:
        process = await _run(
            tmp_path,
            "run",
            *args,
            BOT_TOKEN=wrong,
            TELEGRAM_API_URL=url,
            PANEL_API_URL="sandbox",
            **env,
        )
        _, stderr = await _finish(process)
    finally:
        await emulator.stop()
    assert process.returncode == 2
    assert "Traceback" in stderr and "BOT_TOKEN" in stderr
    assert wrong not in stderr and "not-the-right-one" not in stderr
