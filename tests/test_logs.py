"""No secret reaches a log line: the redaction filter, and a Telegram session that never follows
a redirect (the Bot API URL holds the token)."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram.exceptions import TelegramNetworkError
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.app import create_bot
from bot.config import Settings
from bot.logs import MASK, RedactSecrets, install_redaction, secrets_of
from bot.outbox import OutboxSender
from storage import outbox

TOKEN = "123456:AAE-secret-token-part"
PANEL_KEY = "panel-key-0123456789"
DB_PASSWORD = "db-p@ss/word"  # URL-encoded in the URL
REDIS_PASSWORD = "redis-pass-42"


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "bot_token": TOKEN,
        "panel_api_key": PANEL_KEY,
        "database_url": "postgresql+asyncpg://bot:db-p%40ss%2Fword@db.internal:5432/bot",
        "fsm_storage": f"redis://:{REDIS_PASSWORD}@redis.internal:6379/0",
    }
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


def _logger_into(stream: io.StringIO) -> tuple[logging.Logger, logging.Handler]:
    logger = logging.getLogger(f"tests.logs.{id(stream)}")
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return logger, handler


def test_secrets_of_settings() -> None:
    found = secrets_of(make_settings())
    assert {TOKEN, "AAE-secret-token-part", PANEL_KEY, DB_PASSWORD, REDIS_PASSWORD} <= set(found)


def test_secrets_in_args_exceptions_and_tracebacks_are_masked() -> None:
    stream = io.StringIO()
    logger, handler = _logger_into(stream)
    install_redaction(secrets_of(make_settings()), [handler])
    url = f"https://api.telegram.org/bot{TOKEN}/getMe"
    try:
        try:
            raise ValueError(f"while calling {url}")
        except ValueError as inner:
            raise RuntimeError(f"key={PANEL_KEY} redis={REDIS_PASSWORD}") from inner
    except RuntimeError:
        logger.exception("request to %s failed (database %s)", url, make_settings().database_url)
    logger.warning("token %(token)s", {"token": TOKEN})
    logger.info("half %s", TOKEN.split(":")[1], stack_info=True)
    logger.info("decoded %s", DB_PASSWORD)
    logger.info("some other url: postgresql://u:hunter22@elsewhere/db")

    text = stream.getvalue()
    for secret in (TOKEN, "AAE-secret-token-part", PANEL_KEY, DB_PASSWORD, "db-p%40ss%2Fword"):
        assert secret not in text
    assert REDIS_PASSWORD not in text and "hunter22" not in text
    assert "Traceback" in text and "RuntimeError" in text and "ValueError" in text
    assert f"bot{MASK}/getMe" in text and "postgresql://u:***@elsewhere/db" in text
    logger.removeHandler(handler)


def test_the_filter_is_installed_once_and_keeps_every_record() -> None:
    handler = logging.StreamHandler(io.StringIO())
    first = install_redaction(["secret-one"], [handler])
    second = install_redaction(["secret-two"], [handler])
    assert first is second and handler.filters == [first]
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s %s %d", ("a", "b"), None)
    assert first.filter(record)  # a malformed record is kept, not raised on
    assert "a" in record.getMessage()
    assert RedactSecrets(["abc"]).redact("abc") == "abc"  # too short to be a secret


class RedirectingTelegram:
    """A Bot API peer that answers every call with a 302 to the same token URL."""

    def __init__(self) -> None:
        self.requests = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._serve)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _serve(self, request: web.Request) -> web.Response:
        self.requests += 1
        raise web.HTTPFound(location=str(request.url))


@pytest.fixture
async def redirecting() -> AsyncIterator[tuple[RedirectingTelegram, str]]:
    peer = RedirectingTelegram()
    url = await peer.start()
    yield peer, url
    await peer.stop()


async def test_a_redirect_is_not_followed(redirecting: tuple[RedirectingTelegram, str]) -> None:
    peer, url = redirecting
    bot = create_bot(make_settings(telegram_api_url=url))
    try:
        with pytest.raises(TelegramNetworkError) as raised:
            await bot.get_me()
    finally:
        await bot.session.close()
    assert peer.requests == 1
    assert "302" in str(raised.value) and TOKEN not in str(raised.value)


async def test_the_outbox_logs_no_token_on_a_redirect(
    redirecting: tuple[RedirectingTelegram, str],
    sessions: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    peer, url = redirecting
    settings = make_settings(telegram_api_url=url)
    install_redaction(secrets_of(settings), [caplog.handler])
    caplog.set_level(logging.DEBUG)
    bot = create_bot(settings)
    try:
        async with sessions.begin() as session:
            await outbox.enqueue(session, 42, "hello")
        report = await OutboxSender(bot, sessions, settings).drain_once()
    finally:
        await bot.session.close()
    assert report.postponed == 1  # a transient failure: tried again later
    assert peer.requests == 1
    assert "302" in caplog.text
    assert TOKEN not in caplog.text and "AAE-secret-token-part" not in caplog.text
