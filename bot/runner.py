"""Running the bot: long polling (or a webhook), with a clean stop on SIGTERM/SIGINT."""

from __future__ import annotations

import logging

from aiogram import Bot, Dispatcher

from bot.app import Services, create_bot, create_dispatcher, create_services
from bot.config import Settings

log = logging.getLogger(__name__)


async def run_bot(settings: Settings) -> None:
    """Polls until a signal arrives, then stops tasks and closes every session."""
    services = await create_services(settings)
    bot = create_bot(settings)
    dispatcher = create_dispatcher(services)
    try:
        if settings.webhook_url:
            await _run_webhook(bot, dispatcher, services)
        else:
            await bot.delete_webhook(drop_pending_updates=False)
            await dispatcher.start_polling(
                bot, handle_signals=True, close_bot_session=False, polling_timeout=10
            )
    finally:
        await services.close()
        await bot.session.close()
        log.info("Stopped.")


async def _run_webhook(bot: Bot, dispatcher: Dispatcher, services: Services) -> None:
    """Webhook mode behind a load balancer: aiogram's handler checks the secret token."""
    import asyncio
    import signal

    from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
    from aiohttp import web

    settings = services.settings
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    app = web.Application()
    SimpleRequestHandler(dispatcher, bot, secret_token=secret).register(app, path="/webhook")
    setup_application(app, dispatcher, bot=bot)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, settings.webhook_host, settings.webhook_port)
    await site.start()
    public_url = (settings.webhook_url or "").rstrip("/")
    await bot.set_webhook(f"{public_url}/webhook", secret_token=secret)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("Webhook listening on %s:%s", settings.webhook_host, settings.webhook_port)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
