"""PostgreSQL and Redis for the benchmarks: a database and a Redis db of the run's own.

From TEST_DATABASE_URL and TEST_REDIS_URL (as for the tests): the database is the given one's
name plus `_bench`, created and dropped by each benchmark that uses it (the given database only
serves to create and drop it); the Redis db is the given index itself, a scratch db flushed
before and after. Without both variables, the benchmarks that need them are skipped and say so.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from tests.cluster import Backends

DATABASE_ENV = "TEST_DATABASE_URL"
REDIS_ENV = "TEST_REDIS_URL"
MISSING = f"{DATABASE_ENV} and {REDIS_ENV} are not both set"


def bench_backends() -> Backends | None:
    from tests.cluster import Backends  # the codebase's own, like the Cluster it configures

    database, redis = os.environ.get(DATABASE_ENV), os.environ.get(REDIS_ENV)
    if not database or not redis:
        return None
    given = make_url(database).set(drivername="postgresql+asyncpg")
    name = f"{given.database or 'postgres'}_bench"
    return Backends(
        database_url=given.set(database=name).render_as_string(hide_password=False),
        maintenance_url=given.render_as_string(hide_password=False),
        database_name=name,
        redis_url=redis,
    )


async def fresh(backends: Backends) -> None:
    """An empty database and Redis db, before a run."""
    from tests.cluster import flush_redis, recreate_database

    await recreate_database(backends)
    await flush_redis(backends.redis_url)


async def dispose(backends: Backends) -> None:
    """Drop the database and empty the Redis db, after a run."""
    from tests.cluster import flush_redis, recreate_database

    await flush_redis(backends.redis_url)
    await recreate_database(backends, drop_only=True)
