"""Several instances, one truth: what one instance changes reaches every instance's cache
through Redis (access, language, a blocked chat, the catalog), and one user's confirmations are
serialised in the database, so a daily limit holds across instances.

The Redis tests use TEST_REDIS_URL (and skip without it); each gets a channel of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.catalog import Catalog
from bot.i18n import create_i18n
from bot.invalidation import Invalidation
from bot.ordering import Ordering, Outcome, SubmissionState
from bot.panel.models import Service
from bot.people import ChatSeen, People, RecentlySeen, Sender
from handlers.keyboards import NoticeKeyboards
from storage import orders as order_store
from storage import people as people_store
from storage.db import create_engine, create_session_factory
from tests.factories import make_service, make_settings
from tests.rig import ALICE, MakeRig, Rig, sent_messages
from tests.test_handlers_summary import summary_of

if TYPE_CHECKING:
    from redis.asyncio import Redis

REDIS_URL = os.environ.get("TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="TEST_REDIS_URL is not set")
WAIT = 10.0  # seconds before a test gives up on an event (a failure, never a speed check)
MARKER = "test-marker"
FOLLOWERS = 1448

ALICE_SENDER = Sender(ALICE, "alice", "Alice", "en")
ALICE_CHAT = ChatSeen(ALICE, "private", None)
_markers = itertools.count(1)


@dataclass
class Instance:
    """One bot process as far as its caches go: its own Redis client, bus, engine and cache."""

    client_name: str
    redis: Redis
    bus: Invalidation
    engine: AsyncEngine
    recent: RecentlySeen
    people: People
    listener: asyncio.Task[None]
    markers: list[int] = field(default_factory=list)
    marked: asyncio.Event = field(default_factory=asyncio.Event)

    def saw_marker(self, marker: int) -> None:
        self.markers.append(marker)
        self.marked.set()


async def delivered(sender: Instance, *receivers: Instance) -> None:
    """Return once every receiver has applied what `sender` published so far: one channel
    keeps its order, so a marker published now arrives after everything before it."""
    await sender.bus.drain()
    marker = next(_markers)
    await sender.bus.publish(MARKER, marker)
    async with asyncio.timeout(WAIT):
        for receiver in receivers:
            while marker not in receiver.markers:
                receiver.marked.clear()
                await receiver.marked.wait()


async def start_instance(name: str, channel: str, database_url: str) -> Instance:
    from redis.asyncio import Redis

    assert REDIS_URL is not None
    redis = Redis.from_url(REDIS_URL, client_name=f"{channel}:{name}")
    bus = Invalidation(redis, channel=channel)
    engine = create_engine(database_url)
    settings = make_settings(database_url=database_url, allowed_user_ids=[ALICE])
    recent = RecentlySeen()
    people = People(
        create_session_factory(engine),
        settings,
        create_i18n(settings.default_language),
        NoticeKeyboards(),
        recent=recent,
        bus=bus,
    )
    listener = asyncio.create_task(bus.run_forever())
    instance = Instance(f"{channel}:{name}", redis, bus, engine, recent, people, listener)
    bus.on(MARKER, instance.saw_marker)
    assert await bus.wait_listening(WAIT)
    return instance


async def stop_instance(instance: Instance) -> None:
    instance.listener.cancel()
    await asyncio.gather(instance.listener, return_exceptions=True)
    await instance.bus.drain()
    await instance.redis.aclose()
    await instance.engine.dispose()


@pytest.fixture
async def pair(database_url: str) -> AsyncIterator[tuple[Instance, Instance]]:
    """Two instances on one database and one Redis (channel of this test only)."""
    if not REDIS_URL:
        pytest.skip("TEST_REDIS_URL is not set")
    channel = f"caches-test:{uuid.uuid4().hex}"
    first = await start_instance("a", channel, database_url)
    second = await start_instance("b", channel, database_url)
    yield first, second
    for instance in (first, second):
        await stop_instance(instance)


async def chat_row_blocked(instance: Instance, chat_id: int) -> bool:
    async with create_session_factory(instance.engine)() as session:
        chat = await people_store.get_chat(session, chat_id)
        assert chat is not None
        return chat.blocked


# --- access and language ---------------------------------------------------------------------


@needs_redis
async def test_a_deny_on_one_instance_holds_on_the_other_at_once(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    before = await b.people.visit(ALICE_CHAT, ALICE_SENDER)
    assert before.access is not None and before.access.may_order  # cached on b for a minute
    await a.people.set_access(ALICE, False)
    await delivered(a, b)
    after = await b.people.visit(ALICE_CHAT, ALICE_SENDER)
    assert after.access is not None and not after.access.may_order


@needs_redis
async def test_a_language_chosen_on_one_instance_is_spoken_by_the_other(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    assert (await b.people.visit(ALICE_CHAT, ALICE_SENDER)).language == "en"
    await a.people.set_language(ALICE, "fil")
    await delivered(a, b)
    assert (await b.people.visit(ALICE_CHAT, ALICE_SENDER)).language == "fil"


# --- a blocked chat ----------------------------------------------------------------------------


@needs_redis
async def test_a_chat_blocked_on_one_instance_is_cleared_by_a_visit_on_the_other(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    await a.people.visit(ALICE_CHAT, ALICE_SENDER)
    await b.people.visit(ALICE_CHAT, ALICE_SENDER)  # both remember the chat as written
    # What the outbox on `a` does on a 403: store the mark, then tell People.
    async with create_session_factory(a.engine).begin() as session:
        await people_store.mark_chat_blocked(session, ALICE)
    a.people.chat_blocked(ALICE)
    await delivered(a, b)
    assert b.recent.chat_marked_blocked(ALICE)
    await b.people.visit(ALICE_CHAT, ALICE_SENDER)  # Alice unblocks the bot and writes on b
    assert not await chat_row_blocked(b, ALICE)
    await delivered(b, a)
    assert not a.recent.chat_marked_blocked(ALICE)  # `a` has nothing to write on her next one
    assert a.recent.chat_is_fresh(ALICE, ("private", None))


async def test_without_redis_a_blocked_chat_is_written_on_its_next_visit(
    sessions: Any, database_url: str
) -> None:
    settings = make_settings(database_url=database_url, allowed_user_ids=[ALICE])
    recent = RecentlySeen()
    people = People(
        sessions, settings, create_i18n("en"), NoticeKeyboards(), recent=recent
    )  # one instance: no bus, nothing published
    await people.visit(ALICE_CHAT, ALICE_SENDER)
    async with sessions.begin() as session:
        await people_store.mark_chat_blocked(session, ALICE)
    people.chat_blocked(ALICE)
    await people.visit(ALICE_CHAT, ALICE_SENDER)
    async with sessions() as session:
        chat = await people_store.get_chat(session, ALICE)
        assert chat is not None and not chat.blocked


# --- Redis going away ------------------------------------------------------------------------


@needs_redis
async def test_a_lost_subscription_clears_the_cache_and_comes_back(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    await b.people.visit(ALICE_CHAT, ALICE_SENDER)
    assert b.recent.user(ALICE, ("alice", "Alice", "en")) is not None
    resets = asyncio.Event()
    b.bus.on_reset(resets.set)
    await kill_pubsub_connection(a.redis, b.client_name)
    async with asyncio.timeout(WAIT):
        await resets.wait()  # events sent meanwhile are lost: b forgot what it knew
    assert b.recent.user(ALICE, ("alice", "Alice", "en")) is None
    assert await b.bus.wait_listening(WAIT)
    await b.people.visit(ALICE_CHAT, ALICE_SENDER)
    await a.people.set_access(ALICE, False)
    await delivered(a, b)  # and it hears again
    after = await b.people.visit(ALICE_CHAT, ALICE_SENDER)
    assert after.access is not None and not after.access.may_order


async def kill_pubsub_connection(admin: Redis, client_name: str) -> None:
    """Close the one subscriber connection named `client_name` (only this test's own)."""
    clients = await admin.client_list()
    [subscriber] = [c for c in clients if c.get("name") == client_name and "P" in c["flags"]]
    await admin.client_kill_filter(_id=subscriber["id"])


# --- the catalog -------------------------------------------------------------------------------


@dataclass
class FakePanel:
    services: list[Service]
    fetches: dict[str, int] = field(default_factory=dict)
    fetched: asyncio.Event = field(default_factory=asyncio.Event)

    def fetch_for(self, name: str) -> Callable[[], Awaitable[list[Service]]]:
        async def fetch() -> list[Service]:
            self.fetches[name] = self.fetches.get(name, 0) + 1
            self.fetched.set()
            return list(self.services)

        return fetch


@needs_redis
async def test_a_service_gone_on_one_instance_is_gone_on_the_other(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    panel = FakePanel([make_service(service=1), make_service(service=2, name="Likes")])
    first = Catalog(panel.fetch_for("a"), ttl=3600, bus=a.bus)
    second = Catalog(panel.fetch_for("b"), ttl=3600, bus=b.bus)
    await first.get()
    await second.get()
    panel.services = panel.services[:1]  # service 2 is removed on the panel
    await first.refresh()  # a's refresh sees it, and tells b
    async with asyncio.timeout(WAIT):
        while panel.fetches["b"] < 2:
            panel.fetched.clear()
            await panel.fetched.wait()
    assert (await second.refresh()).service(2) is None
    await delivered(b, a)
    assert panel.fetches["a"] == 2  # b's refresh, started by the news, announced nothing
    await first.stop()
    await second.stop()


# --- confirmations -----------------------------------------------------------------------------


@pytest.fixture
async def limited(make_rig: MakeRig, database_url: str) -> Rig:
    """Alice may spend 1.00 a day; one order of 1000 followers costs 0.90."""
    rig = await make_rig(database_url=database_url, user_daily_limit=Decimal("1.00"))
    await rig.send(ALICE, "/start")
    return rig


def other_instance(rig: Rig, engine: AsyncEngine) -> Ordering:
    services = rig.services
    return Ordering(
        create_session_factory(engine), services.panel, services.settings, services.i18n,
        NoticeKeyboards(), services.catalog,
    )  # fmt: skip


async def test_two_instances_confirming_at_once_keep_the_daily_limit(
    limited: Rig, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(database_url)
    first, second = limited.services.ordering, other_instance(limited, engine)
    service = (await limited.services.catalog.get()).service(FOLLOWERS)
    assert service is not None
    answers = {"link": "https://instagram.com/alice", "quantity": 1000}
    drafts = [
        await ordering.create_draft(ALICE, ALICE, service, dict(answers))
        for ordering in (first, second)
    ]
    async with engine.connect():  # connected before the race, so both start at once
        pass
    # Each confirmation waits at the day's sum until the other one gets there too (or two
    # seconds have passed): unserialised, both would read 0.00 spent and both be placed.
    arrived: list[int] = []
    both_there = asyncio.Event()
    real_sum = order_store.confirmed_since

    async def meeting_sum(*args: Any, **kwargs: Any) -> Any:
        arrived.append(1)
        if len(arrived) == 2:
            both_there.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await both_there.wait()
        return await real_sum(*args, **kwargs)

    monkeypatch.setattr(order_store, "confirmed_since", meeting_sum)
    placements = await asyncio.gather(
        *(
            ordering.confirm(ALICE, ALICE, draft.id, is_admin=False)
            for ordering, draft in zip((first, second), drafts, strict=True)
        )
    )
    await engine.dispose()
    outcomes = sorted(placement.outcome for placement in placements)
    assert outcomes == sorted([Outcome.PLACED, Outcome.AWAITING_APPROVAL])


async def test_a_user_denied_elsewhere_since_the_summary_orders_nothing(rig: Rig) -> None:
    summary = await summary_of(rig)
    # Another instance's /deny, with no Redis to tell this one: its cache still says allowed.
    async with rig.services.sessions.begin() as session:
        await people_store.set_user_access(session, ALICE, False)
    shown = sent_messages(await rig.press(ALICE, summary, "Confirm"))
    assert "only open to approved users" in (shown[-1].text or "")
    sandbox = rig.services.sandbox
    assert sandbox is not None and "add" not in sandbox.actions()
    async with rig.services.sessions() as session:
        [order] = await order_store.orders_in_state(session, SubmissionState.CANCELED)
    assert order.user_id == ALICE


# --- wiring ------------------------------------------------------------------------------------


@needs_redis
async def test_with_redis_the_bot_listens_on_a_channel_of_its_own_database(
    tmp_path: Any,
) -> None:
    from bot.app import background_jobs, create_services
    from playground.telegram.recording import recording_bot

    assert REDIS_URL is not None
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'wired.db'}", redis_url=REDIS_URL
    )
    services = await create_services(settings)
    try:
        bus = services.invalidation
        assert bus.shared
        database = REDIS_URL.rsplit("/", 1)[-1]
        assert bus.channel == f"smm-bot:caches:123456:{database}"  # the token's bot id only
        bot, _ = recording_bot()
        jobs = background_jobs(services, bot)
        assert jobs[0] == bus.run_forever  # listening is the first job started
    finally:
        await services.close()


async def test_without_redis_nothing_listens(rig: Rig) -> None:
    from bot.app import background_jobs

    assert not rig.services.invalidation.shared
    jobs = background_jobs(rig.services, rig.bot)
    assert rig.services.invalidation.run_forever not in jobs
    await rig.services.invalidation.publish("user", ALICE)  # nobody to tell: no error
