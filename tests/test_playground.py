"""The offline playground without a browser: the page and its API are served, an order can be
driven through the HTTP user API the page uses, and `python -m bot playground` starts and stops
like a program should."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.config import ConfigError
from playground.run import (
    ADMIN,
    CUSTOMER,
    SANDBOX_KEY,
    TEAM,
    TOKEN,
    Playground,
    banner,
    configured_port,
    playground_settings,
)

ROOT = Path(__file__).resolve().parent.parent
BANNER = re.compile(r"^Playground: open (http://127\.0\.0\.1:(\d+)) in your browser$")
LINK = "https://instagram.com/some.account"
Json = dict[str, Any]


@pytest.fixture
async def http(playground: Playground) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=playground.url) as session:
        yield session


class PageUser:
    """A persona driving the bot through the same HTTP calls as the page's app.js."""

    def __init__(self, http: aiohttp.ClientSession, user_id: int, chat_id: int) -> None:
        self.http = http
        self.user_id = user_id
        self.chat_id = chat_id
        self.cursor = 0  # chat version after our last action

    async def _post(self, path: str, body: Json) -> Json:
        async with self.http.post(path, json=body) as response:
            answer: Json = await response.json()
        assert answer["ok"], answer
        return answer

    async def chat(self, after: int = 0, timeout: float = 0) -> Json:  # noqa: ASYNC109
        path = f"/user-api/chats/{self.chat_id}/messages"
        params = {"after_version": after, "timeout": timeout}
        async with self.http.get(path, params=params) as response:
            answer: Json = await response.json()
        return answer

    async def send(self, text: str) -> None:
        sent = await self._post(
            "/user-api/send", {"user_id": self.user_id, "chat_id": self.chat_id, "text": text}
        )
        self.cursor = sent["message"]["version"]

    async def press(self, label: str) -> None:
        """Press the newest inline button whose text contains `label`."""
        state = await self.chat()
        for message in reversed(state["messages"]):
            for text, data in (b for row in message["buttons"] for b in row):
                if label in text:
                    self.cursor = state["version"]
                    await self._post(
                        "/user-api/press",
                        {
                            "user_id": self.user_id,
                            "chat_id": self.chat_id,
                            "message_id": message["message_id"],
                            "callback_data": data,
                        },
                    )
                    return
        raise AssertionError(f"no button {label!r} in {state['messages']}")

    async def wait_for(self, predicate: Callable[[Json], bool], timeout: float = 10) -> Json:  # noqa: ASYNC109
        """The first bot message, new or edited since our last action, matching `predicate`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen = self.cursor
        while (remaining := deadline - loop.time()) > 0:
            state = await self.chat(after=seen, timeout=min(remaining, 5))
            for message in state["messages"]:
                fresh = message["version"] > self.cursor and message["from_bot"]
                if fresh and predicate(message):
                    found: Json = message
                    self.cursor = found["version"]
                    return found
            seen = state["version"]
        raise AssertionError(f"no matching bot message within {timeout} s")


def has_button(label: str) -> Callable[[Json], bool]:
    return lambda message: any(label in text for row in message["buttons"] for text, _ in row)


def says(words: str) -> Callable[[Json], bool]:
    return lambda message: words in message["text"]


# --- the first line and the settings ------------------------------------------------------


def test_banner_names_the_url() -> None:
    line = banner("http://127.0.0.1:8080")
    assert line == "Playground: open http://127.0.0.1:8080 in your browser"
    assert BANNER.match(line)


def test_settings_ignore_the_environment_and_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real token, a broken value or another database in .env or the environment must not
    reach the playground."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("BOT_TOKEN=123:real-token\nADMIN_IDS=not-a-number\n")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://prod/db")
    monkeypatch.setenv("OPEN_TO_ALL", "true")
    monkeypatch.setenv("MAX_ORDER_PRICE", "0.01")
    settings = playground_settings(
        telegram_api_url="http://127.0.0.1:1",
        panel_api_url="http://127.0.0.1:2/api/v2",
        panel_api_key="key",
        database_url="sqlite+aiosqlite:///x.db",
    )
    assert settings.bot_token.get_secret_value() == TOKEN
    assert settings.database_url == "sqlite+aiosqlite:///x.db"
    assert settings.admin_ids == [ADMIN.id]
    assert settings.allowed_user_ids == [CUSTOMER.id]
    assert settings.notify_chat_ids == [TEAM.id]
    assert settings.open_to_all is False and settings.max_order_price is None
    assert settings.poll_interval == 2


def test_port_comes_from_playground_port(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PLAYGROUND_PORT", raising=False)
    assert configured_port() == 8080
    monkeypatch.setenv("PLAYGROUND_PORT", "0")
    assert configured_port() == 0
    monkeypatch.setenv("PLAYGROUND_PORT", "eighty")
    with pytest.raises(ConfigError, match="PLAYGROUND_PORT"):
        configured_port()


# --- the page and its API -----------------------------------------------------------------


async def test_page_and_assets_are_served(http: aiohttp.ClientSession) -> None:
    async with http.get("/") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        page = await response.text()
    assert 'data-testid="composer-input"' in page and "/static/app.js" in page
    for asset, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        async with http.get(f"/static/{asset}") as response:
            assert response.status == 200
            assert kind in response.content_type
            assert response.headers["Cache-Control"] == "no-cache"


async def test_setup_describes_the_world(http: aiohttp.ClientSession) -> None:
    async with http.get("/api/setup") as response:
        setup = await response.json()
    assert [p["id"] for p in setup["personas"]] == [1000, 1001, 1999]
    assert [p["may_order"] for p in setup["personas"]] == [True, True, False]
    assert setup["group"] == {"id": -100777, "title": "Team"}
    assert setup["bot"]["is_bot"] is True
    assert setup["sandbox"]["balance"] == "100.84292"
    async with http.get("/user-api/chats") as response:
        chats = {c["chat"]["id"] for c in (await response.json())["chats"]}
    assert chats == {1000, 1001, 1999, -100777}


async def test_sandbox_controls(http: aiohttp.ClientSession, playground: Playground) -> None:
    async with http.post("/api/sandbox/speed", json={"factor": 10}) as response:
        assert (await response.json())["speed"] == 10
    async with http.post("/api/sandbox/advance", json={"seconds": 60}) as response:
        assert (await response.json())["time"] >= 60
    async with http.post("/api/sandbox/fail-next-add", json={}) as response:
        assert response.status == 200
    add = {"key": SANDBOX_KEY, "action": "add", "service": "2002", "link": LINK, "quantity": "100"}
    assert playground.sandbox.handle(add) == {"error": "Not enough funds on balance"}
    for bad in ({"factor": "fast"}, {"factor": -1}, {"factor": True}, {}):
        async with http.post("/api/sandbox/speed", json=bad) as response:
            assert response.status == 400
            assert "factor" in (await response.json())["error"]


async def test_posts_must_be_json(http: aiohttp.ClientSession) -> None:
    """A form post is what another web page could send without a CORS preflight."""
    async with http.post("/api/sandbox/speed", data={"factor": "10"}) as response:
        assert response.status == 415
    body = {"user_id": "1001", "chat_id": "1001", "text": "/start"}
    async with http.post("/user-api/send", data=body) as response:
        assert response.status == 415


async def test_an_order_through_the_page_api(http: aiohttp.ClientSession) -> None:
    customer = PageUser(http, CUSTOMER.id, CUSTOMER.id)
    await customer.send("/start")
    hello = await customer.wait_for(says("Hello, Customer"))
    assert hello["reply_markup"]["keyboard"][0][0]["text"] == "🛒 New order"
    await customer.send("/order")
    await customer.wait_for(has_button("Instagram Followers"))
    await customer.press("Instagram Followers (")
    await customer.wait_for(has_button("Instagram Followers [Real"))
    await customer.press("Instagram Followers [Real")
    await customer.wait_for(says("link"))
    await customer.send(LINK)
    await customer.wait_for(says("quantity"))
    await customer.send("1000")
    await customer.wait_for(has_button("Skip"))
    await customer.press("Skip")
    summary = await customer.wait_for(has_button("Confirm"))
    assert "Instagram Followers [Real, 30 days refill]" in summary["text"]
    assert "1.25 USD" in summary["text"] and LINK in summary["text"]
    assert "<b>" in summary["html"]  # the page gets the bot's markup to render


async def test_the_stranger_may_not_order(http: aiohttp.ClientSession) -> None:
    stranger = PageUser(http, 1999, 1999)
    await stranger.send("/order")
    reply = await stranger.wait_for(lambda message: True)
    assert not reply["buttons"]


# --- the program --------------------------------------------------------------------------


async def test_python_m_bot_playground_prints_the_url_first_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    stale = tmp_path / "data" / "playground.db"
    stale.parent.mkdir()
    stale.write_text("not a database: the playground must start fresh")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "PANEL_"))}
    env.update(PYTHONPATH=str(ROOT), PLAYGROUND_PORT="0", BOT_TOKEN="broken")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "playground",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        first = (await asyncio.wait_for(process.stdout.readline(), 60)).decode().rstrip("\n")
        found = BANNER.match(first)
        assert found, first
        assert int(found.group(2)) > 0
        async with (
            aiohttp.ClientSession() as session,
            session.get(found.group(1) + "/api/setup") as response,
        ):
            assert response.status == 200
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 10)
        assert process.returncode == 0, stderr.decode()
        assert stdout.decode().rstrip().endswith("Playground stopped.")
        assert "Traceback" not in stderr.decode()
        assert stale.stat().st_size != len("not a database: the playground must start fresh")
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
