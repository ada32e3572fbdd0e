"""`python -m bot playground`: the real bot, an emulated Telegram and a sandbox panel, one process.

Everything runs offline on 127.0.0.1: the Telegram Bot API emulator, the sandbox panel, the bot
itself (the production dispatcher, poller and outbox) and a small web chat that plays the
Telegram app. The database and the sandbox start fresh on every run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from aiogram import Bot, Dispatcher
from aiohttp import web
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.app import Services, create_bot, create_dispatcher, create_services
from bot.config import ConfigError, Settings, load_settings
from playground.sandbox import SandboxPanel
from playground.telegram import TelegramEmulator
from playground.web import Group, Persona, create_app

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_DATABASE = Path("data/playground.db")
TOKEN = "100000:PLAYGROUND"
SANDBOX_KEY = "playground-key"
# One sandbox step is Pending → In progress → done, so an order completes in about 16 s.
STEP_SECONDS = 8.0
POLL_INTERVAL = 2.0
STOP_TIMEOUT = 10.0

ADMIN = Persona(1000, "Admin", "the account owner", may_order=True)
CUSTOMER = Persona(1001, "Customer", "allowed to order", may_order=True)
STRANGER = Persona(1999, "Stranger", "not allowed to order", may_order=False)
PERSONAS = (ADMIN, CUSTOMER, STRANGER)
TEAM = Group(-100777, "Team")


def banner(url: str) -> str:
    """The first line the playground prints: where to point the browser."""
    return f"Playground: open {url} in your browser"


def playground_settings(
    *, telegram_api_url: str, panel_api_url: str, panel_api_key: str, database_url: str
) -> Settings:
    """Settings that depend on nothing outside: every field is passed, so neither the
    environment nor a user's `.env` (which may hold a real token or a broken value) leaks in."""
    values: dict[str, Any] = {
        name: field.get_default(call_default_factory=True)
        for name, field in Settings.model_fields.items()
        if not field.is_required()
    }
    values.update(
        bot_token=TOKEN,
        telegram_api_url=telegram_api_url,
        panel_api_url=panel_api_url,
        panel_api_key=panel_api_key,
        database_url=database_url,
        admin_ids=[ADMIN.id],
        allowed_user_ids=[CUSTOMER.id],
        notify_chat_ids=[TEAM.id],
        poll_interval=POLL_INTERVAL,
        panel_timeout=10.0,
    )
    return load_settings(_env_file=None, **values)


class _PortSetting(BaseSettings):
    """PLAYGROUND_PORT alone, from the environment or `.env`; other settings are ignored."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    playground_port: int = DEFAULT_PORT


def configured_port() -> int:
    try:
        port = _PortSetting().playground_port
    except ValueError as error:  # pydantic's ValidationError is a ValueError
        raise ConfigError("PLAYGROUND_PORT is invalid: expected a port number") from error
    if not 0 <= port <= 65535:
        raise ConfigError("PLAYGROUND_PORT is invalid: expected a port number (0-65535)")
    return port


def _delete_database(path: Path) -> None:
    """A fresh start: the database goes, with SQLite's side files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-journal", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


class Playground:
    """The whole offline world; `start()` returns the web chat's URL, `stop()` tears it down."""

    def __init__(
        self,
        *,
        database_path: Path = DEFAULT_DATABASE,
        host: str = HOST,
        step_seconds: float = STEP_SECONDS,
    ) -> None:
        self.database_path = database_path
        self.host = host
        self.emulator = TelegramEmulator(
            token=TOKEN, username="smm_playground_bot", first_name="SMM Panel Bot"
        )
        self.sandbox = SandboxPanel(api_key=SANDBOX_KEY, step_seconds=step_seconds)
        self.services: Services | None = None
        self.bot: Bot | None = None
        self.dispatcher: Dispatcher | None = None
        self.polling: asyncio.Task[None] | None = None
        self._web: web.AppRunner | None = None
        self.url: str | None = None

    async def start(self, port: int = 0) -> str:
        """Start everything; on any failure, what was started is stopped again."""
        try:
            settings = await self._start_peers()
            await self._start_bot(settings)
            return await self._start_web(port)
        except BaseException:
            await self.stop()
            raise

    async def _start_peers(self) -> Settings:
        _delete_database(self.database_path)
        telegram_url = await self.emulator.start(self.host, 0)
        panel_url = await self.sandbox.start(self.host, 0)
        for persona in PERSONAS:
            self.emulator.user(persona.id, first_name=persona.name, language_code="en")
        self.emulator.add_group(TEAM.id, TEAM.title)
        return playground_settings(
            telegram_api_url=telegram_url,
            panel_api_url=panel_url,
            panel_api_key=SANDBOX_KEY,
            database_url=f"sqlite+aiosqlite:///{self.database_path}",
        )

    async def _start_bot(self, settings: Settings) -> None:
        self.services = await create_services(settings)
        self.bot = create_bot(settings)
        self.dispatcher = create_dispatcher(self.services)
        self.polling = asyncio.create_task(
            self.dispatcher.start_polling(
                self.bot, handle_signals=False, close_bot_session=False, polling_timeout=10
            ),
            name="playground-polling",
        )
        # The page is only useful once the bot listens.
        polling = await self.emulator.wait_until(
            lambda: bool(self.emulator.calls("getUpdates")) or self.polling_stopped, 30
        )
        if not polling or self.polling_stopped:
            raise RuntimeError("the bot did not start polling the emulator")

    async def _start_web(self, port: int) -> str:
        app = create_app(self.emulator, self.sandbox, personas=PERSONAS, group=TEAM)
        self._web = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._web.setup()
        await web.TCPSite(self._web, self.host, port).start()
        self.url = f"http://{self.host}:{self._web.addresses[0][1]}"
        return self.url

    @property
    def polling_stopped(self) -> bool:
        return self.polling is not None and self.polling.done()

    async def wait(self, stop: asyncio.Event) -> None:
        """Until `stop` is set, or the bot stops polling on its own (a crash)."""
        waiter = asyncio.create_task(stop.wait())
        watched: set[asyncio.Task[Any]] = {waiter}
        if self.polling is not None:
            watched.add(self.polling)
        try:
            await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()

    async def stop(self) -> None:
        """Stop polling, close the bot's services and session, then the peers and the page.

        The emulator stops before the web server so that the page's long polls return at once.
        """
        await self._stop_polling()
        if self.services is not None:
            await self.services.close()
        if self.bot is not None:
            await self.bot.session.close()
        await self.emulator.stop()
        if self._web is not None:
            await self._web.cleanup()
        await self.sandbox.stop()
        self.services = self.bot = self.dispatcher = self.polling = self._web = None

    async def _stop_polling(self) -> None:
        if self.polling is None:
            return
        if self.dispatcher is not None and not self.polling.done():
            with contextlib.suppress(RuntimeError):  # polling had not really started yet
                await self.dispatcher.stop_polling()
        try:
            await asyncio.wait_for(self.polling, STOP_TIMEOUT)
        except (asyncio.CancelledError, TimeoutError):
            log.warning("the bot did not stop polling in time")
        except Exception:
            log.exception("the bot stopped polling with an error")


def _hints(url: str) -> list[str]:
    people = ", ".join(f"{p.name} ({p.id}, {p.role})" for p in PERSONAS)
    return [
        banner(url),
        f"  People: {people}; the {TEAM.title} group ({TEAM.id}) gets completion notices.",
        "  Everything is offline and starts fresh each time. Press Ctrl-C to stop.",
    ]


async def _serve(port: int) -> int:
    playground = Playground()
    try:
        url = await playground.start(port)
    except OSError as error:
        print(f"Playground: could not start: {error}", file=sys.stderr)
        print("  Is it running already? Another port: PLAYGROUND_PORT=8090", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C raises instead
            loop.add_signal_handler(sig, stop.set)
    print("\n".join(_hints(url)), flush=True)
    try:
        await playground.wait(stop)
        crashed = not stop.is_set()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            # A second Ctrl-C during shutdown interrupts it the usual way.
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)
        await playground.stop()
    if crashed:
        print("Playground: the bot stopped unexpectedly (see the log above).", file=sys.stderr)
        return 1
    print("Playground stopped.", flush=True)
    return 0


def run_playground() -> int:
    """Entry point of `python -m bot playground`; returns the exit status."""
    # Quiet by default so the URL stays the first thing on screen; warnings still show.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        port = configured_port()
    except ConfigError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(port))
    except KeyboardInterrupt:
        return 130
