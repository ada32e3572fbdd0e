"""Running the bot: long polling, or a webhook behind a load balancer; a clean stop on
SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiogram import Bot, Dispatcher
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

from bot.app import create_bot, create_dispatcher, create_services
from bot.config import Settings

log = logging.getLogger(__name__)
WEBHOOK_PATH = "/webhook"


async def run_bot(settings: Settings) -> None:
    """Runs until a signal arrives, then stops tasks and closes every session."""
    services = await create_services(settings)
    bot = create_bot(settings)
    dispatcher = create_dispatcher(services)
    try:
        if settings.webhook_url:
            await _run_webhook(bot, dispatcher, settings)
        else:
            await bot.delete_webhook(drop_pending_updates=False)
            await dispatcher.start_polling(
                bot, handle_signals=True, close_bot_session=False, polling_timeout=10
            )
    finally:
        await services.close()
        await bot.session.close()
        log.info("Stopped.")


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
