"""The bot under test: the real dispatcher and a real aiogram Bot, over HTTP, against the
Telegram emulator and the sandbox panel. Tests read like scenarios on top of it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.types import TelegramObject

from bot.app import Services, create_bot, create_dispatcher, create_services
from bot.config import Settings, load_settings
from playground.sandbox import SandboxPanel
from playground.telegram import ChatUser, TelegramEmulator

TOKEN = "123456:TEST-token"
ADMIN = 1000
ALICE = 1001
BOB = 1002
STRANGER = 1999
GROUP = -100777


@dataclass
class BotUnderTest:
    emulator: TelegramEmulator
    sandbox: SandboxPanel
    settings: Settings
    services: Services | None = None
    bot: Bot | None = None
    dispatcher: Dispatcher | None = None
    _polling: asyncio.Task[None] | None = field(default=None, repr=False)
    in_flight: int = 0  # updates the dispatcher is handling right now

    async def _count_in_flight(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        self.in_flight += 1
        try:
            return await handler(event, data)
        finally:
            self.in_flight -= 1

    def user(self, user_id: int, name: str = "User", language: str = "en") -> ChatUser:
        return self.emulator.user(user_id, first_name=name, language_code=language)

    async def start(self) -> None:
        self.services = await create_services(self.settings)
        self.bot = create_bot(self.settings)
        self.dispatcher = create_dispatcher(self.services)
        self.dispatcher.update.outer_middleware(self._count_in_flight)
        self.emulator.bot_is_busy = lambda: self.in_flight > 0
        self._polling = asyncio.create_task(
            self.dispatcher.start_polling(
                self.bot, handle_signals=False, close_bot_session=False, polling_timeout=1
            )
        )
        await self.emulator.wait_until(lambda: bool(self.emulator.calls("getUpdates")), 5)

    async def stop(self) -> None:
        if self.dispatcher is not None and self._polling is not None:
            with contextlib.suppress(RuntimeError):
                await self.dispatcher.stop_polling()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._polling, 10)
        if self.services is not None:
            await self.services.close()
        if self.bot is not None:
            await self.bot.session.close()
        self.services = self.bot = self.dispatcher = self._polling = None

    async def restart(self) -> None:
        """Stop and start again on the same database, as after a crash or a deploy."""
        await self.stop()
        await self.start()


async def start_bot(tmp_path: Path, **overrides: Any) -> BotUnderTest:
    emulator = TelegramEmulator(token=TOKEN, privacy_mode=True)
    telegram_url = await emulator.start()
    sandbox = overrides.pop("sandbox", None) or SandboxPanel(api_key="sandbox-key")
    panel_url = await sandbox.start()
    values: dict[str, Any] = {
        "bot_token": TOKEN,
        "telegram_api_url": telegram_url,
        "panel_api_url": panel_url,
        "panel_api_key": sandbox.api_key,
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        "admin_ids": [ADMIN],
        "allowed_user_ids": [ALICE, BOB],
        "panel_timeout": 2.0,
    }
    values.update(overrides)
    harness = BotUnderTest(emulator=emulator, sandbox=sandbox, settings=load_settings(**values))
    await harness.start()
    return harness


async def stop_bot(harness: BotUnderTest) -> None:
    await harness.stop()
    await harness.sandbox.stop()
    await harness.emulator.stop()
