"""Wiring: the factories that build the bot, so the product, the tests and the benchmarks run the
same code. The only module that knows both the core (`bot/`) and the routers (`handlers/`).

`Services` is the container of long-lived dependencies; they reach handlers as Dispatcher kwargs.
No database session reaches a handler: each service owns its units of work.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import orjson
from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramNetworkError
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, DefaultKeyBuilder
from aiogram.fsm.storage.memory import SimpleEventIsolation
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiogram.types import BotCommand, BotCommandScopeDefault
from aiogram.utils.i18n import I18n
from aiohttp import ClientError, ClientTimeout, web
from pydantic import SecretStr
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.admin import Reconciliation, Stats
from bot.billing import Billing, ShopCurrencyMismatch, check_shop_currency
from bot.catalog import Catalog, sold_from_wallets
from bot.config import ConfigError, Settings
from bot.i18n import create_i18n
from bot.invalidation import CHANNEL, Invalidation
from bot.limits import TelegramLimits, panel_limiter
from bot.metrics import Metrics, create_metrics_app, dependency_probes, serve_metrics
from bot.ordering import Ordering
from bot.outbox import OutboxSender
from bot.panel.client import PanelClient
from bot.payments import Payments
from bot.people import People
from bot.poller import Poller
from handlers import get_routers
from handlers.common import command_menu
from handlers.keyboards import NoticeKeyboards
from handlers.middlewares import (
    AnswerCallbacks,
    LanguageMiddleware,
    UpdateMetrics,
    VisitorMiddleware,
)
from migrations import upgrade_database
from storage.db import create_engine, create_session_factory
from storage.fsm import OncePerUpdate, SqlStorage

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from playground.sandbox import SandboxPanel

log = logging.getLogger(__name__)
OFFICIAL_API = "https://api.telegram.org"
ISOLATION_LOCK_SECONDS = 120  # see create_event_isolation
REDIS_WAIT_SECONDS = 20  # a caller waits this long for a free Redis connection
INVALIDATION_WAIT_SECONDS = 5  # start-up waits this long for the cache events' subscription
WARM_UP_SECONDS = 10  # start-up waits this long for the database connections it opens
FSM_KEYS = DefaultKeyBuilder(with_bot_id=True, with_destiny=True)
FSM_WRITE_BEHIND_SECONDS = 0.2  # a conversation step reaches SQLite this soon after

BackgroundJob = Callable[[], Coroutine[Any, Any, None]]


@dataclass
class Services:
    """Everything that lives as long as the bot: settings, database, panel, catalog, tasks."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    panel: PanelClient
    catalog: Catalog
    i18n: I18n
    ordering: Ordering
    people: People
    stats: Stats
    reconciliation: Reconciliation
    billing: Billing  # wallets and customer prices; used only with BILLING=wallet
    payments: Payments  # Stars top-ups of wallets (BILLING=wallet with STAR_PRICE)
    sandbox: SandboxPanel | None = None
    # What several instances share beside the database (None: one instance, no Redis).
    redis: Redis | None = None
    # Tells the other instances' caches what this one changed (a no-op without Redis).
    invalidation: Invalidation = field(default_factory=lambda: Invalidation(None))
    # This bot's own registry: tests and several bots in one process count apart.
    metrics: Metrics = field(default_factory=Metrics)
    metrics_site: web.AppRunner | None = None
    jobs: list[BackgroundJob] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def dispatcher_kwargs(self) -> dict[str, Any]:
        """What handlers may ask for by name: settings and the services, never a session."""
        return {
            "settings": self.settings,
            "catalog": self.catalog,
            "ordering": self.ordering,
            "people": self.people,
            "stats": self.stats,
            "reconciliation": self.reconciliation,
            "billing": self.billing,
            "payments": self.payments,
            "services": self,
        }

    async def warm_up(self) -> None:
        """What the first updates of a burst would otherwise wait for: the catalog (a panel
        call, started here and not waited for: a panel that is down must not delay start-up)
        and, on PostgreSQL, as many open connections as updates handled at once."""
        self.catalog.load_soon()
        if self.engine.dialect.name == "sqlite":
            return
        # Two left for the background jobs, which may hold one meanwhile.
        pool_size = self.settings.database_pool_size
        wanted = max(1, min(pool_size - 2, self.settings.update_concurrency))
        everyone_in = asyncio.Barrier(wanted)

        async def hold_one() -> None:
            async with self.engine.connect() as connection:
                await connection.exec_driver_sql("SELECT 1")
                await everyone_in.wait()  # all at once, or the pool would reuse one

        try:
            await asyncio.wait_for(
                asyncio.gather(*(hold_one() for _ in range(wanted))), WARM_UP_SECONDS
            )
        except (TimeoutError, OSError, SQLAlchemyError) as error:
            log.warning("database connections not opened at start-up (%s)", type(error).__name__)

    def start_background(self) -> None:
        for job in self.jobs:
            self._tasks.append(asyncio.create_task(job(), name=getattr(job, "__name__", "job")))

    async def stop_background(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def start_metrics_site(self, host: str | None = None, port: int | None = None) -> int:
        """Serve /metrics, /healthz and /readyz on METRICS_PORT (or `port`; 0: any free one),
        every interface unless `host` is given; `close` stops it. The port it listens on."""
        port = self.settings.metrics_port if port is None else port
        if port is None:
            raise ValueError("METRICS_PORT is not set")
        app = create_metrics_app(
            self.metrics, self.sessions, dependency_probes(self.sessions, self.redis)
        )
        self.metrics_site = await serve_metrics(app, host, port)
        return int(self.metrics_site.addresses[0][1])

    async def close(self) -> None:
        """Stop tasks and the metrics site, then close the panel session, the sandbox and the
        database."""
        await self.stop_background()
        if self.metrics_site is not None:
            await self.metrics_site.cleanup()
            self.metrics_site = None
        await self.catalog.stop()
        await self.panel.close()
        if self.sandbox is not None:
            await self.sandbox.stop()
        if self.redis is not None:
            await self.invalidation.drain()  # a blocked chat's news, still on its way
            await self.redis.aclose()
        await self.engine.dispose()


def create_redis(settings: Settings) -> Redis | None:
    """The Redis client every shared facility uses, or None with no Redis configured.

    A blocking pool: past REDIS_POOL_SIZE connections a caller waits for a free one instead of
    failing (redis-py's default pool raises MaxConnectionsError, which became apologies).
    """
    url = settings.shared_redis_url
    return None if url is None else _blocking_redis(url, settings.shared_redis_pool_size)


def _blocking_redis(url: str, size: int) -> Redis:
    from redis.asyncio import BlockingConnectionPool, Redis  # the `redis` extra

    pool = BlockingConnectionPool.from_url(url, max_connections=size, timeout=REDIS_WAIT_SECONDS)
    return Redis(connection_pool=pool)


async def create_services(settings: Settings, *, migrate: bool = True) -> Services:
    """Open the database (applying migrations), the panel (or the sandbox) and the catalog.

    Raises ConfigError when SHOP_CURRENCY is not the currency the wallets hold.
    """
    if migrate:
        await upgrade_database(settings.database_url)
    engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
    if settings.wallet_mode and settings.shop_currency is not None:
        try:
            await check_shop_currency(create_session_factory(engine), settings.shop_currency)
        except ShopCurrencyMismatch as error:
            await engine.dispose()
            raise ConfigError(str(error)) from None
    sandbox: SandboxPanel | None = None
    if settings.uses_sandbox:
        from playground.sandbox import SandboxPanel

        sandbox = SandboxPanel()
        panel_url = await sandbox.start(host="127.0.0.1", port=0)
        panel_key: Any = sandbox.api_key
        log.info("Using the built-in sandbox panel at %s", panel_url)
    else:
        panel_url, panel_key = settings.panel_api_url, settings.panel_api_key
    redis = create_redis(settings)
    metrics = Metrics()
    panel = PanelClient(
        panel_url,
        panel_key,
        timeout=settings.panel_timeout,
        max_rps=settings.panel_max_rps,
        # PANEL_MAX_RPS holds for every instance on this account together.
        limiter=None
        if redis is None
        else panel_limiter(redis, panel_url, _secret(panel_key), settings.panel_max_rps),
        on_call=metrics.panel_call,
    )
    invalidation = Invalidation(redis, channel=invalidation_channel(settings, redis))
    offered = sold_from_wallets if settings.wallet_mode else None
    catalog = Catalog(panel.services, ttl=settings.catalog_ttl, bus=invalidation, offered=offered)
    sessions = create_session_factory(engine)
    i18n = create_i18n(settings.default_language)
    return Services(
        settings=settings,
        engine=engine,
        sessions=sessions,
        ordering=Ordering(sessions, panel, settings, i18n, NoticeKeyboards(), catalog),
        people=People(sessions, settings, i18n, NoticeKeyboards(), bus=invalidation),
        stats=Stats(sessions, panel, settings),
        reconciliation=Reconciliation(sessions, settings, i18n),
        billing=Billing(sessions, settings, i18n),
        payments=Payments(sessions, settings, i18n),
        panel=panel,
        catalog=catalog,
        i18n=i18n,
        sandbox=sandbox,
        redis=redis,
        invalidation=invalidation,
        metrics=metrics,
    )


def invalidation_channel(settings: Settings, redis: Redis | None) -> str:
    """One channel per bot and Redis database: pub/sub ignores the database index, and two
    bots (or test runs) on one Redis server must not hear each other. The bot's id (the
    token's public part, never the secret after the colon) names the bot."""
    bot_id = settings.bot_token.get_secret_value().split(":", 1)[0]
    database = 0 if redis is None else redis.connection_pool.connection_kwargs.get("db", 0)
    return f"{CHANNEL}:{bot_id}:{database}"


def _secret(value: str | SecretStr) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


class TelegramSession(AiohttpSession):
    """aiogram's aiohttp session, except that it never follows a redirect.

    Every Bot API URL holds the token (`/bot<token>/method`): a redirect would send it (and the
    request) wherever the `Location` points, and aiohttp's TooManyRedirects message quotes the
    URL. A 3xx answer is a network error here, like any other answer that is not the Bot API's.
    """

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 - aiogram's signature
    ) -> TelegramType:
        session = await self.create_session()
        url = self.api.api_url(token=bot.token, method=method.__api_method__)
        form = self.build_form_data(bot=bot, method=method)
        seconds = self.timeout if timeout is None else timeout
        try:
            async with session.post(
                url, data=form, timeout=ClientTimeout(total=seconds), allow_redirects=False
            ) as response:
                status, content = response.status, await response.text()
        except TimeoutError as error:
            raise TelegramNetworkError(method=method, message="Request timeout error") from error
        except ClientError as error:
            text = f"{type(error).__name__}: {error}".replace(bot.token, "***")
            raise TelegramNetworkError(method=method, message=text) from error
        if 300 <= status < 400:
            raise TelegramNetworkError(
                method=method,
                message=f"HTTP {status}: a redirect, not followed (check TELEGRAM_API_URL)",
            )
        _keep_response_type(method.__returning__)
        answer = self.check_response(bot=bot, method=method, status_code=status, content=content)
        return cast(TelegramType, answer.result)


# aiogram reads every answer as `Response[<the method's result type>]`, a pydantic generic that
# pydantic caches only while something else holds it: without these references each one was
# built again (a millisecond or more) whenever the garbage collector had taken it.
_RESPONSE_TYPES: dict[Any, type[Response[Any]]] = {}


def _keep_response_type(returning: Any) -> None:
    if returning not in _RESPONSE_TYPES:
        _RESPONSE_TYPES[returning] = Response[returning]


def create_bot(settings: Settings, session: AiohttpSession | None = None) -> Bot:
    """A Bot talking to TELEGRAM_API_URL (a self-hosted Bot API server or a test peer).

    Raises aiogram's TokenValidationError when BOT_TOKEN does not even look like a token.
    """
    if session is None:
        api_url = settings.telegram_api_url.rstrip("/")
        # Every update and every answer passes through JSON both ways: orjson's is several
        # times quicker than the standard library's, with the same results for these types.
        json_kwargs: dict[str, Any] = {"json_loads": orjson.loads, "json_dumps": _json_text}
        session = TelegramSession(**json_kwargs)
        if api_url != OFFICIAL_API:
            session = TelegramSession(api=TelegramAPIServer.from_base(api_url), **json_kwargs)
    return Bot(
        token=settings.bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def create_fsm_storage(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> BaseStorage:
    """Where conversations live. Every update reads its member's state, and most flows change
    it several times: a shared storage is read and written once per update (`OncePerUpdate`),
    SQLite's from memory and written behind."""
    if settings.fsm_storage.startswith(("redis://", "rediss://")):
        from storage.fsm_redis import RedisConversations  # the `redis` extra

        return OncePerUpdate(
            RedisConversations(
                _blocking_redis(settings.fsm_storage, settings.shared_redis_pool_size),
                key_builder=FSM_KEYS,
                # The lock must outlive the slowest bounded handler (an add: 2 ×
                # PANEL_TIMEOUT), or a second update of the member could start beside it.
                lock_seconds=ISOLATION_LOCK_SECONDS,
            )
        )
    # One process owns a SQLite database, so the FSM rows may live in memory too, and reach the
    # database a moment later, many in one transaction.
    if settings.database_url.startswith("sqlite"):
        return SqlStorage(sessions, cache=True, write_behind=FSM_WRITE_BEHIND_SECONDS)
    return OncePerUpdate(SqlStorage(sessions))


def create_event_isolation(storage: BaseStorage) -> BaseEventIsolation:
    """A lock per FSM key: in Redis when the state lives there (several instances), else in
    this process; a storage written once per update writes while the lock is still held."""
    if isinstance(storage, OncePerUpdate):
        return storage.isolation(SimpleEventIsolation())
    return SimpleEventIsolation()


def create_dispatcher(services: Services) -> Dispatcher:
    """The dispatcher with its middlewares and routers, in the order they must run."""
    storage = create_fsm_storage(services.settings, services.sessions)
    dispatcher = Dispatcher(
        storage=storage,
        # One update at a time per member and chat: a fast second message must see the
        # conversation as the first one left it (its step, its live menu).
        events_isolation=create_event_isolation(storage),
        **services.dispatcher_kwargs(),
    )
    # First, so that the time of the middlewares after it counts too.
    UpdateMetrics(services.metrics.update_handled).setup(dispatcher)
    dispatcher.update.outer_middleware(VisitorMiddleware(services.people))
    LanguageMiddleware(services.i18n).setup(dispatcher)
    dispatcher.callback_query.middleware(AnswerCallbacks())
    dispatcher.include_routers(*get_routers())
    dispatcher.startup.register(_on_startup)
    dispatcher.shutdown.register(_on_shutdown)
    dispatcher.shutdown.register(storage.close)  # the conversation steps written behind
    return dispatcher


def background_jobs(services: Services, bot: Bot) -> list[BackgroundJob]:
    """The poller and the outbox sender, wired so that new status messages wake the sender."""
    sender = OutboxSender(
        bot,
        services.sessions,
        services.settings,
        on_blocked=services.people.chat_blocked,
        # Telegram's overall and per-group limits hold for every instance together.
        limits=TelegramLimits.create(services.settings, services.redis, bot_id=bot.id),
        on_refused=services.metrics.telegram_refused,
    )
    poller = Poller(
        settings=services.settings,
        sessions=services.sessions,
        panel=services.panel,
        i18n=services.i18n,
        buttons=NoticeKeyboards(),
        owner=sender.owner,
        on_enqueued=sender.notify,
        on_cycle=services.metrics.poll_cycle,
    )
    jobs: list[BackgroundJob] = [poller.run_forever, sender.run_forever]
    if services.payments.offered:
        # Payments Telegram took that the ledger never booked, told to the admins daily.
        jobs.append(functools.partial(services.payments.run_daily, bot))
    if services.invalidation.shared:
        jobs.insert(0, services.invalidation.run_forever)
    return jobs


async def _on_startup(bot: Bot, services: Services) -> None:
    await set_commands(bot, services.i18n, wallet_mode=services.settings.wallet_mode)
    services.jobs = background_jobs(services, bot)
    services.start_background()
    await services.warm_up()
    # Serve updates once other instances' changes reach this cache; a Redis that does not
    # answer yet delays start-up a little, never stops it (the listener keeps trying).
    invalidation = services.invalidation
    if invalidation.shared and not await invalidation.wait_listening(INVALIDATION_WAIT_SECONDS):
        log.warning("cache invalidation is not listening yet; starting anyway")


async def _on_shutdown(services: Services) -> None:
    await services.stop_background()


async def set_commands(bot: Bot, i18n: I18n, *, wallet_mode: bool = False) -> None:
    """The command menu, in English and, for Filipino clients, in Filipino."""
    for language in ("en", "fil"):
        with i18n.context(), i18n.use_locale(language):
            menu = command_menu(wallet_mode)
            commands = [BotCommand(command=name, description=text) for name, text in menu]
        await bot.set_my_commands(
            commands,
            scope=BotCommandScopeDefault(),
            language_code=None if language == "en" else "tl",
        )
