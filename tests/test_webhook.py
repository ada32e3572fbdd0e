"""Webhook mode: updates posted with Telegram's secret token reach the same dispatcher."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_bot, create_dispatcher, create_services
from bot.config import load_settings
from bot.runner import WEBHOOK_PATH, create_webhook_app
from playground.sandbox import SandboxPanel
from playground.telegram import TelegramEmulator

TOKEN = "424242:WEBHOOK"


def start_update(update_id: int, user_id: int) -> dict[str, object]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1_700_000_000,
            "chat": {"id": user_id, "type": "private", "first_name": "Web"},
            "from": {"id": user_id, "is_bot": False, "first_name": "Web"},
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }


async def test_webhook_checks_the_secret_and_answers(tmp_path: Path) -> None:
    emulator = TelegramEmulator(token=TOKEN)
    telegram_url = await emulator.start()
    emulator.user(5150, first_name="Web")  # the chat exists on the Telegram side
    sandbox = SandboxPanel()
    panel_url = await sandbox.start()
    settings = load_settings(
        bot_token=TOKEN,
        telegram_api_url=telegram_url,
        panel_api_url=panel_url,
        panel_api_key=sandbox.api_key,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'w.db'}",
    )
    services = await create_services(settings)
    bot = create_bot(settings)
    app = create_webhook_app(bot, create_dispatcher(services), secret="s3cret")
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        refused = await client.post(WEBHOOK_PATH, json=start_update(1, 5150))
        assert refused.status == 401
        accepted = await client.post(
            WEBHOOK_PATH,
            json=start_update(2, 5150),
            headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret"},
        )
        assert accepted.status == 200
        await emulator.wait_until(
            lambda: any("Hello, Web" in m.text for m in emulator.messages(5150)), 10
        )
    finally:
        await client.close()
        await services.close()
        await bot.session.close()
        await sandbox.stop()
        await emulator.stop()
