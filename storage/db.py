"""Engine and session factory, plus the column types that keep money and time exact."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Dialect, Numeric, String, event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.types import TypeDecorator, TypeEngine

SQLITE_BUSY_TIMEOUT_MS = 5000


class Money(TypeDecorator[Decimal]):
    """An exact decimal: NUMERIC on PostgreSQL, text on SQLite (whose NUMERIC is a float)."""

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(48))
        # Unscaled NUMERIC keeps every digit (a rate with 8 decimals / 1000 needs 11).
        return dialect.type_descriptor(Numeric())

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"money must be a Decimal, not {type(value).__name__}")
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        number = Decimal(str(value))
        return number if dialect.name == "sqlite" else number.normalize()


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored as naive UTC and read back as aware UTC, on every database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: use datetime.now(UTC)")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def sqlite_path(database_url: str) -> Path | None:
    """The file behind a SQLite URL (None for in-memory or other databases)."""
    prefix = "sqlite+aiosqlite:///"
    if not database_url.startswith(prefix):
        return None
    path = database_url[len(prefix) :].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def _prepare_sqlite_file(url: str) -> None:
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


POOL_TIMEOUT = 30  # seconds an update may wait for a free connection before failing
POOL_RECYCLE_SECONDS = 1800


def create_engine(url: str, *, echo: bool = False, pool_size: int | None = None) -> AsyncEngine:
    """An async engine; SQLite gets WAL, foreign keys and a busy timeout on every connection.

    `pool_size` is the number of server connections this process may hold (PostgreSQL); beyond
    it a caller waits (up to POOL_TIMEOUT) instead of opening more.
    """
    _prepare_sqlite_file(url)
    # A session ends its own transaction (commit, or rollback on close) before it gives the
    # connection back, so the pool's own rollback on every return was a second round trip
    # (or, on SQLite, a second hop to aiosqlite's thread) per transaction for nothing.
    kwargs: dict[str, Any] = {"echo": echo, "pool_reset_on_return": None}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    else:
        # No ping before every checkout (a round trip per transaction, a tenth of the CPU of
        # an update under a burst): when the server drops connections (a restart), the first
        # statement to fail invalidates the whole pool, and that one operation fails (an
        # update is answered 500 and Telegram sends it again; the poller and the outbox retry).
        # Connections are renewed after half an hour, before idle timeouts along the way.
        kwargs["pool_recycle"] = POOL_RECYCLE_SECONDS
        if pool_size is not None:
            kwargs.update(pool_size=pool_size, max_overflow=0, pool_timeout=POOL_TIMEOUT)
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
    return engine


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
