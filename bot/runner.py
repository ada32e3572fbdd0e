"""Running the bot: long polling, or a webhook behind a load balancer; a clean stop on
SIGTERM/SIGINT. At most UPDATE_CONCURRENCY updates are handled at once in either mode.

In webhook mode Telegram is answered only once the update was handled, so an update is either
handled or sent again (see docs/guarantees.md for the bounds and the polling-mode window).

Telegram is asked first (`getMe`), before the database or the panel is opened: a token it
rejects, a malformed one or an unreachable TELEGRAM_API_URL stops start-up with a `StartupError`,
one line saying what to check, after everything opened so far is closed again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramUnauthorizedError,
)
from aiogram.methods import TelegramMethod
from aiogram.utils.token import TokenValidationError
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

from bot.app import Services, create_bot, create_dispatcher, create_services
from bot.config import ConfigError, Settings
from bot.loop import settle_start_up_objects
from bot.panel.client import add_deadline

log = logging.getLogger(__name__)
WEBHOOK_PATH = "/webhook"
EXIT_CONFIG = 2  # a setting is wrong: starting again will not help
EXIT_UNAVAILABLE = 1  # Telegram could not be reached: starting again later may
TOKEN_CHECK_TIMEOUT = 15  # seconds for the first getMe
# Telegram gives up on a webhook request after about a minute and sends the update again.
# Every request is answered within this bound (see UpdateHandler for how).
ANSWER_WITHIN = 50.0
# What a handler may spend beside one `add` (the database, Telegram's answers).
HANDLER_MARGIN = 10.0


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
    except ConfigError as error:  # found once the database is open (SHOP_CURRENCY)
        raise StartupError(str(error), EXIT_CONFIG) from error


async def _run(settings: Settings) -> None:
    bot = create_bot(settings)
    try:
        me = await bot.get_me(request_timeout=TOKEN_CHECK_TIMEOUT)
        log.info("Signed in to Telegram as @%s", me.username)
        services = await create_services(settings)
        try:
            await start_metrics(services)
            dispatcher = create_dispatcher(services)
            dispatcher.startup.register(settle_start_up_objects)  # after the app's own
            if settings.webhook_url:
                await _run_webhook(bot, dispatcher, settings)
            else:
                await bot.delete_webhook(drop_pending_updates=False)
                await dispatcher.start_polling(
                    bot,
                    handle_signals=True,
                    close_bot_session=False,
                    polling_timeout=10,
                    tasks_concurrency_limit=settings.update_concurrency,
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


class UpdateHandler(SimpleRequestHandler):
    """aiogram's webhook handler (it checks Telegram's secret token header) that answers
    Telegram only after the update was handled, at most `concurrency` updates at once.

    Answered 200 once handled; a handler that raises (past the error handlers) is answered
    500, so Telegram sends the update again. Every request is answered within `answer_within`
    of its arrival, under Telegram's own timeout: one that found no free slot by then is turned
    away unhandled (503: Telegram sends it again), and one whose handler is still running is
    acknowledged and finished in the background (it started, and a second delivery now would
    only race it). Handlers are bounded well under that (docs/guarantees.md), so the last case
    means something hangs and is logged.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        bot: Bot,
        *,
        secret_token: str | None,
        concurrency: int,
        answer_within: float = ANSWER_WITHIN,
    ) -> None:
        super().__init__(dispatcher, bot, handle_in_background=False, secret_token=secret_token)
        self._slots = asyncio.Semaphore(concurrency)
        self._answer_within = answer_within
        self._handling: set[asyncio.Future[Any]] = set()  # handlers, and late answers

    async def _handle_request(self, bot: Bot, request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._answer_within
        update: dict[str, Any] = await request.json(loads=bot.session.json_loads)
        update_id = update.get("update_id")
        try:
            async with asyncio.timeout_at(deadline):
                await self._slots.acquire()
        except TimeoutError:
            log.warning(
                "update %s waited %ss for a free slot: left to Telegram to resend",
                update_id,
                self._answer_within,
            )
            return web.Response(status=503, text="busy")
        # A task of its own: a dropped connection or a late answer never cancels a handler.
        handling = asyncio.create_task(self._feed(bot, update))
        self._handling.add(handling)
        handling.add_done_callback(self._handling.discard)
        done, _ = await asyncio.wait({handling}, timeout=max(0.0, deadline - loop.time()))
        if not done:
            log.warning(
                "update %s still handled after %ss: acknowledged, it finishes in the background",
                update_id,
                self._answer_within,
            )
            handling.add_done_callback(lambda task: self._finish_late(bot, task, update_id))
            return web.json_response({}, dumps=bot.session.json_dumps)
        return web.Response(body=self._build_response_writer(bot=bot, result=handling.result()))

    async def _feed(self, bot: Bot, update: dict[str, Any]) -> TelegramMethod[Any] | None:
        try:
            result = await self.dispatcher.feed_raw_update(bot, update, **self.data)
        finally:
            self._slots.release()
        return result if isinstance(result, TelegramMethod) else None

    def _finish_late(
        self, bot: Bot, task: asyncio.Task[TelegramMethod[Any] | None], update_id: object
    ) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error("update %s failed in the background", update_id, exc_info=error)
            return
        result = task.result()
        if result is not None:  # a method returned as the webhook answer: call it instead
            late_answer = asyncio.ensure_future(self.dispatcher.silent_call_request(bot, result))
            self._handling.add(late_answer)
            late_answer.add_done_callback(self._handling.discard)

    async def close(self) -> None:
        """Let the updates in hand finish (within the answer bound) before the bot session
        closes: they are answered as handled, not dropped."""
        if self._handling:
            await asyncio.wait(set(self._handling), timeout=self._answer_within)
        await super().close()


def create_webhook_app(
    bot: Bot, dispatcher: Dispatcher, secret: str | None, *, concurrency: int | None = None
) -> web.Application:
    """The webhook (`UpdateHandler`) on WEBHOOK_PATH; the dispatcher's startup and shutdown run
    with the web app. `concurrency` defaults to the settings' UPDATE_CONCURRENCY."""
    if concurrency is None:
        settings: Settings = dispatcher["settings"]
        concurrency = settings.update_concurrency
    app = web.Application()
    handler = UpdateHandler(dispatcher, bot, secret_token=secret, concurrency=concurrency)
    handler.register(app, path=WEBHOOK_PATH)
    setup_application(app, dispatcher, bot=bot)
    return app


def warn_of_slow_orders(settings: Settings) -> None:
    """Confirm waits for `add`, which takes up to 2 × PANEL_TIMEOUT: past the answer bound,
    a confirmation would be acknowledged before it is handled."""
    slowest = add_deadline(settings.panel_timeout)
    if slowest > ANSWER_WITHIN - HANDLER_MARGIN:
        log.warning(
            "PANEL_TIMEOUT=%s lets placing an order take up to %ss, too close to Telegram's "
            "webhook timeout (updates are answered within %ss): set PANEL_TIMEOUT to %s or less",
            settings.panel_timeout,
            slowest,
            ANSWER_WITHIN,
            (ANSWER_WITHIN - HANDLER_MARGIN) / 2,
        )


async def _run_webhook(bot: Bot, dispatcher: Dispatcher, settings: Settings) -> None:
    warn_of_slow_orders(settings)
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
