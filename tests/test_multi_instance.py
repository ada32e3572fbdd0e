"""Three instances of the real bot on one PostgreSQL and one Redis, in webhook mode behind a
round-robin load balancer, against a Telegram that enforces its limits and a sandbox panel.

Each test is one promise of issue 14 for several instances together; the cluster
(`tests/cluster.py`) starts once for the module, on a database and a Redis db of its own.
Skips unless TEST_DATABASE_URL and TEST_REDIS_URL are set (CI sets both).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import async_sessionmaker

from playground.telegram import Message
from storage import outbox
from storage.db import utcnow
from tests.cluster import (
    ADMIN,
    INSTANCES,
    LEASE_SECONDS,
    PANEL_MAX_RPS,
    POLL_INTERVAL,
    REPLY_TIMEOUT,
    SECRET,
    TELEGRAM_LIMITS,
    Cluster,
    Customer,
    backends_from_env,
    is_status_notice,
    max_in_window,
)
from tests.factories import add_orders, remember_customer

BACKENDS = backends_from_env()
pytestmark = [
    pytest.mark.skipif(BACKENDS is None, reason="needs TEST_DATABASE_URL and TEST_REDIS_URL"),
    pytest.mark.asyncio(loop_scope="module"),
]
LIMIT = TELEGRAM_LIMITS.global_per_second
# Recovery after a crash: a lease runs out, then the next claim (a poll interval, an idle
# wait of the sender) picks the work up.
RECOVERY_SECONDS = 3 * LEASE_SECONDS + 5
_user_ids = iter(range(10_000, 90_000, 1))


def new_user_id() -> int:
    return next(_user_ids)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    assert BACKENDS is not None
    world = Cluster(BACKENDS, Path(tmp_path_factory.mktemp("cluster")))
    try:
        await world.start()
    except BaseException:
        await world.stop()
        raise
    yield world
    await world.stop()


async def eventually(check: Any, timeout: float, tick: float = 0.1) -> bool:  # noqa: ASYNC109
    """Poll `check()` (sync or async) until true or `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = check()
        if asyncio.iscoroutine(outcome):
            outcome = await outcome
        if outcome:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(tick)


async def quiet_outbox(cluster: Cluster, timeout: float = 60.0) -> None:  # noqa: ASYNC109
    """Wait for every earlier test's messages to go out, so counts are this test's own."""

    async def empty() -> bool:
        return int(await cluster.scalar("SELECT count(*) FROM outbox")) == 0

    assert await eventually(empty, timeout, tick=0.2), "the outbox never emptied"


async def orders_of(cluster: Cluster, user_id: int) -> list[Any]:
    return await cluster.rows(
        "SELECT id, panel_order_id, state, link FROM orders WHERE user_id = :user ORDER BY id",
        user=user_id,
    )


def adds_for(cluster: Cluster, since: float = 0.0) -> int:
    return len(cluster.panel.of("add", since))


async def place_at_panel(cluster: Cluster, chats: list[int]) -> list[int]:
    """Orders placed at the sandbox directly (not through a bot), one per chat, and recorded
    in the database as the bot records placed orders: due for polling now."""
    panel_ids = []
    for chat in chats:
        answer = await cluster.sandbox_call(
            action="add", service="1448", link=f"https://instagram.com/c{chat}", quantity="100"
        )
        panel_ids.append(int(answer["order"]))
    assert cluster.engine is not None
    sessions = async_sessionmaker(cluster.engine, expire_on_commit=False)
    async with sessions.begin() as session:
        for chat in set(chats):
            await remember_customer(session, chat)
        for chat, panel_id in zip(chats, panel_ids, strict=True):
            await add_orders(
                session,
                [panel_id],
                chat_id=chat,
                status="Pending",
                poll_active=True,
                next_poll_at=utcnow(),
            )
    return panel_ids


async def enqueue_notices(cluster: Cluster, chats: list[int], label: str) -> None:
    """One outbox row per chat, written as the poller writes them (one transaction)."""
    assert cluster.engine is not None
    sessions = async_sessionmaker(cluster.engine, expire_on_commit=False)
    for chat in chats:
        cluster.emulator.user(chat, first_name=f"Reader{chat}")
    async with sessions.begin() as session:
        for chat in chats:
            await outbox.enqueue(session, chat, f"{label} for {chat}")


def delivered(cluster: Cluster, chats: list[int], label: str) -> Counter[int]:
    counts: Counter[int] = Counter()
    for chat in chats:
        counts[chat] = sum(1 for m in cluster.emulator.messages(chat) if m.text.startswith(label))
    return counts


def instance_of_owner(cluster: Cluster, owner: str) -> int | None:
    """Which instance holds a lease: owners are host:pid:random (bot.leases)."""
    parts = owner.split(":")
    pid = int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else None
    return next((i for i, bot in enumerate(cluster.bots) if bot.running and bot.pid == pid), None)


# --- start-up ---------------------------------------------------------------------------------


async def test_three_instances_start_on_a_fresh_database_at_once(cluster: Cluster) -> None:
    """Each applied the migrations at start (one did, under the lock; the others found nothing
    to do) and set the webhook to the load balancer, with the secret."""
    assert all(bot.running for bot in cluster.bots), cluster.logs()
    hooks = cluster.emulator.calls("setWebhook")
    assert len(hooks) == INSTANCES, hooks
    assert {(h["url"], h.get("secret_token")) for h in hooks} == {
        (f"{cluster.proxy.url}/webhook", SECRET)
    }
    versions = await cluster.rows("SELECT version_num FROM alembic_version")
    assert len(versions) == 1
    for index in range(INSTANCES):
        assert "Traceback" not in cluster.bots[index].tail(200), cluster.bots[index].tail()


# --- ordering -------------------------------------------------------------------------------


async def test_conversations_spread_over_instances_are_placed_once(cluster: Cluster) -> None:
    people = [cluster.customer(new_user_id()) for _ in range(30)]
    links = {p.id: f"https://instagram.com/spread{p.id}" for p in people}
    summaries = await asyncio.gather(*(p.reach_summary(links[p.id]) for p in people))
    started = time.monotonic()
    # Everyone confirms at the same moment: the panel's rate limit is the cluster's.
    placed = await asyncio.gather(
        *(p.confirm(s, paced=False) for p, s in zip(people, summaries, strict=True))
    )
    for person, screen in zip(people, placed, strict=True):
        assert "Order placed" in screen.text, person.chat.transcript()
        spread = set(cluster.proxy.instances_of(person.id))
        assert len(spread) >= 2, f"user {person.id}'s updates all went to {spread}"
        rows = await orders_of(cluster, person.id)
        assert [(r.state, r.link) for r in rows] == [("placed", links[person.id])]
    assert adds_for(cluster, started) == len(people)
    busiest = max_in_window(c.at for c in cluster.panel.of("add", started))
    assert busiest <= PANEL_MAX_RPS, (
        f"{busiest} add calls within one second: PANEL_MAX_RPS={PANEL_MAX_RPS:g} is per "
        "process, not shared by the instances"
    )


async def test_double_confirm_on_two_instances_places_one_order(cluster: Cluster) -> None:
    person = cluster.customer(new_user_id())
    summary = await person.reach_summary(f"https://instagram.com/twice{person.id}")
    started = time.monotonic()
    first = person.chat.press_nowait("Confirm", message=summary)
    second = person.chat.press_nowait("Confirm", message=summary)
    await person.chat.wait_for(lambda m: "Order placed" in m.text, timeout=30)
    presses = await cluster.proxy.answered(person.id, [first, second], 30)
    await cluster.emulator.settle(idle=1.0, timeout=30)
    assert len({r.instance for r in presses.values()}) == 2, presses
    assert adds_for(cluster, started) == 1
    assert [r.state for r in await orders_of(cluster, person.id)] == ["placed"]


# --- polling ----------------------------------------------------------------------------------


async def test_status_calls_are_batched_for_all_instances_together(cluster: Cluster) -> None:
    """N orders due: ⌈N/100⌉ status calls per interval for the three pollers together."""

    async def nothing_active() -> bool:
        return int(await cluster.scalar("SELECT count(*) FROM orders WHERE poll_active")) == 0

    assert await eventually(nothing_active, 60, tick=0.5), "earlier orders never finished"
    await cluster.sandbox_speed(0)  # the orders stay Pending while we count
    try:
        chat = new_user_id()
        cluster.emulator.user(chat)
        panel_ids = set(await place_at_panel(cluster, [chat] * 150))
        watch_from = time.monotonic()
        await asyncio.sleep(5 * POLL_INTERVAL)
        window = time.monotonic() - watch_from
        calls = [c for c in cluster.panel.of("status", watch_from) if panel_ids & set(c.ids)]
    finally:
        await cluster.execute("UPDATE orders SET poll_active = false")
        await cluster.sandbox_speed(1)
    rounds = math.floor(window / POLL_INTERVAL) + 1
    ideal = math.ceil(len(panel_ids) / 100)
    asked = Counter(i for c in calls for i in c.ids if i in panel_ids)
    assert set(asked) == panel_ids, "some orders were never polled"
    assert all(len(c.ids) <= 100 for c in calls)
    assert max(asked.values()) <= rounds, f"an order polled {max(asked.values())}× in {rounds}"
    assert len(calls) <= ideal * rounds, (
        f"{len(calls)} status calls in {window:.1f} s for {len(panel_ids)} orders "
        f"(ideal: {ideal} per interval)"
    )


async def test_every_status_notice_is_delivered_once(cluster: Cluster) -> None:
    await quiet_outbox(cluster)
    chats = [new_user_id() for _ in range(40)]
    for chat in chats:
        cluster.emulator.user(chat)
    panel_ids = await place_at_panel(cluster, chats)

    def finals() -> int:
        return sum(
            1
            for chat in chats
            for m in cluster.emulator.messages(chat)
            if is_status_notice(m.text) and ("Completed" in m.text or "Partial" in m.text)
        )

    assert await eventually(lambda: finals() >= len(chats), 60, tick=0.2), finals()
    await quiet_outbox(cluster)
    await asyncio.sleep(2 * POLL_INTERVAL)  # a duplicate would be on its way by now
    for chat, panel_id in zip(chats, panel_ids, strict=True):
        notices = [m.text for m in cluster.emulator.messages(chat) if is_status_notice(m.text)]
        heads = Counter(text.split("\n", 1)[0] for text in notices)
        assert all(f"#{panel_id}:" in head for head in heads), heads
        assert all(n == 1 for n in heads.values()), f"chat {chat} got duplicates: {heads}"
        final = [h for h in heads if "Completed" in h or "Partial" in h]
        assert len(final) == 1, heads


# --- Telegram's overall limit -----------------------------------------------------------------


async def drain(cluster: Cluster, count: int, label: str) -> tuple[float, int, int]:
    """Queue `count` notices to as many chats; (messages per second, 429s from the overall
    window, the most sent in one second) while they drain."""
    await quiet_outbox(cluster)
    chats = [new_user_id() for _ in range(count)]
    refused_before = cluster.emulator.rate_refusals.get("overall", 0)
    first_send = len(cluster.emulator.sent_at)
    await enqueue_notices(cluster, chats, label)
    done = await eventually(lambda: sum(delivered(cluster, chats, label).values()) >= count, 90)
    assert done, f"only {sum(delivered(cluster, chats, label).values())} of {count} delivered"
    times = cluster.emulator.sent_at[first_send:]
    rate = (len(times) - 1) / (times[-1] - times[0])
    refused = cluster.emulator.rate_refusals.get("overall", 0) - refused_before
    return rate, refused, max_in_window(times)


async def test_three_busy_instances_keep_to_the_overall_limit(cluster: Cluster) -> None:
    rate, refused, busiest = await drain(cluster, 240, "Three busy")
    assert refused == 0, f"{refused} answers of 429 (up to {busiest} sends tried in a second)"
    assert rate >= 0.8 * LIMIT, f"drained at {rate:.1f}/s, under 80% of {LIMIT:g}/s"


async def test_one_busy_instance_beside_two_idle_reaches_the_limit(cluster: Cluster) -> None:
    """A fixed split of the limit (a third each) would drain at 10/s here."""
    cluster.pause(1, 2)
    try:
        rate, refused, busiest = await drain(cluster, 240, "One busy")
    finally:
        cluster.resume(1, 2)
    assert refused == 0, f"{refused} answers of 429 (up to {busiest} sends tried in a second)"
    assert rate >= 0.8 * LIMIT, f"one instance drained at {rate:.1f}/s, under 80% of {LIMIT:g}/s"


# --- access and blocked chats -----------------------------------------------------------------


async def visit_every_instance(person: Customer) -> None:
    """Updates until this person has been seen by every instance (each caches them)."""
    for _ in range(INSTANCES * 3):
        if len(set(person.chat_instances())) >= INSTANCES:
            return
        await person.send("/start")
    raise AssertionError(f"{person.id} reached only {set(person.chat_instances())}")


async def test_deny_is_effective_on_every_instance_at_once(cluster: Cluster) -> None:
    denied = cluster.customer(new_user_id())
    admin = cluster.customer(ADMIN, "Admin")
    link = f"https://instagram.com/denied{denied.id}"
    summary = await denied.reach_summary(link)
    await visit_every_instance(denied)
    started = time.monotonic()
    answer = await admin.send(f"/deny {denied.id}")
    assert "may no longer place orders" in answer.text
    # The summary was shown before /deny: its Confirm must not place anything now.
    await denied.press("Confirm", message=summary)
    sent = [await denied.say("/order") for _ in range(INSTANCES)]
    replies: list[Message] = [reply for _, reply in sent]
    orders = [str(own.message_id) for own, _ in sent]
    routes = await cluster.proxy.answered(denied.id, orders, REPLY_TIMEOUT)
    reached = {r.instance for r in routes.values()}
    assert reached == set(range(INSTANCES)), routes
    assert adds_for(cluster, started) == 0, "a denied user's Confirm placed an order"
    for reply in replies:
        assert "only open to approved users" in reply.text, denied.chat.transcript()


async def test_chat_unblocked_through_another_instance_gets_its_next_notice(
    cluster: Cluster,
) -> None:
    person = cluster.customer(new_user_id())
    await visit_every_instance(person)
    first = await person.reach_summary(f"https://instagram.com/blocked{person.id}")
    assert "Order placed" in (await person.confirm(first)).text
    # Only instance 0 runs while the user has blocked the bot: it sees the 403.
    cluster.pause(1, 2)
    try:
        cluster.emulator.block(person.id)

        def refused() -> bool:
            return any(
                e.error_code == 403 and e.params.get("chat_id") == person.id
                for e in cluster.emulator.errors
            )

        assert await eventually(refused, 60), "no notice reached the blocked chat"
    finally:
        cluster.resume(1, 2)
    cluster.emulator.unblock(person.id)
    cluster.proxy.pins[person.id] = (1, 2)  # from now on, only the instances that did not see it
    try:
        await person.send("/start")
        second = await person.reach_summary(f"https://instagram.com/unblocked{person.id}")
        placed = await person.confirm(second)
        panel_id = (await orders_of(cluster, person.id))[-1].panel_order_id
        assert "Order placed" in placed.text

        def told() -> bool:
            return any(f"#{panel_id}:" in text for text in person.notices())

        assert await eventually(told, 30), (
            f"no notice for order {panel_id} after the chat was unblocked\n"
            + person.chat.transcript()
        )
    finally:
        del cluster.proxy.pins[person.id]


# --- crashes ----------------------------------------------------------------------------------


async def test_instance_killed_mid_burst_loses_no_accepted_update(cluster: Cluster) -> None:
    """Instance 2 dies (SIGKILL) right after answering 200 to an update: whatever it had
    accepted must have been handled already; what it had not answered is delivered again."""
    victim = 2
    answered: list[int] = []

    def kill_on_third_answer(instance: int, update: dict[str, Any], status: int) -> None:
        if instance == victim and status == 200 and cluster.bots[victim].running:
            answered.append(update["update_id"])
            if len(answered) == 3:
                cluster.bots[victim].signal(9)

    people = [cluster.customer(new_user_id()) for _ in range(30)]
    cluster.proxy.after_answer = kill_on_third_answer

    async def answered_in_time(person: Customer) -> bool:
        try:
            await person.chat.wait_for(lambda m: "Hello" in m.text, timeout=30)
        except AssertionError:
            return False
        return True

    try:
        for person in people:
            async with cluster.pace:
                person.chat.send_nowait("/start")
        outcomes = await asyncio.gather(*(answered_in_time(person) for person in people))
    finally:
        cluster.proxy.after_answer = None
        await cluster.restart(victim)
    missing = [person.id for person, ok in zip(people, outcomes, strict=True) if not ok]
    assert len(answered) >= 3, "the victim never answered three updates"
    lost = [
        p
        for p in missing
        if any(r.chat_id == p and r.instance == victim for r in cluster.proxy.routed)
    ]
    assert not missing, (
        f"{len(missing)} of {len(people)} users never got an answer: {missing} "
        f"({len(lost)} of them had an update answered 200 by the killed instance)"
    )


async def test_killed_sender_leased_messages_are_recovered(cluster: Cluster) -> None:
    """An instance dies (SIGKILL) while it holds leased outbox messages: they go out when the
    lease runs out, twice at most for what it had in flight."""
    await quiet_outbox(cluster)
    chats = [new_user_id() for _ in range(150)]
    await enqueue_notices(cluster, chats, "Recovered")
    held: list[Any] = []

    async def someone_holds() -> bool:
        held[:] = await cluster.rows(
            "SELECT lease_owner, count(*) FROM outbox WHERE lease_owner IS NOT NULL "
            "AND lease_until > now() GROUP BY lease_owner"
        )
        return any(instance_of_owner(cluster, row[0]) is not None for row in held)

    assert await eventually(someone_holds, 30, tick=0.02)
    owner, leased = next(r for r in held if instance_of_owner(cluster, r[0]) is not None)
    victim = instance_of_owner(cluster, owner)
    assert victim is not None
    await cluster.bots[victim].kill()
    killed_at = time.monotonic()
    try:
        everyone = await eventually(
            lambda: all(delivered(cluster, chats, "Recovered").values()),
            RECOVERY_SECONDS + len(chats) / (0.8 * LIMIT),
            tick=0.2,
        )
    finally:
        await cluster.restart(victim)
    counts = delivered(cluster, chats, "Recovered")
    lost = [chat for chat in chats if counts[chat] == 0]
    assert everyone, (
        f"{len(lost)} messages still undelivered {time.monotonic() - killed_at:.0f} s after "
        f"instance {victim} died holding {leased} leases (OUTBOX_LEASE_SECONDS={LEASE_SECONDS:g})"
    )
    twice = sum(n - 1 for n in counts.values() if n > 1)
    assert twice <= leased, f"{twice} duplicates, more than the {leased} it held"


async def test_killed_poller_leased_orders_are_recovered(cluster: Cluster) -> None:
    """The instance whose status call is in flight (so it holds the orders' lease) dies: the
    orders are polled again once the lease runs out."""
    chat = new_user_id()
    cluster.emulator.user(chat)
    cluster.panel.hold_status_calls()
    try:
        panel_ids = set(await place_at_panel(cluster, [chat] * 5))

        owner: list[int] = []

        async def poll_owner_found() -> bool:
            # Instance 0 is falsy: the check returns whether one was found, not which.
            rows = await cluster.rows(
                "SELECT DISTINCT lease_owner FROM orders WHERE chat_id = :chat "
                "AND lease_owner IS NOT NULL",
                chat=chat,
            )
            found = [instance_of_owner(cluster, row[0]) for row in rows]
            owner[:] = [index for index in found if index is not None][:1]
            return bool(owner)

        assert await eventually(poll_owner_found, 30), "no instance leased the orders"
        poller = owner[0]
        await cluster.bots[poller].kill()
        killed_at = time.monotonic()
    finally:
        cluster.panel.release()

    def polled_again() -> bool:
        return any(panel_ids <= set(c.ids) for c in cluster.panel.of("status", killed_at))

    try:
        recovered = await eventually(polled_again, RECOVERY_SECONDS)
    finally:
        await cluster.execute("UPDATE orders SET poll_active = false")
        await cluster.restart(poller)
    assert recovered, (
        f"orders leased by the killed poller were not polled again within "
        f"{RECOVERY_SECONDS:g} s (POLL_LEASE_SECONDS={LEASE_SECONDS:g})"
    )
