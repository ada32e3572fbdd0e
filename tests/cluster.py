"""Three real bot processes on one PostgreSQL and one Redis, as an operator runs them.

What runs: the Telegram emulator (in this process, so tests drive its user side directly) in
webhook mode, enforcing Telegram's limits; a round-robin proxy in front of the three instances'
webhook ports, so one user's consecutive updates land on different instances; the sandbox panel
as its own process, behind a recorder that logs every panel call; and three `python -m bot run`
processes configured only through the environment (the black-box contract of issue 14).

The database and the Redis db are the test's own, derived from TEST_DATABASE_URL and
TEST_REDIS_URL (same server and credentials, another name and index), created and dropped here.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import ClientConnectorError, ClientSession, ClientTimeout, web
from aiolimiter import AsyncLimiter
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from playground.telegram import SECRET_HEADER, ChatUser, Message, RateLimits, TelegramEmulator
from playground.telegram.webhook import chat_of

TOKEN = "424242:CLUSTER-token"
SECRET = "cluster-secret"
PANEL_KEY = "cluster-panel-key"
ADMIN = 7000
INSTANCES = 3
ROOT = Path(__file__).resolve().parent.parent
# Short intervals and leases, so recovery takes seconds (settings of the bot, passed as env).
POLL_INTERVAL = 1.0
LEASE_SECONDS = 4.0
PANEL_MAX_RPS = 5.0
SANDBOX_STEP_SECONDS = 1.5  # an order is In progress after one step and done after two
# Telegram's own limits: 30 messages a second overall is what the tests are about; replies in a
# conversation come faster than one a second per chat on Telegram too.
TELEGRAM_LIMITS = RateLimits(global_per_second=30, per_chat_per_second=5, per_group_per_minute=20)
USER_ACTIONS_PER_SECOND = 12  # what the simulated people do, all together
PERSON_GAP = 0.35  # seconds between two actions of one person: nobody types faster
WEBHOOK_TIMEOUT = 20.0
REPLY_TIMEOUT = 30.0


# --- where: the test's own database and Redis db ---------------------------------------------


@dataclass(frozen=True)
class Backends:
    database_url: str  # postgresql+asyncpg://…/<own database>
    maintenance_url: str  # the database given in TEST_DATABASE_URL, to create and drop ours
    database_name: str
    redis_url: str


def backends_from_env(suffix: str = "multi") -> Backends | None:
    """The test's own database and Redis db, or None when TEST_DATABASE_URL or TEST_REDIS_URL
    is unset. The database is the given one's name plus `_<suffix>`; the Redis db is the one
    below the given index (1 for 0), so neither is one another test uses."""
    database = os.environ.get("TEST_DATABASE_URL")
    redis = os.environ.get("TEST_REDIS_URL")
    if not database or not redis:
        return None
    given = make_url(database)
    name = f"{given.database or 'postgres'}_{suffix}"
    own = given.set(drivername="postgresql+asyncpg", database=name)
    redis_base, _, index = redis.rstrip("/").rpartition("/")
    if not index.isdigit():
        redis_base, index = redis.rstrip("/"), "0"
    own_index = int(index) - 1 if int(index) > 0 else 1
    return Backends(
        database_url=own.render_as_string(hide_password=False),
        maintenance_url=given.set(drivername="postgresql+asyncpg").render_as_string(
            hide_password=False
        ),
        database_name=name,
        redis_url=f"{redis_base}/{own_index}",
    )


async def recreate_database(backends: Backends, *, drop_only: bool = False) -> None:
    engine = create_async_engine(backends.maintenance_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            quoted = '"' + backends.database_name.replace('"', '""') + '"'
            await connection.execute(text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
            if not drop_only:
                await connection.execute(text(f"CREATE DATABASE {quoted}"))
    finally:
        await engine.dispose()


async def flush_redis(url: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def max_in_window(times: Iterable[float], window: float = 1.0) -> int:
    """The most events in any sliding window of `window` seconds."""
    ordered = sorted(times)
    best = start = 0
    for end, at in enumerate(ordered):
        while ordered[start] <= at - window:
            start += 1
        best = max(best, end - start + 1)
    return best


# --- the load balancer ------------------------------------------------------------------------


@dataclass(frozen=True)
class Routed:
    """One update the proxy passed on: to which instance, and what it answered."""

    update_id: int
    chat_id: int | None
    instance: int
    status: int | None
    # What the update carries: the user's message id, or the callback query id of a press
    # (what `send_nowait` and `press_nowait` return), to tell one update from another.
    key: str | None = None


def update_key(update: dict[str, Any]) -> str | None:
    """The message id (as text) or callback query id an update carries."""
    for kind, payload in update.items():
        if kind == "update_id" or not isinstance(payload, dict):
            continue
        if kind == "callback_query":
            return str(payload.get("id"))
        if "message_id" in payload:
            return str(payload["message_id"])
    return None


AfterAnswer = Callable[[int, dict[str, Any], int], None]


@dataclass
class RoundRobinProxy:
    """Telegram → here → an instance, in turn *per chat*: a chat's consecutive updates always
    land on different instances (the worst a load balancer can do to a conversation). An
    instance that refuses the connection is skipped for the next one, as nginx's
    `proxy_next_upstream` does."""

    ports: Sequence[int]
    routed: list[Routed] = field(default_factory=list)
    # Chats whose updates may only go to these instances (still in turn among them).
    pins: dict[int, tuple[int, ...]] = field(default_factory=dict)
    # Called once an instance answered, before Telegram sees the answer (to kill it right then).
    after_answer: AfterAnswer | None = None
    _turns: dict[int | None, itertools.count[int]] = field(default_factory=dict)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None
    _session: ClientSession | None = None
    url: str = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/webhook", self._forward)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._session = ClientSession(timeout=ClientTimeout(total=WEBHOOK_TIMEOUT * 2))
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def instances_of(self, chat_id: int) -> list[int]:
        """Which instance got each update of a chat, in order (answered or not)."""
        return [r.instance for r in self.routed if r.chat_id == chat_id]

    async def answered(
        self,
        chat_id: int,
        keys: Iterable[str],
        timeout: float,  # noqa: ASYNC109 - a deadline for all of them, not for one await
    ) -> dict[str, Routed]:
        """Wait until an instance answered 200 to each of the chat's updates carrying one of
        `keys` (message or callback query ids); which instance answered each. An instance
        answers after handling, so the bot's reply reaches the chat *before* the proxy records
        the update. Raises AssertionError when one is still unanswered at `timeout`."""
        wanted = set(keys)
        deadline = time.monotonic() + timeout
        while True:
            found = {
                r.key: r
                for r in self.routed
                if r.chat_id == chat_id and r.key in wanted and r.status == 200
            }
            if found.keys() >= wanted:
                return {key: found[key] for key in wanted}
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"not answered: {sorted(wanted - found.keys())}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def _record(self, routed: Routed) -> None:
        self.routed.append(routed)
        self._changed.set()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        update = await request.json()
        chat = chat_of(update)
        key = update_key(update)
        allowed = self.pins.get(chat, tuple(range(len(self.ports)))) if chat else None
        candidates = allowed or tuple(range(len(self.ports)))
        turns = self._turns.setdefault(chat, itertools.count(abs(chat or 0) % len(candidates)))
        first = next(turns)
        headers = {
            "Content-Type": request.headers.get("Content-Type", "application/json"),
            SECRET_HEADER: request.headers.get(SECRET_HEADER, ""),
        }
        for step in range(len(candidates)):
            instance = candidates[(first + step) % len(candidates)]
            url = f"http://127.0.0.1:{self.ports[instance]}/webhook"
            try:
                async with self._session.post(url, data=body, headers=headers) as answer:
                    payload = await answer.read()
                    status = answer.status
                    content_type = answer.headers.get("Content-Type", "application/json")
            except ClientConnectorError:
                continue  # not listening (killed, or not started yet): the next one
            except Exception:
                self._record(Routed(update["update_id"], chat, instance, None, key))
                raise
            self._record(Routed(update["update_id"], chat, instance, status, key))
            if self.after_answer is not None:
                self.after_answer(instance, update, status)
            response = web.Response(status=status, body=payload)
            response.headers["Content-Type"] = content_type
            return response
        return web.Response(status=502, text="no instance is listening")


# --- the panel, recorded ----------------------------------------------------------------------


@dataclass(frozen=True)
class PanelCall:
    at: float  # time.monotonic() when the request arrived
    action: str
    ids: tuple[int, ...]  # the order ids of a status call


@dataclass
class PanelRecorder:
    """In front of the sandbox process: logs every call, and can hold status calls (so the
    poller that made one keeps its lease while the test kills it)."""

    upstream: str  # the sandbox's API URL
    calls: list[PanelCall] = field(default_factory=list)
    holding: asyncio.Event | None = None  # set: status calls pass; cleared: they wait
    _runner: web.AppRunner | None = None
    _session: ClientSession | None = None
    url: str = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/api/v2", self._forward)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._session = ClientSession(timeout=ClientTimeout(total=60))
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/api/v2"
        return self.url

    async def stop(self) -> None:
        self.release()
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def hold_status_calls(self) -> None:
        self.holding = asyncio.Event()

    def release(self) -> None:
        if self.holding is not None:
            self.holding.set()
            self.holding = None

    def of(self, action: str, since: float = 0.0) -> list[PanelCall]:
        return [c for c in self.calls if c.action == action and c.at >= since]

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        arrived = time.monotonic()
        form = await request.post()
        fields = {k: str(v) for k, v in form.items()}
        action = fields.get("action", "")
        raw_ids = fields.get("orders") or fields.get("order") or ""
        ids = tuple(int(part) for part in raw_ids.split(",") if part.strip().isdigit())
        self.calls.append(PanelCall(arrived, action, ids if action == "status" else ()))
        if action == "status" and self.holding is not None:
            await self.holding.wait()
        async with self._session.post(self.upstream, data=fields) as answer:
            payload = await answer.read()
            return web.Response(
                status=answer.status,
                body=payload,
                content_type=answer.content_type,
            )


# --- the processes ----------------------------------------------------------------------------


@dataclass
class Process:
    """A child process with its output in a file (read when something goes wrong)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                cwd=ROOT,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def signal(self, number: int) -> None:
        if self.running:
            assert self.process is not None
            self.process.send_signal(number)

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a machine dies."""
        self.signal(signal.SIGKILL)
        if self.process is not None:
            await self.process.wait()

    async def stop(self, grace: float = 10.0) -> None:
        if not self.running:
            return
        assert self.process is not None
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), grace)
        except TimeoutError:
            await self.kill()

    def tail(self, lines: int = 30) -> str:
        try:
            text_lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text_lines[-lines:])


async def wait_for_port(port: int, timeout: float, alive: Callable[[], bool]) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"the process for port {port} exited")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port} after {timeout:g} s")


# --- the cluster ------------------------------------------------------------------------------


@dataclass
class Cluster:
    backends: Backends
    workdir: Path
    instances: int = INSTANCES
    extra_env: dict[str, str] = field(default_factory=dict)
    telegram_limits: RateLimits | None = TELEGRAM_LIMITS
    emulator: TelegramEmulator = field(init=False)
    proxy: RoundRobinProxy = field(init=False)
    panel: PanelRecorder = field(init=False)
    sandbox: Process = field(init=False)
    bots: list[Process] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    engine: AsyncEngine | None = None
    pace: AsyncLimiter = field(
        default_factory=lambda: AsyncLimiter(1, 1 / USER_ACTIONS_PER_SECOND)
    )
    sandbox_url: str = ""
    started_at: float = 0.0

    async def start(self) -> None:
        """Fresh database and Redis db, then everything; the three bots start at once."""
        self.started_at = time.monotonic()
        await recreate_database(self.backends)
        await flush_redis(self.backends.redis_url)
        self.engine = create_async_engine(self.backends.database_url)
        self.emulator = TelegramEmulator(
            token=TOKEN, limits=self.telegram_limits, webhook_timeout=WEBHOOK_TIMEOUT
        )
        await self.emulator.start()
        self.emulator.register_user(ADMIN, "Admin")
        await self._start_sandbox()
        self.panel = PanelRecorder(self.sandbox_url)
        await self.panel.start()
        self.ports = [free_port() for _ in range(self.instances)]
        self.proxy = RoundRobinProxy(self.ports)
        await self.proxy.start()
        self.bots = [self._bot_process(index) for index in range(self.instances)]
        await asyncio.gather(*(bot.start() for bot in self.bots))
        await asyncio.gather(*(self.wait_until_serving(index) for index in range(self.instances)))

    async def stop(self) -> None:
        await asyncio.gather(*(bot.stop() for bot in self.bots), return_exceptions=True)
        if hasattr(self, "sandbox"):
            await self.sandbox.stop()
        for part in ("panel", "proxy", "emulator"):
            if hasattr(self, part):
                with contextlib.suppress(Exception):
                    await getattr(self, part).stop()
        if self.engine is not None:
            await self.engine.dispose()
        with contextlib.suppress(Exception):
            await flush_redis(self.backends.redis_url)
        with contextlib.suppress(Exception):
            await recreate_database(self.backends, drop_only=True)

    def env(self, index: int) -> dict[str, str]:
        """What an operator sets for instance `index`: only its webhook port differs."""
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TZ")}
        return (
            keep
            | {
                "PYTHONPATH": str(ROOT),
                "PYTHONUNBUFFERED": "1",
                "BOT_TOKEN": TOKEN,
                "TELEGRAM_API_URL": self.emulator.url,
                "PANEL_API_URL": self.panel.url,
                "PANEL_API_KEY": PANEL_KEY,
                "PANEL_TIMEOUT": "10",
                "PANEL_MAX_RPS": str(PANEL_MAX_RPS),
                "DATABASE_URL": self.backends.database_url,
                "FSM_STORAGE": self.backends.redis_url,
                "WEBHOOK_URL": self.proxy.url,
                "WEBHOOK_SECRET": SECRET,
                "WEBHOOK_HOST": "127.0.0.1",
                "WEBHOOK_PORT": str(self.ports[index]),
                "ADMIN_IDS": str(ADMIN),
                "OPEN_TO_ALL": "true",
                "POLL_INTERVAL": str(POLL_INTERVAL),
                "OUTBOX_LEASE_SECONDS": str(LEASE_SECONDS),
                "POLL_LEASE_SECONDS": str(LEASE_SECONDS),
                "UPDATE_CONCURRENCY": "16",
                "LOG_LEVEL": "INFO",
            }
            | self.extra_env
        )

    def _bot_process(self, index: int) -> Process:
        return Process(
            f"bot-{index}",
            [sys.executable, "-m", "bot", "run"],
            self.env(index),
            self.workdir / f"bot-{index}.log",
        )

    async def _start_sandbox(self) -> None:
        port = free_port()
        argv = [sys.executable, "-m", "playground.sandbox", "--port", str(port)]
        argv += ["--key", PANEL_KEY, "--step-seconds", str(SANDBOX_STEP_SECONDS)]
        argv += ["--balance", "100000"]
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
        env = keep | {"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        self.sandbox = Process("sandbox", argv, env, self.workdir / "sandbox.log")
        await self.sandbox.start()
        await wait_for_port(port, 30, lambda: self.sandbox.running)
        self.sandbox_url = f"http://127.0.0.1:{port}/api/v2"

    async def wait_until_serving(self, index: int, timeout: float = 90.0) -> None:  # noqa: ASYNC109
        bot = self.bots[index]
        try:
            await wait_for_port(self.ports[index], timeout, lambda: bot.running)
        except (RuntimeError, TimeoutError) as error:
            raise RuntimeError(f"{bot.name} did not start: {error}\n{bot.tail()}") from None

    async def restart(self, index: int) -> None:
        """Start instance `index` again after a kill, on the same port."""
        await self.bots[index].stop()
        self.bots[index] = self._bot_process(index)
        await self.bots[index].start()
        await self.wait_until_serving(index)

    def pause(self, *indexes: int) -> None:
        """SIGSTOP: the process is there (its connections, its Redis registrations) but does
        nothing, the way an idle instance takes nothing from a shared limit."""
        for index in indexes:
            self.bots[index].signal(signal.SIGSTOP)

    def resume(self, *indexes: int) -> None:
        for index in indexes:
            self.bots[index].signal(signal.SIGCONT)

    def logs(self) -> str:
        parts = [f"--- {p.name} (pid {p.pid}) ---\n{p.tail()}" for p in [*self.bots, self.sandbox]]
        return "\n".join(parts)

    # --- the people ---------------------------------------------------------------------------

    def customer(self, user_id: int, name: str | None = None) -> Customer:
        return Customer(self, self.emulator.user(user_id, first_name=name or f"User{user_id}"))

    # --- the sandbox, directly ----------------------------------------------------------------

    async def sandbox_call(self, **fields: str) -> Any:
        data = {"key": PANEL_KEY, **fields}
        async with ClientSession() as session, session.post(self.sandbox_url, data=data) as r:
            return await r.json(content_type=None)

    async def sandbox_speed(self, factor: float) -> None:
        """0 stops the panel's clock (orders stay where they are); 1 lets it run again."""
        base = self.sandbox_url.removesuffix("/api/v2")
        body = {"factor": factor}
        async with (
            ClientSession() as session,
            session.post(f"{base}/sandbox/speed", json=body) as r,
        ):
            r.raise_for_status()

    async def scalar(self, sql: str, **params: Any) -> Any:
        assert self.engine is not None
        async with self.engine.connect() as connection:
            return (await connection.execute(text(sql), params)).scalar()

    async def execute(self, sql: str, **params: Any) -> None:
        assert self.engine is not None
        async with self.engine.begin() as connection:
            await connection.execute(text(sql), params)

    async def rows(self, sql: str, **params: Any) -> list[Any]:
        assert self.engine is not None
        async with self.engine.connect() as connection:
            return list((await connection.execute(text(sql), params)).all())


@dataclass
class Customer:
    """A person typing to the bot, paced with everyone else (USER_ACTIONS_PER_SECOND)."""

    cluster: Cluster
    chat: ChatUser
    _last_action: float = 0.0

    @property
    def id(self) -> int:
        return self.chat.id

    async def _take_turn(self) -> None:
        """Wait for this person's typing speed, then for everyone's pace."""
        await asyncio.sleep(max(0.0, self._last_action + PERSON_GAP - time.monotonic()))
        async with self.cluster.pace:
            pass
        self._last_action = time.monotonic()

    def chat_instances(self) -> list[int]:
        """Which instance got each of this person's updates, in order."""
        return self.cluster.proxy.instances_of(self.id)

    async def send(self, text_: str) -> Message:
        await self._take_turn()
        return await self.chat.send(text_, timeout=REPLY_TIMEOUT)

    async def say(self, text_: str) -> tuple[Message, Message]:
        """Like `send`; also the person's own message (whose id names the update)."""
        await self._take_turn()
        own = self.chat.send_nowait(text_)
        return own, await self.chat.wait_for(timeout=REPLY_TIMEOUT)

    async def press(self, label: str, message: Message | None = None) -> Any:
        await self._take_turn()
        return await self.chat.press(label, message=message, timeout=REPLY_TIMEOUT)

    async def reach_summary(self, link: str, quantity: str = "100") -> Message:
        """/order → Instagram → Instagram Followers → link → quantity: the summary to confirm."""
        await self.send("/order")
        await self.press("Instagram (1)")
        await self.press("Instagram Followers")
        await self.send(link)
        summary = await self.send(quantity)
        assert "Confirm" in str(summary.buttons), self.chat.transcript()
        return summary

    async def confirm(self, summary: Message, *, paced: bool = True) -> Message:
        """Press Confirm on the summary; the screen that says how the order went."""
        if paced:
            await self._take_turn()
        self.chat.press_nowait("Confirm", message=summary)
        return await self.chat.wait_for(
            lambda m: m.message_id == summary.message_id and "Confirm" not in str(m.buttons),
            timeout=REPLY_TIMEOUT * 2,
        )

    def notices(self) -> list[str]:
        """Status notices the outbox delivered to this chat ("✅ Order #23501: Completed"…)."""
        return [m.text for m in self.chat.bot_messages if is_status_notice(m.text)]


STATUS_MARKS = ("✅", "🟡", "🛑", "⏳", "🕒", "ℹ️")


def is_status_notice(text_: str) -> bool:
    first = text_.split("\n", 1)[0]
    return first.startswith(STATUS_MARKS) and "Order #" in first
