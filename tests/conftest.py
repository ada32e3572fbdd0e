"""Shared fixtures: databases (SQLite, and PostgreSQL when TEST_DATABASE_URL is set), the bots
under test (end to end in `tests/harness.py`, in-process in `tests/rig.py`), the playground and
a fake clock. Plain builders of test data are in `tests/factories.py`."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from migrations import upgrade_database
from storage.db import create_engine, create_session_factory
from storage.models import Base
from tests.factories import FakeClock

if TYPE_CHECKING:
    from playground.run import Playground
    from tests.rig import MakeRig, Rig


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--screenshot-dir", type=Path, help="save the browser test's screenshots here"
    )


@pytest.fixture
def screenshot_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """Where the browser test saves its screenshots: `make screenshot` passes docs/."""
    chosen: Path | None = request.config.getoption("--screenshot-dir")
    return chosen or tmp_path


BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])


async def _reset_postgres(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A freshly migrated database on each backend."""
    if request.param == "postgresql":
        url = os.environ["TEST_DATABASE_URL"]
        await _reset_postgres(url)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    await upgrade_database(url)
    return url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(engine)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"


__all__ = ["Base"]


@pytest.fixture
async def running_bot(tmp_path: Path) -> AsyncIterator[object]:
    """The bot running against the Telegram emulator and the sandbox panel (default settings)."""
    from tests.harness import start_bot, stop_bot

    harness = await start_bot(tmp_path)
    yield harness
    await stop_bot(harness)
    # Telegram refused nothing the bot sent: no bad HTML, no re-edit to identical content.
    assert not harness.emulator.errors, harness.emulator.errors


@pytest.fixture
async def make_rig(tmp_path: Path) -> AsyncIterator[MakeRig]:
    """Starts the in-process rig (`tests/rig.py`) with settings overrides, and stops it after
    the test. One rig a test: a second would share the first one's database."""
    from tests.rig import Rig

    started: list[Rig] = []

    async def start(**overrides: Any) -> Rig:
        assert not started, "this test has its rig already"
        started.append(await Rig.start(tmp_path, **overrides))
        return started[0]

    yield start
    for rig in started:
        await rig.stop()


@pytest.fixture
async def rig(make_rig: MakeRig) -> Rig:
    """The in-process rig with its default settings. A module that needs others overrides
    this fixture with one that calls `make_rig(**overrides)`."""
    return await make_rig()


@pytest.fixture
async def playground(tmp_path: Path) -> AsyncIterator[Playground]:
    """The offline playground (emulator, sandbox panel, bot and its web page) on a free port."""
    from playground.run import Playground

    world = Playground(database_path=tmp_path / "data" / "playground.db")
    await world.start(port=0)
    yield world
    await world.stop()


@pytest.fixture
def clock() -> FakeClock:
    """A clock at 1000 s that moves only when the test sets `clock.now`."""
    return FakeClock()
