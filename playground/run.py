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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aiogram import Bot, Dispatcher
from aiohttp import web
from pydantic import create_model
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot import loop as event_loop
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
# With OPEN_TO_ALL=true the Stranger may order too, and the page says so.
OPEN_STRANGER = Persona(1999, "Stranger", "may order too (OPEN_TO_ALL=true)", may_order=True)
# In reseller mode anyone may top up and order (they pay first); OPEN_TO_ALL does not matter.
SHOP_STRANGER = Persona(1999, "Stranger", "may top up and order (BILLING=wallet)", may_order=True)
TEAM = Group(-100777, "Team")


def banner(url: str) -> str:
    """The first line the playground prints: where to point the browser."""
    return f"Playground: open {url} in your browser"


# The settings that shape how the bot behaves, which the playground takes from the environment
# and `.env` (like PLAYGROUND_PORT) so that limits and approvals can be tried offline. None of
# them can point the bot elsewhere or holds a secret: BOT_TOKEN, PANEL_API_*, DATABASE_URL,
# TELEGRAM_API_URL, WEBHOOK_*, FSM_STORAGE (and who is an admin) stay the playground's own, so a
# `.env` made for a real bot changes nothing else. Adding a setting is one line here (and one
# in the README's list).
USER_SETTINGS: tuple[str, ...] = (
    "MAX_ORDER_PRICE",
    "USER_DAILY_LIMIT",
    "LOW_BALANCE_ALERT",
    "OPEN_TO_ALL",
    "NOTIFY_ON",
    "DEFAULT_LANGUAGE",
    "POLL_INTERVAL",
    "POLL_AGING",
    # Reseller mode: `BILLING=wallet SHOP_CURRENCY=USD make run` tries the whole shop offline.
    "BILLING",
    "SHOP_CURRENCY",
    "EXCHANGE_RATE",
    "MARKUP_PERCENT",
    "STAR_PRICE",
    "TOPUP_AMOUNTS",
    "MIN_TOPUP",
    "SUPPORT_CONTACT",
    "TERMS_TEXT",
)
# In reseller mode Stars are offered even without a STAR_PRICE of the user's: one Star is
# worth this much of the shop currency (a user's STAR_PRICE wins).
PLAYGROUND_STAR_PRICE = "0.02"
# What the playground itself changes from the bot's defaults (a user's setting still wins).
PLAYGROUND_DEFAULTS: dict[str, Any] = {"poll_interval": POLL_INTERVAL, "panel_timeout": 10.0}


def playground_settings(
    *,
    telegram_api_url: str,
    panel_api_url: str,
    panel_api_key: str,
    database_url: str,
    user: Mapping[str, str] | None = None,
) -> Settings:
    """The bot's settings in the playground, validated by the bot's own `Settings`.

    Every field is passed, so nothing else of the environment or of a user's `.env` (which may
    hold a real token or a broken value) leaks in; `user` holds the `USER_SETTINGS` the user
    gave (see `user_settings`), by lower-case name. A bad value raises `ConfigError`.
    """
    values: dict[str, Any] = {
        name: field.get_default(call_default_factory=True)
        for name, field in Settings.model_fields.items()
        if not field.is_required()
    }
    values.update(PLAYGROUND_DEFAULTS)
    allowed = {name.lower() for name in USER_SETTINGS}
    values.update({name: value for name, value in (user or {}).items() if name in allowed})
    if values.get("billing") == "wallet" and values.get("star_price") is None:
        values["star_price"] = PLAYGROUND_STAR_PRICE
    values.update(
        bot_token=TOKEN,
        telegram_api_url=telegram_api_url,
        panel_api_url=panel_api_url,
        panel_api_key=panel_api_key,
        database_url=database_url,
        admin_ids=[ADMIN.id],
        allowed_user_ids=[CUSTOMER.id],
        notify_chat_ids=[TEAM.id],
    )
    return load_settings(_env_file=None, **values)


class _Environment(BaseSettings):
    """What the playground reads from the environment or `.env`, as text: PLAYGROUND_PORT and
    the `USER_SETTINGS` (fields added below). The bot's own rules apply: the environment beats
    `.env`, names in any case, empty values ignored. Nothing else is read."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    playground_port: str | None = None


_USER_FIELDS: dict[str, Any] = {name.lower(): (str | None, None) for name in USER_SETTINGS}
_UserEnvironment = create_model("_UserEnvironment", __base__=_Environment, **_USER_FIELDS)


def _environment() -> dict[str, str]:
    values = _UserEnvironment().model_dump()
    return {name: str(value) for name, value in values.items() if value is not None}


def user_settings() -> dict[str, str]:
    """The `USER_SETTINGS` set in the environment or `.env`, by lower-case name, as text."""
    found = _environment()
    return {name.lower(): found[name.lower()] for name in USER_SETTINGS if name.lower() in found}


def configured_port() -> int:
    raw = _environment().get("playground_port", str(DEFAULT_PORT))
    try:
        port = int(raw)
    except ValueError:
        raise ConfigError("PLAYGROUND_PORT is invalid: expected a port number") from None
    if not 0 <= port <= 65535:
        raise ConfigError("PLAYGROUND_PORT is invalid: expected a port number (0-65535)")
    return port


def check_user_settings(user: Mapping[str, str]) -> Settings:
    """The settings the playground would run with; `ConfigError` names a bad user value."""
    return playground_settings(
        telegram_api_url="http://127.0.0.1",
        panel_api_url="http://127.0.0.1/api/v2",
        panel_api_key=SANDBOX_KEY,
        database_url=f"sqlite+aiosqlite:///{DEFAULT_DATABASE}",
        user=user,
    )


def changed_settings(user: Mapping[str, str]) -> list[str]:
    """`NAME=value` for each user setting that changes what the playground does."""
    if not user:
        return []
    own, theirs = check_user_settings({}), check_user_settings(user)
    return [
        f"{name}={user[name.lower()]}"
        for name in USER_SETTINGS
        if name.lower() in user and getattr(own, name.lower()) != getattr(theirs, name.lower())
    ]


def personas(settings: Settings) -> tuple[Persona, ...]:
    """Who the page can act as, described as the settings make them."""
    if settings.wallet_mode:
        return (ADMIN, CUSTOMER, SHOP_STRANGER)
    return (ADMIN, CUSTOMER, OPEN_STRANGER if settings.open_to_all else STRANGER)


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
        user: Mapping[str, str] | None = None,
    ) -> None:
        """`user`: the `USER_SETTINGS` to run with (see `user_settings`), none by default; a
        bad value raises `ConfigError` here, before anything starts."""
        self.database_path = database_path
        self.user_settings = dict(user or {})
        self.personas = personas(check_user_settings(self.user_settings))
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
        for persona in self.personas:
            # No Telegram language: the bot speaks DEFAULT_LANGUAGE until /language.
            self.emulator.user(persona.id, first_name=persona.name, language_code=None)
        self.emulator.add_group(TEAM.id, TEAM.title)
        return playground_settings(
            telegram_api_url=telegram_url,
            panel_api_url=panel_url,
            panel_api_key=SANDBOX_KEY,
            database_url=f"sqlite+aiosqlite:///{self.database_path}",
            user=self.user_settings,
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
        app = create_app(
            self.emulator,
            self.sandbox,
            personas=self.personas,
            group=TEAM,
            settings=changed_settings(self.user_settings),
        )
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


def _hints(url: str, user: Mapping[str, str], people: Sequence[Persona]) -> list[str]:
    who = ", ".join(f"{p.name} ({p.id}, {p.role})" for p in people)
    lines = [
        banner(url),
        f"  People: {who}; the {TEAM.title} group ({TEAM.id}) gets completion notices.",
    ]
    changed = changed_settings(user)
    if changed:
        lines.append(f"  Your settings (environment or .env): {', '.join(changed)}.")
    lines.append("  Everything is offline and starts fresh each time. Press Ctrl-C to stop.")
    return lines


async def _serve(port: int, user: Mapping[str, str]) -> int:
    playground = Playground(user=user)
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
    print("\n".join(_hints(url, user, playground.personas)), flush=True)
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
        user = user_settings()
        check_user_settings(user)
    except ConfigError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        return 2
    try:
        return event_loop.run(_serve(port, user))
    except KeyboardInterrupt:
        return 130
