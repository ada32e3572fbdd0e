"""Metrics and health over HTTP: real traffic through the bot, then a scrape of METRICS_PORT
shows the counters moved by as much as happened; /healthz and /readyz answer for the process
and for what it depends on."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiogram.types import Update
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import ConfigError, load_settings
from bot.metrics import Metrics, create_metrics_app, dependency_probes, serve_metrics
from playground.telegram import TelegramEmulator
from storage import metrics as queries
from storage.db import create_engine, create_session_factory
from storage.models import OutboxMessage, SubmissionState
from tests.factories import add_orders, make_settings, remember_customer
from tests.harness import ALICE, BOB, GROUP, BotUnderTest, start_bot, stop_bot
from tests.rig import ALICE as RIG_ALICE
from tests.rig import MakeRig, Rig

ROOT = Path(__file__).resolve().parent.parent
LINK = "https://instagram.com/some.account"
# Every metric the issue names, as families and (histograms by their _count) as samples.
FAMILIES = {
    "smmbot_updates",
    "smmbot_update_seconds",
    "smmbot_panel_calls",
    "smmbot_panel_errors",
    "smmbot_panel_call_seconds",
    "smmbot_outbox_depth",
    "smmbot_outbox_oldest_age_seconds",
    "smmbot_telegram_refusals",
    "smmbot_orders",
    "smmbot_poll_cycle_seconds",
}
NAMED = [
    "smmbot_updates_total",
    "smmbot_update_seconds_count",
    "smmbot_panel_calls_total",
    "smmbot_panel_errors_total",
    "smmbot_panel_call_seconds_count",
    "smmbot_outbox_depth",
    "smmbot_outbox_oldest_age_seconds",
    "smmbot_telegram_refusals_total",
    "smmbot_orders",
    "smmbot_poll_cycle_seconds_count",
]

Sessions = async_sessionmaker[AsyncSession]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Scrape:
    """One scrape of /metrics: sample values by name and labels."""

    def __init__(self, text: str) -> None:
        self.samples: Samples = {}
        self.families: set[str] = set()
        for family in text_string_to_metric_families(text):
            self.families.add(family.name)
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                self.samples[key] = sample.value

    def value(self, name: str, **labels: str) -> float:
        """The sample with exactly these labels (0 when absent)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def total(self, name: str, **labels: str) -> float:
        """The sum of every sample of `name` whose labels include these."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and wanted <= ls)

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}


async def get(port: int, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"http://127.0.0.1:{port}{path}") as response,
    ):
        return response.status, await response.text()


async def scrape(port: int) -> Scrape:
    status, text = await get(port, "/metrics")
    assert status == 200, text
    return Scrape(text)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- end to end: the emulator, the sandbox panel, the real bot -------------------------------


@pytest.fixture
async def watched_bot(tmp_path: Path) -> AsyncIterator[tuple[BotUnderTest, int]]:
    """The bot end to end, fast polling and delivery, with its metrics site on a free port."""
    bot = await start_bot(
        tmp_path,
        poll_interval=0.2,
        notify_chat_ids=[GROUP],
        outbox_chat_interval=0.05,
        outbox_group_per_minute=600,
    )
    bot.emulator.add_group(GROUP, "Team")
    assert bot.services is not None
    port = await bot.services.start_metrics_site(host="127.0.0.1", port=0)
    yield bot, port
    await stop_bot(bot)


class Customer:
    """A person ordering Instagram followers, counting the updates they send."""

    def __init__(self, bot: BotUnderTest, user_id: int) -> None:
        self.user = bot.user(user_id, "Customer")
        self.updates = 0

    async def send(self, text: str) -> str:
        self.updates += 1
        return (await self.user.send(text)).text

    async def press(self, label: str) -> str:
        self.updates += 1
        return (await self.user.press(label)).text

    async def order(self) -> str:
        await self.send("/order")
        await self.press("Instagram (1)")
        await self.press("Instagram Followers")
        await self.send(LINK)
        await self.send("100")
        return await self.press("Confirm")


async def idle(bot: BotUnderTest) -> None:
    """Every update answered and handled to the end (the count is taken as a handler ends)."""
    await bot.emulator.settle()
    assert await bot.emulator.wait_until(lambda: bot.in_flight == 0, 10)


async def test_a_scrape_after_traffic_counts_what_happened(
    watched_bot: tuple[BotUnderTest, int],
) -> None:
    bot, port = watched_bot
    before = await scrape(port)
    assert before.families >= FAMILIES  # labelled ones have no sample before their first event
    assert before.total("smmbot_updates_total") == 0

    alice, bob = Customer(bot, ALICE), Customer(bot, BOB)
    assert "23501" in await alice.order()
    bot.sandbox.fail_next_add()  # refused: failed
    assert "23501" not in await bob.order()
    bot.sandbox.invalid_json_next("add")  # sent, answer cut short: unknown
    await bob.order()
    await idle(bot)

    # Completion: the group's notice meets one 429, Alice (who blocked the bot) answers 403.
    bot.emulator.fail_next("sendMessage", error_code=429, retry_after=1, chat_id=GROUP)
    bot.emulator.block(ALICE)
    bot.sandbox.advance(3600)
    assert await bot.emulator.wait_until(
        lambda: any("23501" in m.text for m in bot.emulator.messages(GROUP)), 15
    )
    await idle(bot)

    after = await scrape(port)
    assert set(NAMED) <= after.names()
    sent = alice.updates + bob.updates
    assert after.total("smmbot_updates_total") == sent
    assert after.total("smmbot_update_seconds_count") == sent
    assert after.total("smmbot_updates_total", handler="ordering.confirm_draft") == 3
    assert after.total("smmbot_updates_total", outcome="error") == 0

    logged = [request.action for request in bot.sandbox.request_log]
    for action in ("add", "services"):
        assert after.value("smmbot_panel_calls_total", action=action) == logged.count(action)
        assert after.value("smmbot_panel_call_seconds_count", action=action) == logged.count(
            action
        )
    assert after.value("smmbot_panel_calls_total", action="add") == 3
    assert after.value("smmbot_panel_errors_total", action="add", kind="refused") == 1
    assert after.value("smmbot_panel_errors_total", action="add", kind="unknown") == 1
    # The poller keeps polling: at most its one call in flight is not counted yet.
    statuses = logged.count("status")
    assert statuses >= 1
    assert statuses - 1 <= after.value("smmbot_panel_calls_total", action="status") <= statuses

    assert after.value("smmbot_telegram_refusals_total", code="429") == 1
    assert after.value("smmbot_telegram_refusals_total", code="403") == 1
    assert after.value("smmbot_orders", state=SubmissionState.PLACED) == 1
    assert after.value("smmbot_orders", state=SubmissionState.FAILED) == 1
    assert after.value("smmbot_orders", state=SubmissionState.UNKNOWN) == 1
    assert after.value("smmbot_orders", state=SubmissionState.DRAFT) == 0
    assert after.value("smmbot_poll_cycle_seconds_count") >= 1
    assert after.value("smmbot_outbox_depth") == 0  # everything delivered or dropped
    assert after.value("smmbot_outbox_oldest_age_seconds") == 0


# --- in process: handler names, unhandled updates, the outbox gauges --------------------------


@pytest.fixture
async def rig_site(make_rig: MakeRig) -> tuple[Rig, int]:
    rig = await make_rig()
    return rig, await rig.services.start_metrics_site(host="127.0.0.1", port=0)


async def test_updates_by_handler_and_unhandled_ones(rig_site: tuple[Rig, int]) -> None:
    rig, port = rig_site
    await rig.send(RIG_ALICE, "/start")
    await rig.send(RIG_ALICE, "/help")
    await rig.send(RIG_ALICE, "/help")
    # No router takes an edited message: it is counted all the same.
    edited = {
        "update_id": 900,
        "edited_message": {
            "message_id": 1,
            "date": 1,
            "edit_date": 2,
            "chat": {"id": RIG_ALICE, "type": "private"},
            "from": {"id": RIG_ALICE, "is_bot": False, "first_name": "Alice"},
            "text": "edited",
        },
    }
    await rig.dispatcher.feed_update(rig.bot, Update.model_validate(edited))

    scraped = await scrape(port)
    assert scraped.total("smmbot_updates_total") == 4
    assert scraped.value("smmbot_updates_total", handler="common.start", outcome="ok") == 1
    assert scraped.value("smmbot_updates_total", handler="common.show_help", outcome="ok") == 2
    assert scraped.value("smmbot_updates_total", handler="unhandled", outcome="ok") == 1
    assert scraped.value("smmbot_update_seconds_count", handler="common.show_help") == 2


async def test_outbox_gauges_show_the_backlog_and_its_oldest_message(
    rig_site: tuple[Rig, int],
) -> None:
    rig, port = rig_site  # the rig runs no sender: what is queued stays queued
    empty = await scrape(port)
    assert empty.value("smmbot_outbox_depth") == 0
    written = datetime.now(UTC) - timedelta(minutes=10)
    async with rig.services.sessions.begin() as session:
        for chat_id in (RIG_ALICE, RIG_ALICE, -100777):
            session.add(OutboxMessage(chat_id=chat_id, text="hi", created_at=written))
    scraped = await scrape(port)
    assert scraped.value("smmbot_outbox_depth") == 3
    assert scraped.value("smmbot_outbox_oldest_age_seconds") >= 600


async def test_gauge_queries_on_each_database(sessions: Sessions) -> None:
    async with sessions.begin() as session:
        empty = await queries.outbox_backlog(session)
        assert (empty.depth, empty.oldest) == (0, None)
        await remember_customer(session, 501)
        await add_orders(session, [1, 2], chat_id=501)
        await add_orders(session, [None], chat_id=501, state=SubmissionState.UNKNOWN)
        first = datetime.now(UTC) - timedelta(hours=1)
        for minutes in (0, 30):
            written = first + timedelta(minutes=minutes)
            session.add(OutboxMessage(chat_id=501, text="hi", created_at=written))
    async with sessions() as session:
        assert await queries.orders_by_state(session) == {"placed": 2, "unknown": 1}
        backlog = await queries.outbox_backlog(session)
        await queries.ping(session)
    assert backlog == queries.Backlog(depth=2, oldest=first)


def test_metrics_port_is_off_by_default_and_never_the_webhook_port() -> None:
    assert make_settings().metrics_port is None
    assert make_settings(metrics_port="9100").metrics_port == 9100
    hook = {"webhook_url": "https://bot.example", "webhook_secret": "s", "webhook_port": 8443}
    with pytest.raises(ConfigError, match="METRICS_PORT must differ from WEBHOOK_PORT"):
        load_settings(bot_token="1:x", panel_api_url="sandbox", metrics_port=8443, **hook)


async def test_metrics_of_two_bots_in_one_process_count_apart() -> None:
    first, second = Metrics(), Metrics()
    first.telegram_refused(429)
    assert b'smmbot_telegram_refusals_total{code="429"} 1.0' in first.render()
    assert b'smmbot_telegram_refusals_total{code="429"} 0.0' in second.render()


# --- health ----------------------------------------------------------------------------------


async def test_healthz_and_readyz_with_the_database_up(rig_site: tuple[Rig, int]) -> None:
    _, port = rig_site
    assert await get(port, "/healthz") == (200, "ok\n")
    status, body = await get(port, "/readyz")
    assert status == 200, body
    assert '"database": "ok"' in body and "redis" not in body  # the rig has no Redis


@pytest.fixture
async def unreachable_database() -> AsyncIterator[Sessions]:
    """Sessions of a database on a closed port: nothing answers there."""
    engine = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/gone")
    yield create_session_factory(engine)
    await engine.dispose()


async def serve(sessions: Sessions, redis: Redis | None) -> tuple[web.AppRunner, int]:
    """The metrics site of a bot with these sessions and this Redis, on a free port."""
    app = create_metrics_app(Metrics(), sessions, dependency_probes(sessions, redis))
    runner = await serve_metrics(app, "127.0.0.1", 0)
    return runner, int(runner.addresses[0][1])


async def test_readyz_is_503_when_the_database_is_unreachable(
    unreachable_database: Sessions,
) -> None:
    runner, port = await serve(unreachable_database, None)
    try:
        status, body = await get(port, "/readyz")
        assert status == 503
        assert '"database": "unreachable' in body and "postgres@" not in body
        assert (await get(port, "/healthz"))[0] == 200  # the process itself is fine
        # The scrape still answers: only the database gauges could not be read.
        assert "smmbot_updates" in (await scrape(port)).families
    finally:
        await runner.cleanup()


async def test_readyz_is_503_when_redis_is_unreachable(rig_site: tuple[Rig, int]) -> None:
    rig, _ = rig_site
    redis = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    runner, port = await serve(rig.services.sessions, redis)
    try:
        status, body = await get(port, "/readyz")
        assert status == 503
        assert '"database": "ok"' in body and '"redis": "unreachable' in body
    finally:
        await runner.cleanup()
        await redis.aclose()


@pytest.mark.skipif(not os.environ.get("TEST_REDIS_URL"), reason="TEST_REDIS_URL is not set")
async def test_readyz_with_redis_up(make_rig: MakeRig) -> None:
    rig = await make_rig(redis_url=os.environ["TEST_REDIS_URL"])
    port = await rig.services.start_metrics_site(host="127.0.0.1", port=0)
    status, body = await get(port, "/readyz")
    assert status == 200, body
    assert '"redis": "ok"' in body


# --- python -m bot: the site on METRICS_PORT -------------------------------------------------


async def start_python_m_bot(tmp_path: Path, **settings: str) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "PANEL_", "DATA"))}
    env.update(
        PYTHONPATH=str(ROOT),
        PANEL_API_URL="sandbox",
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/b.db",
        **settings,
    )
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=tmp_path, env=env, stderr=asyncio.subprocess.PIPE
    )


async def scrape_until_counted(port: int) -> Scrape:
    """A scrape once an update is counted: the count is taken as the handler returns, just
    after its answer went out."""
    scraped = await scrape(port)
    for _ in range(100):
        if scraped.total("smmbot_updates_total"):
            break
        await asyncio.sleep(0.1)
        scraped = await scrape(port)
    return scraped


async def stop_python_m_bot(process: asyncio.subprocess.Process, metrics_port: int) -> None:
    """SIGTERM: the bot stops cleanly, and its metrics site with it."""
    process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(process.wait(), 15)
    assert process.returncode == 0
    with pytest.raises(aiohttp.ClientConnectionError):
        await get(metrics_port, "/healthz")


def start_update(user_id: int) -> dict[str, Any]:
    return {
        "update_id": 1,
        "message": {
            "message_id": 1,
            "date": 1_700_000_000,
            "chat": {"id": user_id, "type": "private", "first_name": "Web"},
            "from": {"id": user_id, "is_bot": False, "first_name": "Web"},
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }


async def test_polling_mode_serves_metrics_on_metrics_port(tmp_path: Path) -> None:
    token = "777000:METRICS-test"
    emulator = TelegramEmulator(token=token)
    url = await emulator.start()
    port = free_port()
    process = await start_python_m_bot(
        tmp_path, BOT_TOKEN=token, TELEGRAM_API_URL=url, METRICS_PORT=str(port)
    )
    try:
        reply = await emulator.user(4242, first_name="Alice").send("/start", timeout=30)
        assert "Hello, Alice" in reply.text
        assert await get(port, "/healthz") == (200, "ok\n")
        assert (await get(port, "/readyz"))[0] == 200
        scraped = await scrape_until_counted(port)
        assert scraped.value("smmbot_updates_total", handler="common.start", outcome="ok") == 1
        await stop_python_m_bot(process, port)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await emulator.stop()


class WebhookPeer:
    """Just enough of the Bot API for webhook mode: getMe, setWebhook, the command menu, and
    sendMessage answered with the message it would show (the emulator has no setWebhook)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.texts: list[str] = []
        self.hooks: list[str] = []
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post(f"/bot{self.token}/{{method}}", self._answer)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _answer(self, request: web.Request) -> web.Response:
        method, params = request.match_info["method"].lower(), dict(await request.post())
        result: Any = True
        if method == "getme":
            result = {"id": 777000, "is_bot": True, "first_name": "Bot", "username": "hook_bot"}
        elif method == "setwebhook":
            self.hooks.append(str(params["url"]))
        elif method == "sendmessage":
            self.texts.append(str(params["text"]))
            chat = {"id": int(str(params["chat_id"])), "type": "private"}
            result = {"message_id": len(self.texts), "date": 1, "chat": chat, "text": "sent"}
        return web.json_response({"ok": True, "result": result})


async def test_webhook_mode_serves_metrics_on_its_own_port(tmp_path: Path) -> None:
    token = "777000:HOOK-test"
    peer = WebhookPeer(token)
    webhook_port, metrics_port = free_port(), free_port()
    process = await start_python_m_bot(
        tmp_path,
        BOT_TOKEN=token,
        TELEGRAM_API_URL=await peer.start(),
        WEBHOOK_URL=f"http://127.0.0.1:{webhook_port}",
        WEBHOOK_SECRET="s3cret",
        WEBHOOK_PORT=str(webhook_port),
        METRICS_PORT=str(metrics_port),
    )
    try:
        for _ in range(300):  # start-up: migrations, then setWebhook
            if peer.hooks or process.returncode is not None:
                break
            await asyncio.sleep(0.1)
        assert peer.hooks, "the bot never called setWebhook"
        assert await get(metrics_port, "/healthz") == (200, "ok\n")
        assert (await get(metrics_port, "/readyz"))[0] == 200
        async with aiohttp.ClientSession() as client:
            posted = await client.post(
                f"http://127.0.0.1:{webhook_port}/webhook",
                json=start_update(5150),
                headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret"},
            )
            assert posted.status == 200
        scraped = await scrape_until_counted(metrics_port)
        assert scraped.value("smmbot_updates_total", handler="common.start", outcome="ok") == 1
        assert any("Hello" in text for text in peer.texts)
        await stop_python_m_bot(process, metrics_port)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await peer.stop()


async def test_a_taken_metrics_port_is_one_clear_line(tmp_path: Path) -> None:
    token = "777000:TAKEN-test"
    emulator = TelegramEmulator(token=token)
    url = await emulator.start()
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        process = await start_python_m_bot(
            tmp_path, BOT_TOKEN=token, TELEGRAM_API_URL=url, METRICS_PORT=str(port)
        )
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), 60)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            await emulator.stop()
    assert process.returncode == 2
    last = stderr.decode().strip().splitlines()[-1]  # after the start-up's INFO lines
    assert last == f"Cannot listen on METRICS_PORT {port} (Address already in use): " + (
        "choose a free port"
    )
    assert "Traceback" not in stderr.decode()
