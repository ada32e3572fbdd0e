"""Update handling: updates per second through the real dispatcher, against a plain echo bot.

Both dispatchers get real `aiogram.types.Update` objects through `dp.feed_update`, with a Bot
whose session records requests (no HTTP to Telegram). Ours is `create_dispatcher(services)`:
every middleware, the migrated SQLite database in a temporary file, the locale, and the sandbox
panel on loopback (its catalog and currency loaded before timing, as in a running bot).

With `backends` (bench/backends.py), the same bot runs with the settings each instance of a
multi-instance deployment has (tests/cluster.py): DATABASE_URL on PostgreSQL, FSM_STORAGE and
REDIS_URL on Redis (FSM state and its locks, the invalidation bus, the shared panel limiter).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiogram import Bot, Dispatcher, Router
from aiogram.types import InlineKeyboardMarkup, Message, Update
from sqlalchemy import event, insert, select

from bench.backends import dispose, fresh
from bench.measure import Clock, median
from bench.profiling import ProfileSummary, profiled
from bench.sizing import sizing
from bot.app import Services, create_dispatcher, create_services
from bot.catalog import CatalogSnapshot
from bot.config import Settings
from bot.panel.models import Service
from handlers.callbacks import ServicePick, ServicesPage
from handlers.flows import flow_number
from playground.sandbox import SandboxPanel, generate_catalog
from playground.telegram.recording import BOT_USER, TOKEN, RecordingSession, recording_bot
from storage.models import Chat, Order, SubmissionState, User

if TYPE_CHECKING:
    from tests.cluster import Backends

# One customer's conversation, in order; every step is valid after the one before it.
STEPS: tuple[str, ...] = (
    "/start",
    "/order",
    "category page (callback)",
    "service pick (callback)",
    "link answer",
    "validation error",
    "quantity answer",
    "/orders",
    "/help",
)
PLACED_ORDERS_PER_USER = 3  # so /orders lists something, as for a returning customer
FIRST_USER = 10_000_000
FILIPINO_EVERY = 4  # every 4th customer uses a Filipino Telegram client (the `fil` catalog)


@dataclass(frozen=True)
class SqlCount:
    """What one update did to the database."""

    reads: int
    writes: int
    transactions: int  # connection checkouts (SQLAlchemy "begin" events)

    @property
    def statements(self) -> int:
        return self.reads + self.writes


@dataclass
class UpdatesResult:
    n_updates: int
    repeats: int
    catalog_size: int
    concurrency: int
    ours_runs: list[float]  # updates per second, one per repeat
    echo_runs: list[float]
    ratio_runs: list[float]  # ours / echo, each measured back to back
    conversations: int  # per repeat
    summaries: int  # conversations that reached the order summary (must equal conversations)
    errors: int  # ERROR log records while handling (must be 0)
    requests_per_update: dict[str, float]  # Bot API calls per update, by method
    sql_by_step: dict[str, SqlCount]
    ms_by_step: dict[str, float]  # step → median wall time of one update, milliseconds
    transaction_us: float  # one trivial transaction (SELECT 1 + commit), median µs
    cpu_per_update_ms: float  # process CPU per update of ours, median over the repeats
    profile: ProfileSummary | None = None
    cpu_runs: list[float] = field(default_factory=list)  # ms of process CPU per update, per run
    backend: str = "SQLite"  # or "PostgreSQL + Redis"
    sizing: dict[str, str] = field(default_factory=dict)  # bench/sizing.py, from the Settings
    loop: str = ""  # the event loop's class, e.g. asyncio's or uvloop's

    @property
    def ours_per_second(self) -> float:
        return median(self.ours_runs)

    @property
    def echo_per_second(self) -> float:
        return median(self.echo_runs)

    @property
    def ratio(self) -> float:
        return median(self.ratio_runs)


# --- building updates ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Script:
    """What the conversation needs from the catalog: the category to open, the service to pick."""

    category_key: str
    service: Service
    link: str = "https://instagram.com/p/Cbench123/"
    bad_quantity: str = "lots"

    @property
    def quantity(self) -> str:
        return str(max(self.service.min, min(1000, self.service.max)))


def choose_script(snapshot: CatalogSnapshot) -> Script:
    """A Default service without drip-feed: its form is link, then quantity, then the summary."""
    for service in snapshot.services:
        if service.type == "Default" and not service.dripfeed and service.min <= 1000:
            return Script(snapshot.category_key(service.category), service)
    raise RuntimeError("the catalog has no plain Default service")


class UpdateFactory:
    """Real `Update` objects, mounted on a bot the way aiogram's polling mounts them."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self._update_id = 0
        self._message_id = 1_000_000
        self._date = int(time.time())

    def _user(self, user_id: int) -> dict[str, Any]:
        language = "tl" if user_id % FILIPINO_EVERY == 0 else "en"
        return {
            "id": user_id,
            "is_bot": False,
            "first_name": f"Customer{user_id % 1000}",
            "username": f"customer{user_id}",
            "language_code": language,
        }

    def _chat(self, user_id: int) -> dict[str, Any]:
        return {"id": user_id, "type": "private", "first_name": f"Customer{user_id % 1000}"}

    def _next(self) -> tuple[int, int]:
        self._update_id += 1
        self._message_id += 1
        return self._update_id, self._message_id

    def message(self, user_id: int, text: str) -> Update:
        update_id, message_id = self._next()
        payload: dict[str, Any] = {
            "message_id": message_id,
            "date": self._date,
            "chat": self._chat(user_id),
            "from": self._user(user_id),
            "text": text,
        }
        if text.startswith("/"):
            payload["entities"] = [
                {"type": "bot_command", "offset": 0, "length": len(text.split()[0])}
            ]
        return self._mount({"update_id": update_id, "message": payload})

    def callback(self, user_id: int, data: str, shown_text: str) -> Update:
        """A press on a button of the bot's message that shows `shown_text`."""
        update_id, message_id = self._next()
        shown = {
            "message_id": message_id,
            "date": self._date,
            "chat": self._chat(user_id),
            "from": BOT_USER.model_dump(exclude_none=True),
            "text": shown_text,
        }
        query = {
            "id": str(4_000_000_000 + update_id),
            "from": self._user(user_id),
            "chat_instance": str(user_id * 7919),
            "data": data,
            "message": shown,
        }
        return self._mount({"update_id": update_id, "callback_query": query})

    def _mount(self, raw: dict[str, Any]) -> Update:
        return Update.model_validate(raw, context={"bot": self.bot})


def conversation(factory: UpdateFactory, user_id: int, script: Script) -> list[Update]:
    """The updates of one customer, one per entry of STEPS."""
    order = factory.message(user_id, "/order")
    assert order.message is not None
    flow = flow_number(order.message.message_id)  # the flow /order opens (handlers.flows)
    return [
        factory.message(user_id, "/start"),
        order,
        factory.callback(
            user_id,
            ServicesPage(category=script.category_key, page=0, flow=flow, by=user_id).pack(),
            "Choose a category:",
        ),
        factory.callback(
            user_id,
            ServicePick(service=script.service.id, flow=flow, by=user_id).pack(),
            "Choose a service:",
        ),
        factory.message(user_id, script.link),
        factory.message(user_id, script.bad_quantity),
        factory.message(user_id, script.quantity),
        factory.message(user_id, "/orders"),
        factory.message(user_id, "/help"),
    ]


def interleave(conversations: Sequence[list[Update]], limit: int) -> list[Update]:
    """Step 1 of every customer, then step 2 of every customer…: a live mix, each in order."""
    mixed = [
        talk[step] for step in range(len(STEPS)) for talk in conversations if step < len(talk)
    ]
    return mixed[:limit]


def step_labels(n_users: int, limit: int) -> list[str]:
    """The step of each update `interleave` returns."""
    return [step for step in STEPS for _ in range(n_users)][:limit]


def echo_updates(
    factory: UpdateFactory, users: Sequence[int], script: Script, n: int
) -> list[Update]:
    """The same number of updates for the echo bot: the text messages of the conversation."""
    texts = ["/start", "/order", script.link, script.bad_quantity, script.quantity, "/orders"]
    return [factory.message(users[i % len(users)], texts[i % len(texts)]) for i in range(n)]


# --- the two dispatchers -------------------------------------------------------------------------
def echo_dispatcher() -> Dispatcher:
    """The baseline: aiogram's echo bot, one router answering every message with its text."""
    router = Router(name="echo")

    @router.message()
    async def echo(message: Message) -> None:
        await message.answer(message.text or "")

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    return dispatcher


@dataclass
class OurBot:
    services: Services
    dispatcher: Dispatcher
    bot: Bot
    session: RecordingSession
    sandbox: SandboxPanel
    script: Script
    folder: tempfile.TemporaryDirectory[str]
    backends: Backends | None = None

    async def close(self) -> None:
        await self.services.close()
        await self.sandbox.stop()
        await self.bot.session.close()
        self.folder.cleanup()
        if self.backends is not None:
            await dispose(self.backends)


def backend_settings(folder: Path, backends: Backends | None) -> dict[str, Any]:
    """SQLite in `folder`, or what tests/cluster.py gives each instance: PostgreSQL + Redis."""
    if backends is None:
        return {"database_url": f"sqlite+aiosqlite:///{folder / 'bot.db'}"}
    return {
        "database_url": backends.database_url,
        "fsm_storage": backends.redis_url,
        "redis_url": backends.redis_url,
    }


async def start_our_bot(catalog_size: int, backends: Backends | None = None) -> OurBot:
    folder = tempfile.TemporaryDirectory(prefix="smm-bench-updates-")
    sandbox = SandboxPanel.from_catalog(generate_catalog(catalog_size), api_key="bench-key")
    url = await sandbox.start()
    if backends is not None:
        await fresh(backends)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        bot_token=TOKEN,
        panel_api_url=url,
        panel_api_key=sandbox.api_key,
        open_to_all=True,
        **backend_settings(Path(folder.name), backends),
    )
    services = await create_services(settings)
    # A running bot has its catalog and the panel's currency cached: load them before timing.
    snapshot = await services.catalog.get()
    await services.ordering.currency()
    bot, session = recording_bot()
    return OurBot(
        services=services,
        dispatcher=create_dispatcher(services),
        bot=bot,
        session=session,
        sandbox=sandbox,
        script=choose_script(snapshot),
        folder=folder,
        backends=backends,
    )


async def seed_customers(services: Services, users: Sequence[int], script: Script) -> None:
    """Returning customers: their chat and user rows, and a few placed orders each."""
    now = datetime.now(UTC)
    chats = [{"id": u, "type": "private", "created_at": now, "updated_at": now} for u in users]
    people = [
        {"id": u, "first_name": f"Customer{u % 1000}", "created_at": now, "updated_at": now}
        for u in users
    ]
    orders = [
        {
            "panel_order_id": u * 10 + n,
            "chat_id": u,
            "user_id": u,
            "service_id": script.service.id,
            "service_name": script.service.name,
            "service_type": script.service.type,
            "service_rate": script.service.rate,
            "category": script.service.category,
            "link": script.link,
            "quantity": 1000,
            "fields": {},
            "price": Decimal("1.25"),
            "charge": Decimal("1.25"),
            "currency": "USD",
            "state": str(SubmissionState.PLACED),
            "status": "In progress",
            "remains": 500,
            "poll_active": False,  # the poller is not running here
            "created_at": now - timedelta(hours=n + 1),
            "updated_at": now,
            "placed_at": now - timedelta(hours=n + 1),
        }
        for u in users
        for n in range(PLACED_ORDERS_PER_USER)
    ]
    async with services.sessions.begin() as session:
        await session.execute(insert(Chat), chats)
        await session.execute(insert(User), people)
        await session.execute(insert(Order), orders)


# --- running -------------------------------------------------------------------------------------
class _ErrorCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


async def feed(
    dispatcher: Dispatcher,
    bot: Bot,
    updates: Sequence[Update],
    concurrency: int = 1,
    durations: list[float] | None = None,
) -> float:
    """Feed every update; the elapsed wall time. With `concurrency` > 1, that many at once
    (consecutive updates belong to different customers, so each conversation stays in order).
    One at a time, `durations` (if given) receives each update's own time."""
    started = time.perf_counter()
    if concurrency <= 1:
        clock = time.perf_counter
        for update in updates:
            begun = clock()
            await dispatcher.feed_update(bot, update)
            if durations is not None:
                durations.append(clock() - begun)
    else:
        for start in range(0, len(updates), concurrency):
            chunk = updates[start : start + concurrency]
            await asyncio.gather(*(dispatcher.feed_update(bot, u) for u in chunk))
    return time.perf_counter() - started


def _summaries(session: RecordingSession) -> int:
    """Messages that show an order summary (they carry the Confirm button)."""
    found = 0
    for request in session.requests:
        markup = getattr(request, "reply_markup", None)
        if isinstance(markup, InlineKeyboardMarkup) and any(
            (button.callback_data or "").startswith("dr:confirm:")
            for row in markup.inline_keyboard
            for button in row
        ):
            found += 1
    return found


async def bench_updates(
    n_updates: int,
    repeats: int,
    *,
    catalog_size: int = 5000,
    concurrency: int = 1,
    profile: bool = True,
    backends: Backends | None = None,
) -> UpdatesResult:
    """Updates/s of our dispatcher and of the echo bot, `repeats` times each, side by side.

    `n_updates` is rounded up to whole conversations (len(STEPS) updates each)."""
    ours = await start_our_bot(catalog_size, backends)
    echo_bot, _ = recording_bot(keep=False)
    echo = echo_dispatcher()
    errors = _ErrorCounter()
    logging.getLogger().addHandler(errors)
    n_users = -(-n_updates // len(STEPS))
    n_updates = n_users * len(STEPS)
    # Updates fed together must belong to different customers, or a conversation's steps
    # would race each other.
    concurrency = max(1, min(concurrency, n_users))
    try:
        # Each repeat (and the warm-up, the profile and the SQL count) has customers of its own.
        batches = [
            [FIRST_USER + batch * n_users + i for i in range(n_users)]
            for batch in range(repeats + 3)
        ]
        await seed_customers(ours.services, [u for users in batches for u in users], ours.script)
        ours_factory, echo_factory = UpdateFactory(ours.bot), UpdateFactory(echo_bot)

        def our_updates(users: Sequence[int]) -> list[Update]:
            talks = [conversation(ours_factory, u, ours.script) for u in users]
            return interleave(talks, n_updates)

        warm_up = our_updates(batches[-1][: max(1, min(20, n_users))])
        await feed(ours.dispatcher, ours.bot, warm_up, 1)
        await feed(echo, echo_bot, echo_updates(echo_factory, batches[-1], ours.script, 50), 1)
        ours.session.requests.clear()
        ours.session.counts.clear()

        ours_runs: list[float] = []
        echo_runs: list[float] = []
        ratios: list[float] = []
        by_step: dict[str, list[float]] = {step: [] for step in STEPS}
        cpu_runs: list[float] = []
        for repeat in range(repeats):
            mine = our_updates(batches[repeat])
            theirs = echo_updates(echo_factory, batches[repeat], ours.script, len(mine))
            durations: list[float] = []
            # Alternate who goes first, so neither always runs on a warmer (or hotter) machine.
            if repeat % 2 == 1:
                echo_time = await feed(echo, echo_bot, theirs, concurrency)
            clock = Clock().start()
            ours_time = await feed(ours.dispatcher, ours.bot, mine, concurrency, durations)
            cpu_runs.append(clock.cpu / len(mine))
            if repeat % 2 == 0:
                echo_time = await feed(echo, echo_bot, theirs, concurrency)
            for step, seconds in zip(step_labels(n_users, len(mine)), durations, strict=False):
                by_step[step].append(seconds)
            ours_runs.append(len(mine) / ours_time)
            echo_runs.append(len(theirs) / echo_time)
            ratios.append(ours_runs[-1] / echo_runs[-1])
        fed = repeats * n_updates
        requests = {name: count / fed for name, count in sorted(ours.session.counts.items())}
        summaries = _summaries(ours.session) // max(repeats, 1)
        result = UpdatesResult(
            n_updates=n_updates,
            repeats=repeats,
            catalog_size=catalog_size,
            concurrency=concurrency,
            ours_runs=ours_runs,
            echo_runs=echo_runs,
            ratio_runs=ratios,
            conversations=n_users,
            summaries=summaries,
            errors=errors.count,
            requests_per_update=requests,
            sql_by_step=await count_sql(ours, ours_factory, batches[-2][0]),
            ms_by_step={step: median(times) * 1000 for step, times in by_step.items() if times},
            transaction_us=await transaction_cost(ours),
            cpu_per_update_ms=median(cpu_runs) * 1000,
            cpu_runs=[cpu * 1000 for cpu in cpu_runs],
            backend="SQLite" if backends is None else "PostgreSQL + Redis",
            sizing=sizing(ours.services.settings),
            loop=type(asyncio.get_running_loop()).__module__,
        )
        if profile:
            traced = our_updates(batches[-3])
            _, result.profile = await profiled(lambda: feed(ours.dispatcher, ours.bot, traced, 1))
        return result
    finally:
        logging.getLogger().removeHandler(errors)
        await echo_bot.session.close()
        await ours.close()


async def transaction_cost(ours: OurBot, n: int = 300) -> float:
    """Median µs of the cheapest unit of database work through the bot's own session factory:
    SELECT 1 and a commit (the first fifth left out as warm-up)."""
    times: list[float] = []
    for _ in range(n):
        begun = time.perf_counter()
        async with ours.services.sessions() as session:
            await session.execute(select(1))
            await session.commit()
        times.append(time.perf_counter() - begun)
    return median(times[n // 5 :]) * 1e6


async def count_sql(ours: OurBot, factory: UpdateFactory, user_id: int) -> dict[str, SqlCount]:
    """SQL reads, writes and transactions for each step of one more customer's conversation."""
    counts = Counter[str]()

    def on_statement(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
        counts["writes" if verb in ("INSERT", "UPDATE", "DELETE", "REPLACE") else "reads"] += 1

    def on_begin(*_args: Any) -> None:
        counts["transactions"] += 1

    engine = ours.services.engine.sync_engine
    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine, "begin", on_begin)
    found: dict[str, SqlCount] = {}
    try:
        for step, update in zip(STEPS, conversation(factory, user_id, ours.script), strict=True):
            before = counts.copy()
            await ours.dispatcher.feed_update(ours.bot, update)
            after = counts - before
            found[step] = SqlCount(after["reads"], after["writes"], after["transactions"])
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)
        event.remove(engine, "begin", on_begin)
    return found
