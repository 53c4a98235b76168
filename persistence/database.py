"""The engine, the one transaction helper, and the map from connection failures to one error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import sqlalchemy.exc
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from persistence.embedded import embedded_postgres

# Failures that mean "the database cannot serve us now", as opposed to a bug in a statement.
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
)

# libpq URL options that asyncpg spells differently or does not take.
_LIBPQ_ONLY = ("channel_binding", "target_session_attrs", "gssencmode")


class DatabaseUnavailable(Exception):
    """The database could not be reached or did not answer in time."""


def async_url(url: str) -> URL:
    """Turn any PostgreSQL URL (postgres://, postgresql://, libpq options) into an asyncpg one."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError("DATABASE_URL must be a PostgreSQL URL")
    query = {k: v for k, v in parsed.query.items() if k not in _LIBPQ_ONLY}
    if "sslmode" in query:
        query["ssl"] = query.pop("sslmode")
    return parsed.set(drivername="postgresql+asyncpg", query=query)


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An engine with a bounded pool that fails fast instead of queueing forever."""
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=5,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={
            "timeout": 5,
            "command_timeout": 30,
            "server_settings": {"application_name": "tasks-api"},
        },
    )


class Database:
    """The application's handle on PostgreSQL; handlers get one from the lifespan state."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed when the block succeeds, rolled back when it raises."""
        try:
            async with self.engine.begin() as connection:
                yield connection
        except _UNAVAILABLE as error:
            raise DatabaseUnavailable(type(error).__name__) from error

    async def ping(self) -> bool:
        """Whether the database answers a query now."""
        try:
            async with self.transaction() as connection:
                await connection.execute(text("SELECT 1"))
        except DatabaseUnavailable:
            return False
        return True

    async def dispose(self) -> None:
        await self.engine.dispose()


@asynccontextmanager
async def open_database(url: str, *, pool_size: int = 10) -> AsyncIterator[Database]:
    """A Database for the lifetime of the block; its connections are closed afterwards."""
    database = Database(create_engine(url, pool_size=pool_size))
    try:
        yield database
    finally:
        await database.dispose()


@asynccontextmanager
async def connect(
    url: str | None, data_dir: Path, *, pool_size: int = 10
) -> AsyncIterator[Database]:
    """The database at url or, with no url, the embedded one under data_dir (started and
    stopped with the block)."""
    async with AsyncExitStack() as stack:
        if url is None:
            url = await stack.enter_async_context(embedded_postgres(data_dir))
        yield await stack.enter_async_context(open_database(url, pool_size=pool_size))
