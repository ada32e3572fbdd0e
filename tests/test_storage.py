"""Storage on SQLite (and PostgreSQL in CI): migrations, exact money, FSM state, ownership."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.memory import SimpleEventIsolation
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.people import Person, RecentlySeen
from storage import orders, people
from storage.db import create_engine, create_session_factory
from storage.fsm import OncePerUpdate, SqlStorage
from storage.models import Base, FsmRecord, SubmissionState


async def test_models_match_migrations(engine: AsyncEngine) -> None:
    def diff(connection: object) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})  # type: ignore[arg-type]
        return list(compare_metadata(context, Base.metadata))

    async with engine.connect() as connection:
        assert await connection.run_sync(diff) == []


async def test_sqlite_pragmas(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    async with engine.connect() as connection:
        assert (await connection.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar() == 1
        assert (await connection.execute(text("PRAGMA busy_timeout"))).scalar() == 5000
    await engine.dispose()


async def _draft(
    session: AsyncSession, chat_id: int = 10, price: str = "0.90", **values: object
) -> int:
    await people.remember_chat(session, chat_id, "private", None)
    await people.remember_user(session, chat_id, "u", "U", "en")
    order = await orders.create_draft(
        session,
        chat_id=chat_id,
        user_id=chat_id,
        service_name="Followers",
        service_type="Default",
        service_rate=Decimal("0.90"),
        link="https://instagram.com/x",
        price=Decimal(price),
        **({"service_id": 1448, "quantity": 1000, "currency": "USD"} | values),
    )
    return order.id


async def test_an_order_holds_what_the_form_and_the_panel_accept(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """PostgreSQL's INTEGER ended at 2**31: a quantity of 3,000,000,000 failed the draft."""
    big = 999_999_999_999_999_999  # 18 digits, the most the form accepts
    async with sessions() as session, session.begin():
        order_id = await _draft(
            session, quantity=big, service_id=3_000_000_000, currency="USDT-TRC20"
        )
    async with sessions() as session:
        order = await orders.get_order(session, order_id)
        assert order is not None
        assert (order.quantity, order.service_id, order.currency) == (
            big,
            3_000_000_000,
            "USDT-TRC20",
        )


async def test_money_reads_back_exactly(sessions: async_sessionmaker[AsyncSession]) -> None:
    amount = "123456789012.34567"
    async with sessions() as session, session.begin():
        order_id = await _draft(session, price=amount)
    async with sessions() as session:
        order = await orders.get_order(session, order_id)
        assert order is not None
        assert order.price == Decimal(amount)
        assert isinstance(order.price, Decimal)
        assert order.service_rate == Decimal("0.90")


async def test_submission_is_compare_and_set(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        order_id = await _draft(session)
    wins = []
    for _ in range(2):
        async with sessions() as session, session.begin():
            wins.append(
                await orders.move_state(
                    session,
                    order_id,
                    expected=[SubmissionState.DRAFT],
                    to=SubmissionState.SUBMITTING,
                    chat_id=10,
                )
            )
    assert wins == [True, False]


async def test_other_chat_cannot_read_or_claim(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        order_id = await _draft(session, chat_id=10)
        await people.remember_chat(session, 20, "private", None)
    async with sessions() as session, session.begin():
        assert await orders.get_owned_order(session, 20, order_id) is None
        assert await orders.get_owned_order(session, 10, order_id) is not None
        claimed = await orders.move_state(
            session, order_id, expected=["draft"], to="submitting", chat_id=20
        )
        assert not claimed


async def test_fsm_state_survives_a_new_engine(database_url: str) -> None:
    key = StorageKey(bot_id=1, chat_id=10, user_id=10)
    engine = create_engine(database_url)
    storage = SqlStorage(create_session_factory(engine))
    await storage.set_state(key, "Ordering:quantity")
    await storage.update_data(key, {"service_id": 1448, "link": "https://x.y/z"})
    await engine.dispose()

    engine = create_engine(database_url)
    storage = SqlStorage(create_session_factory(engine))
    assert await storage.get_state(key) == "Ordering:quantity"
    assert await storage.get_data(key) == {"service_id": 1448, "link": "https://x.y/z"}
    await storage.set_state(key, None)
    assert await storage.get_state(key) is None
    assert await storage.get_data(key) == {"service_id": 1448, "link": "https://x.y/z"}
    await engine.dispose()


async def test_blocked_mark_cleared_by_next_update(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        await people.remember_chat(session, 30, "private", None)
        await people.mark_chat_blocked(session, 30)
    async with sessions() as session, session.begin():
        chat = await people.get_chat(session, 30)
        assert chat is not None and chat.blocked
        await people.remember_chat(session, 30, "private", None)
    async with sessions() as session:
        chat = await people.get_chat(session, 30)
        assert chat is not None and not chat.blocked


async def test_cached_fsm_storage_writes_through(database_url: str) -> None:
    key = StorageKey(bot_id=1, chat_id=11, user_id=11)
    engine = create_engine(database_url)
    cached = SqlStorage(create_session_factory(engine), cache=True)
    await cached.set_state(key, "OrderForm:answering")
    await cached.update_data(key, {"answers": {"link": "https://x.y"}})
    data = await cached.get_data(key)
    data["answers"]["link"] = "changed by the caller"  # must not leak into the cache
    assert (await cached.get_data(key))["answers"]["link"] == "https://x.y"
    plain = SqlStorage(create_session_factory(engine))
    assert await plain.get_state(key) == "OrderForm:answering"
    assert await plain.get_data(key) == {"answers": {"link": "https://x.y"}}
    await cached.set_state(key, None)
    assert await plain.get_state(key) is None
    await engine.dispose()


async def test_fsm_storage_writes_behind_in_one_batch(database_url: str) -> None:
    """Changes reach the database together a moment later; reads see them at once; close()
    writes what is still pending."""
    keys = [StorageKey(bot_id=1, chat_id=n, user_id=n) for n in (21, 22)]
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    behind = SqlStorage(sessions, cache=True, write_behind=0.05)
    plain = SqlStorage(sessions)
    statements: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", _record(statements))
    for key in keys:
        await behind.set_state(key, "OrderForm:answering")
        await behind.update_data(key, {"link": f"https://x.y/{key.chat_id}"})
    assert await behind.get_state(keys[0]) == "OrderForm:answering"
    assert not [s for s in statements if s.startswith("INSERT")]  # nothing written yet
    assert await plain.get_state(keys[0]) is None
    await asyncio.sleep(0.3)
    assert len([s for s in statements if s.startswith("INSERT")]) == 1  # one statement for all
    assert await plain.get_data(keys[1]) == {"link": "https://x.y/22"}
    await behind.set_state(keys[1], "OrderForm:confirming")
    await behind.close()
    assert await plain.get_state(keys[1]) == "OrderForm:confirming"
    await engine.dispose()


async def test_fsm_storage_keeps_what_the_database_refused(tmp_path: Path) -> None:
    """A refused batch stays pending and is written by the next flush."""
    key = StorageKey(bot_id=1, chat_id=23, user_id=23)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    table = FsmRecord.__table__
    async with engine.begin() as connection:
        await connection.run_sync(table.create)
    sessions = create_session_factory(engine)
    behind = SqlStorage(sessions, cache=True, write_behind=60)
    await behind.set_state(key, "OrderForm:answering")
    async with engine.begin() as connection:
        await connection.run_sync(table.drop)
    await behind.flush()  # no such table: logged, kept
    async with engine.begin() as connection:
        await connection.run_sync(table.create)
    await behind.close()
    assert await SqlStorage(sessions).get_state(key) == "OrderForm:answering"
    await engine.dispose()


def _record(statements: list[str]) -> Callable[..., None]:
    def on_statement(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement.lstrip())

    return on_statement


def test_recently_seen_expires_and_forgets() -> None:
    now = [0.0]
    recent = RecentlySeen(ttl=10, clock=lambda: now[0])
    person = Person(language="fil", access=True)
    recent.saw_user(1, ("u", "U", "en"), person)
    assert recent.user(1, ("u", "U", "en")) == person
    assert recent.user(1, ("u", "Renamed", "en")) is None  # a changed profile is written again
    recent.forget_user(1)
    assert recent.user(1, ("u", "U", "en")) is None
    recent.saw_chat(5, ("private", None))
    assert recent.chat_is_fresh(5, ("private", None))
    now[0] = 11
    assert not recent.chat_is_fresh(5, ("private", None))


async def test_redis_fsm_storage_when_configured() -> None:
    """FSM_STORAGE=redis://… keeps conversations in Redis, under aiogram's RedisStorage keys
    (a running bot's conversations carry over), read and written once per update."""
    import os

    import pytest

    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.skip("TEST_REDIS_URL is not set (CI sets it when Redis answers)")
    from aiogram.fsm.storage.redis import RedisStorage

    from bot.app import FSM_KEYS, create_event_isolation, create_fsm_storage
    from bot.config import load_settings

    settings = load_settings(bot_token="1:x", panel_api_url="sandbox", fsm_storage=url)
    storage = create_fsm_storage(
        settings, create_session_factory(create_engine("sqlite+aiosqlite://"))
    )
    assert isinstance(storage, OncePerUpdate)
    plain = RedisStorage.from_url(url, key_builder=FSM_KEYS)
    key = StorageKey(bot_id=1, chat_id=12, user_id=12)
    try:
        async with create_event_isolation(storage).lock(key):
            await storage.set_state(key, "OrderForm:answering")
            await storage.update_data(key, {"service": 1448})
            await storage.update_data(key, {"link": "https://x.y"})
            assert await storage.get_state(key) == "OrderForm:answering"
            assert await plain.get_state(key) is None  # written when the update is over
        assert await plain.get_state(key) == "OrderForm:answering"
        assert await plain.get_data(key) == {"service": 1448, "link": "https://x.y"}
        assert await storage.get_data(key) == {"service": 1448, "link": "https://x.y"}
        async with create_event_isolation(storage).lock(key):
            await storage.set_state(key, None)
            await storage.set_data(key, {})
        assert await plain.get_state(key) is None
        assert await plain.get_data(key) == {}
    finally:
        await plain.set_state(key, None)
        await plain.set_data(key, {})
        await plain.close()
        await storage.close()


async def test_redis_conversation_lock_excludes_and_never_writes_after_expiry() -> None:
    """A second update of the member waits for the first and sees what it wrote; one that
    outlived its lock writes nothing (another update may have the key by then)."""
    import os

    import pytest

    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.skip("TEST_REDIS_URL is not set (CI sets it when Redis answers)")
    from aiogram.fsm.storage.redis import RedisStorage

    from bot.app import FSM_KEYS
    from storage.fsm_redis import RedisConversations

    plain = RedisStorage.from_url(url, key_builder=FSM_KEYS)
    short = RedisConversations(plain.redis, key_builder=FSM_KEYS, lock_seconds=0.2)
    storage = OncePerUpdate(short)
    isolation = storage.isolation(SimpleEventIsolation())
    key = StorageKey(bot_id=1, chat_id=13, user_id=13)
    order: list[str] = []

    async def first() -> None:
        async with isolation.lock(key):
            order.append("first in")
            await storage.update_data(key, {"step": 1})
            await asyncio.sleep(0.1)
            order.append("first out")

    async def second() -> None:
        await asyncio.sleep(0.02)
        async with isolation.lock(key):
            order.append("second in")
            assert await storage.get_data(key) == {"step": 1}

    try:
        await asyncio.gather(first(), second())
        assert order == ["first in", "first out", "second in"]
        async with isolation.lock(key):
            await storage.update_data(key, {"step": 2})
            await asyncio.sleep(0.3)  # the lock expires meanwhile
        assert await plain.get_data(key) == {"step": 1}
    finally:
        await plain.set_data(key, {})
        await plain.close()


async def test_shared_database_fsm_is_read_and_written_once_per_update(
    database_url: str,
) -> None:
    key = StorageKey(bot_id=1, chat_id=24, user_id=24)
    engine = create_engine(database_url)
    storage = OncePerUpdate(SqlStorage(create_session_factory(engine)))
    statements: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", _record(statements))
    async with storage.isolation(SimpleEventIsolation()).lock(key):
        assert await storage.get_state(key) is None
        await storage.set_state(key, "OrderForm:answering")
        await storage.update_data(key, {"service": 1448})
        data = await storage.get_data(key)
        data["service"] = 1  # the caller's copy: not the stored value
        await storage.update_data(key, {"link": "https://x.y"})
        assert [s.split()[0] for s in statements] == ["SELECT"]
    assert [s.split()[0] for s in statements] == ["SELECT", "INSERT"]
    fresh = SqlStorage(create_session_factory(engine))
    assert await fresh.get_state(key) == "OrderForm:answering"
    assert await fresh.get_data(key) == {"service": 1448, "link": "https://x.y"}
    await engine.dispose()


async def test_money_with_many_decimals_is_exact(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    amount = "0.00000000001234"  # a rate of 0.00001234 per 1000, for one unit
    async with sessions() as session, session.begin():
        order_id = await _draft(session, price=amount)
    async with sessions() as session:
        order = await orders.get_order(session, order_id)
        assert order is not None and order.price == Decimal(amount)


async def _fresh_schema(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


async def _migrate_in_a_process(url: str) -> tuple[int, str]:
    """One instance's start-up migration, in a process of its own (as on three machines)."""
    import asyncio
    import sys

    code = "import sys; from migrations import upgrade_database_sync as up; up(sys.argv[1])"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, url, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, stderr.decode()


async def test_concurrent_start_up_migrations_on_postgresql() -> None:
    """Three instances starting at once on a fresh database: an advisory lock lets one migrate
    while the others wait, then find nothing left to do (without it two crashed in three runs:
    duplicate pg_type)."""
    import asyncio
    import os

    import pytest

    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip("TEST_DATABASE_URL is not set")
    for _ in range(3):
        await _fresh_schema(url)
        results = await asyncio.gather(*(_migrate_in_a_process(url) for _ in range(3)))
        for returncode, stderr in results:
            assert returncode == 0, stderr
        engine = create_engine(url)
        async with engine.connect() as connection:
            versions = await connection.execute(text("SELECT version_num FROM alembic_version"))
            assert len(versions.all()) == 1
        await engine.dispose()
