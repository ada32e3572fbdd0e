"""The offline playground without a browser: the page and its API are served, an order can be
driven through the HTTP user API the page uses, and `python -m bot playground` starts and stops
like a program should."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.config import ConfigError, Settings
from playground.run import (
    ADMIN,
    CUSTOMER,
    SANDBOX_KEY,
    TEAM,
    TOKEN,
    USER_SETTINGS,
    Playground,
    banner,
    changed_settings,
    check_user_settings,
    configured_port,
    playground_settings,
    run_playground,
    user_settings,
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
    reach the playground: only the behaviour settings of USER_SETTINGS do."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "BOT_TOKEN=123:real-token\nADMIN_IDS=not-a-number\nPANEL_API_KEY=real-key\n"
        "FSM_STORAGE=redis://prod\nWEBHOOK_URL=https://example.com\nmax_order_price=0.01\n"
        "POLL_INTERVAL=30\nLOW_BALANCE_ALERT=\n"
    )
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://prod/db")
    monkeypatch.setenv("TELEGRAM_API_URL", "https://api.telegram.org")
    monkeypatch.setenv("PANEL_API_URL", "https://panel.example/api/v2")
    monkeypatch.setenv("OPEN_TO_ALL", "true")
    monkeypatch.setenv("POLL_INTERVAL", "5")  # the environment beats .env, as for the bot
    user = user_settings()
    assert user == {"max_order_price": "0.01", "open_to_all": "true", "poll_interval": "5"}
    settings = playground_settings(
        telegram_api_url="http://127.0.0.1:1",
        panel_api_url="http://127.0.0.1:2/api/v2",
        panel_api_key="key",
        database_url="sqlite+aiosqlite:///x.db",
        user=user | {"bot_token": "1:smuggled", "database_url": "sqlite:///elsewhere.db"},
    )
    assert settings.bot_token.get_secret_value() == TOKEN
    assert settings.telegram_api_url == "http://127.0.0.1:1"
    assert settings.panel_api_url == "http://127.0.0.1:2/api/v2"
    assert settings.panel_api_key is not None
    assert settings.panel_api_key.get_secret_value() == "key"
    assert settings.database_url == "sqlite+aiosqlite:///x.db"
    assert settings.fsm_storage == "database" and settings.webhook_url is None
    assert settings.admin_ids == [ADMIN.id]
    assert settings.allowed_user_ids == [CUSTOMER.id]
    assert settings.notify_chat_ids == [TEAM.id]
    assert settings.open_to_all is True and settings.max_order_price == Decimal("0.01")
    assert settings.low_balance_alert is None and settings.poll_interval == 5
    assert changed_settings(user) == [
        "MAX_ORDER_PRICE=0.01",
        "OPEN_TO_ALL=true",
        "POLL_INTERVAL=5",
    ]


def test_without_user_settings_the_playground_polls_fast() -> None:
    settings = check_user_settings({})
    assert settings.poll_interval == 2 and settings.open_to_all is False
    assert settings.max_order_price is None and settings.default_language == "en"
    # A value equal to what the playground uses anyway is not worth a line at start-up.
    assert (
        changed_settings({"open_to_all": "false", "poll_aging": "6h=300,24h=900,72h=3600"}) == []
    )


def test_user_settings_are_behaviour_settings_of_the_bot() -> None:
    fields = set(Settings.model_fields)
    assert {name.lower() for name in USER_SETTINGS} <= fields
    assert all(name == name.upper() for name in USER_SETTINGS)
    never = ("BOT_TOKEN", "PANEL_API", "DATABASE_URL", "TELEGRAM_API_URL", "WEBHOOK_", "FSM_")
    assert not [name for name in USER_SETTINGS if name.startswith(never)]
    assert not [name for name in USER_SETTINGS if name.endswith("_IDS")]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_ORDER_PRICE", "lots"),
        ("OPEN_TO_ALL", "maybe"),
        ("POLL_INTERVAL", "0"),
        ("POLL_AGING", "soon"),
        ("DEFAULT_LANGUAGE", "de"),
    ],
)
def test_a_bad_user_setting_is_one_line_and_exit_2(
    name: str,
    value: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(name, value)
    assert run_playground() == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"Configuration error: {name} is invalid: ")
    assert len(err.strip().splitlines()) == 1


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
    assert setup["settings"] == []
    async with http.get("/user-api/chats") as response:
        chats = {c["chat"]["id"] for c in (await response.json())["chats"]}
    assert chats == {1000, 1001, 1999, -100777}


async def test_the_command_menu_is_served_per_chat_and_person(
    http: aiohttp.ClientSession, playground: Playground
) -> None:
    """What the page shows when "/" is typed: the bot's setMyCommands list, as Telegram picks
    it for that person in that chat."""
    for chat_id in (CUSTOMER.id, TEAM.id):
        async with http.get(
            f"/user-api/chats/{chat_id}/commands", params={"user_id": CUSTOMER.id}
        ) as response:
            menu = (await response.json())["commands"]
        assert [c["command"] for c in menu][:2] == ["order", "orders"]
        assert menu[0]["description"] == "Place a new order"
    async with http.get("/user-api/chats/424242/commands", params={"user_id": 1}) as response:
        assert response.status == 404
    async with http.get(f"/user-api/chats/{CUSTOMER.id}/commands") as response:
        assert response.status == 400


def test_the_menu_follows_telegrams_order_of_scopes() -> None:
    """The narrowest scope the bot set wins, with the person's language before none."""
    from playground.telegram import TelegramEmulator

    emulator = TelegramEmulator()
    emulator.user(5, first_name="Ana", language_code="tl-PH")
    emulator.user(6, first_name="Ben", language_code="en")
    emulator.add_group(-100, "Group")
    state = next(iter(emulator._bots.values()))

    def menu(scope: Json, language: str, name: str) -> None:
        key = (json.dumps(scope, sort_keys=True), language)
        state.commands[key] = [{"command": name, "description": name}]

    def names(user_id: int, chat_id: int) -> list[str]:
        return [c["command"] for c in emulator.menu_commands(user_id, chat_id)]

    assert names(5, 5) == []
    menu({"type": "default"}, "", "default")
    menu({"type": "default"}, "tl", "default_tl")
    assert names(5, 5) == ["default_tl"] and names(6, 6) == ["default"]
    menu({"type": "all_private_chats"}, "", "private")
    assert names(5, 5) == ["private"] and names(6, -100) == ["default"]
    menu({"type": "chat", "chat_id": "6"}, "", "ben")  # ids may come as text
    assert names(6, 6) == ["ben"] and names(5, 5) == ["private"]
    menu({"type": "all_group_chats"}, "", "groups")
    menu({"type": "chat_member", "chat_id": -100, "user_id": 5}, "", "ana_here")
    assert names(5, -100) == ["ana_here"] and names(6, -100) == ["groups"]


async def test_sandbox_controls(http: aiohttp.ClientSession, playground: Playground) -> None:
    async with http.post("/api/sandbox/speed", json={"factor": 10}) as response:
        assert (await response.json())["speed"] == 10
    async with http.post("/api/sandbox/advance", json={"seconds": 60}) as response:
        assert (await response.json())["time"] >= 60
    async with http.post("/api/sandbox/fail-next-add", json={}) as response:
        assert response.status == 200
    add = {"key": SANDBOX_KEY, "action": "add", "service": "2002", "link": LINK, "quantity": "100"}
    assert playground.sandbox.handle(add) == {"error": "Not enough funds on balance"}
    async with http.post("/api/sandbox/partial-next", json={}) as response:
        assert (await response.json())["partial_next"] == 1
    order = playground.sandbox.handle(add)["order"]
    playground.sandbox.advance(86400)
    assert playground.sandbox.orders[order].status == "Partial"
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


async def _order_followers(customer: PageUser) -> Json:
    """The Customer's summary for 1000 followers of 2001 (1.25 USD)."""
    await customer.send("/order")
    await customer.wait_for(has_button("Instagram Followers ("))
    await customer.press("Instagram Followers (")
    await customer.wait_for(has_button("Instagram Followers [Real"))
    await customer.press("Instagram Followers [Real")
    await customer.wait_for(says("link"))
    await customer.send(LINK)
    await customer.wait_for(says("quantity"))
    await customer.send("1000")
    await customer.wait_for(has_button("Skip"))
    await customer.press("Skip")
    return await customer.wait_for(has_button("Confirm"))


async def test_an_approval_can_be_tried_with_max_order_price(tmp_path: Path) -> None:
    world = Playground(database_path=tmp_path / "playground.db", user={"max_order_price": "1"})
    await world.start(port=0)
    try:
        async with aiohttp.ClientSession(base_url=world.url) as http:
            customer = PageUser(http, CUSTOMER.id, CUSTOMER.id)
            admin = PageUser(http, ADMIN.id, ADMIN.id)
            await _order_followers(customer)
            await customer.press("Confirm")
            await customer.wait_for(says("approval"))
            request = await admin.wait_for(has_button("Approve"))
            assert "waits for your approval" in request["text"] and "1.25 USD" in request["text"]
            await admin.press("Approve")
            placed = await customer.wait_for(says("23501"))
            assert "Order placed" in placed["text"]
            async with http.get("/api/setup") as response:
                assert (await response.json())["settings"] == ["MAX_ORDER_PRICE=1"]
    finally:
        await world.stop()


async def test_in_reseller_mode_the_stranger_may_top_up_and_order(tmp_path: Path) -> None:
    user = {"billing": "wallet", "shop_currency": "USD"}
    world = Playground(database_path=tmp_path / "playground.db", user=user)
    await world.start(port=0)
    try:
        async with aiohttp.ClientSession(base_url=world.url) as http:
            async with http.get("/api/setup") as response:
                setup = await response.json()
            assert [p["may_order"] for p in setup["personas"]] == [True, True, True]
            assert "BILLING=wallet" in setup["personas"][2]["role"]
            stranger = PageUser(http, 1999, 1999)
            await stranger.send("/order")
            await stranger.wait_for(has_button("Instagram Followers ("))
    finally:
        await world.stop()


async def test_open_to_all_lets_the_stranger_order(tmp_path: Path) -> None:
    world = Playground(database_path=tmp_path / "playground.db", user={"open_to_all": "true"})
    await world.start(port=0)
    try:
        async with aiohttp.ClientSession(base_url=world.url) as http:
            async with http.get("/api/setup") as response:
                setup = await response.json()
            assert [p["may_order"] for p in setup["personas"]] == [True, True, True]
            assert "OPEN_TO_ALL" in setup["personas"][2]["role"]
            stranger = PageUser(http, 1999, 1999)
            await stranger.send("/order")
            await stranger.wait_for(has_button("Instagram Followers ("))
    finally:
        await world.stop()


async def test_default_language_decides_what_the_personas_read(tmp_path: Path) -> None:
    world = Playground(database_path=tmp_path / "playground.db", user={"default_language": "fil"})
    await world.start(port=0)
    try:
        async with aiohttp.ClientSession(base_url=world.url) as http:
            customer = PageUser(http, CUSTOMER.id, CUSTOMER.id)
            await customer.send("/start")
            await customer.wait_for(says("Kumusta, Customer!"))
    finally:
        await world.stop()


async def test_the_stranger_may_not_order(http: aiohttp.ClientSession) -> None:
    stranger = PageUser(http, 1999, 1999)
    await stranger.send("/order")
    reply = await stranger.wait_for(lambda message: True)
    assert [button[0] for row in reply["buttons"] for button in row] == ["🙋 Ask for access"]


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


def test_start_up_migrations_log_no_alembic_info_lines(tmp_path: Path) -> None:
    """Importing Alembic and upgrading a fresh database say nothing at INFO (the bot starts
    with INFO logging); the level of the `alembic` logger is given back afterwards."""
    script = (
        "import logging\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "from migrations import upgrade_database_sync\n"
        f"upgrade_database_sync('sqlite+aiosqlite:///{tmp_path / 'fresh.db'}')\n"
        "assert logging.getLogger('alembic').level == logging.NOTSET\n"
        "logging.getLogger('alembic.runtime.migration').warning('warnings still show')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["WARNING:alembic.runtime.migration:warnings still show"]
