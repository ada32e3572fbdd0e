"""Running the bot: long polling, or a webhook behind a load balancer; a clean stop on
SIGTERM/SIGINT.

Telegram is asked first (`getMe`), before the database or the panel is opened: a token it
rejects, a malformed one or an unreachable TELEGRAM_API_URL stops start-up with a `StartupError`,
one line saying what to check, after everything opened so far is closed again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from aiogram import Bot, Dispatcher
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramUnauthorizedError,
)
from aiogram.utils.token import TokenValidationError
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

from bot.app import Services, create_bot, create_dispatcher, create_services
from bot.config import Settings

log = logging.getLogger(__name__)
WEBHOOK_PATH = "/webhook"
EXIT_CONFIG = 2  # a setting is wrong: starting again will not help
EXIT_UNAVAILABLE = 1  # Telegram could not be reached: starting again later may
TOKEN_CHECK_TIMEOUT = 15  # seconds for the first getMe


class StartupError(Exception):
    """Start-up failed for a reason the operator can fix; `str()` is one line naming what."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def describe_startup_failure(error: BaseException, settings: Settings) -> StartupError | None:
    """What a Telegram failure during start-up means for the operator (None: not Telegram's)."""
    api_url = settings.telegram_api_url
    if isinstance(error, TokenValidationError):
        return StartupError(
            "BOT_TOKEN is malformed: it looks like 123456789:AAE… (as @BotFather gives it), "
            "with no spaces or quotes",
            EXIT_CONFIG,
        )
    method = error.method.__api_method__ if isinstance(error, TelegramAPIError) else "a call"
    if isinstance(error, TelegramUnauthorizedError):
        return StartupError(
            f"BOT_TOKEN was rejected by Telegram ({method}: 401 Unauthorized): "
            "check the token @BotFather gave you (revoked or mistyped?)",
            EXIT_CONFIG,
        )
    if isinstance(error, TelegramNotFound):
        return StartupError(
            f"Telegram answered {method} with 404 Not Found: check BOT_TOKEN, "
            f"and TELEGRAM_API_URL ({api_url})",
            EXIT_CONFIG,
        )
    if isinstance(error, TelegramBadRequest) and method == "setWebhook":
        return StartupError(
            f"Telegram refused WEBHOOK_URL ({error.message}): it must be a public https URL",
            EXIT_CONFIG,
        )
    if isinstance(error, TelegramNetworkError):
        return StartupError(
            f"Cannot reach the Telegram Bot API at {api_url} ({error.message}): "
            "check TELEGRAM_API_URL and the network",
            EXIT_UNAVAILABLE,
        )
    if isinstance(error, ClientDecodeError):
        return StartupError(
            f"{api_url} does not answer like a Telegram Bot API server: check TELEGRAM_API_URL",
            EXIT_UNAVAILABLE,
        )
    if isinstance(error, TelegramAPIError):
        return StartupError(
            f"Telegram answered {method} with an error ({error.message}); "
            f"check TELEGRAM_API_URL ({api_url}) or try again later",
            EXIT_UNAVAILABLE,
        )
    return None


async def run_bot(settings: Settings) -> None:
    """Runs until a signal arrives, then stops tasks and closes every session.

    Raises StartupError when Telegram refuses the token or cannot be reached.
    """
    try:
        await _run(settings)
    except (TokenValidationError, TelegramAPIError, ClientDecodeError) as error:
        described = describe_startup_failure(error, settings)
        if described is None:  # pragma: no cover - every one of those types is described
            raise
        raise described from error


async def _run(settings: Settings) -> None:
    bot = create_bot(settings)
    try:
        me = await bot.get_me(request_timeout=TOKEN_CHECK_TIMEOUT)
        log.info("Signed in to Telegram as @%s", me.username)
        services = await create_services(settings)
        try:
            await start_metrics(services)
            dispatcher = create_dispatcher(services)
            if settings.webhook_url:
                await _run_webhook(bot, dispatcher, settings)
            else:
                await bot.delete_webhook(drop_pending_updates=False)
                await dispatcher.start_polling(
                    bot, handle_signals=True, close_bot_session=False, polling_timeout=10
                )
        finally:
            await services.close()
    finally:
        await bot.session.close()
    log.info("Stopped.")


async def start_metrics(services: Services) -> None:
    """The metrics and health site on METRICS_PORT, its own port in both modes (none when
    unset); `services.close()` stops it."""
    port = services.settings.metrics_port
    if port is None:
        return
    try:
        await services.start_metrics_site(port=port)
    except OSError as error:  # taken by another process, or a port below 1024 without rights
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise StartupError(
            f"Cannot listen on METRICS_PORT {port} ({reason}): choose a free port", EXIT_CONFIG
        ) from error
    log.info("Metrics, /healthz and /readyz on port %s", port)


def create_webhook_app(bot: Bot, dispatcher: Dispatcher, secret: str | None) -> web.Application:
    """aiogram's webhook handler (it checks Telegram's secret token header) on WEBHOOK_PATH;
    the dispatcher's startup and shutdown run with the web app."""
    app = web.Application()
    SimpleRequestHandler(dispatcher, bot, secret_token=secret).register(app, path=WEBHOOK_PATH)
    setup_application(app, dispatcher, bot=bot)
    return app


async def _run_webhook(bot: Bot, dispatcher: Dispatcher, settings: Settings) -> None:
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    runner = web.AppRunner(create_webhook_app(bot, dispatcher, secret))
    await runner.setup()
    await web.TCPSite(runner, settings.webhook_host, settings.webhook_port).start()
    public_url = (settings.webhook_url or "").rstrip("/")
    await bot.set_webhook(f"{public_url}{WEBHOOK_PATH}", secret_token=secret)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("Webhook listening on %s:%s", settings.webhook_host, settings.webhook_port)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
