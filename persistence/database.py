"""The connection pool, SQLAlchemy statements compiled once and run on asyncpg, and the map from
connection failures to one error.

SQLAlchemy Core defines every statement (and Alembic the schema); each is compiled once for
asyncpg's dialect and then run straight on an asyncpg pool, so a request pays for neither
statement compilation nor SQLAlchemy's result machinery. Every operation is a single statement,
atomic on its own, so none runs inside an explicit transaction (work of several statements would
add one here, with asyncpg's connection.transaction()).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import URL, make_url
from sqlalchemy.sql import ClauseElement

from persistence.embedded import embedded_postgres

# Failures that mean "the database cannot serve us now", as opposed to a bug in a statement.
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.QueryCanceledError,
    asyncpg.AdminShutdownError,
)

# libpq URL options that asyncpg spells differently or does not take.
_LIBPQ_ONLY = ("channel_binding", "target_session_attrs", "gssencmode")
# asyncpg options a URL may carry that must reach it as numbers, e.g. statement_cache_size=0 behind
# a transaction-mode pooler (PgBouncer, Supavisor), which cannot keep prepared statements.
_INTEGER_OPTIONS = ("statement_cache_size", "max_cached_statement_lifetime",
                    "max_cacheable_statement_size")  # fmt: skip
_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]
ACQUIRE_TIMEOUT = 5.0
Row = dict[str, Any]


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


def connect_arguments(url: str) -> dict[str, Any]:
    """asyncpg.connect() arguments for a PostgreSQL URL."""
    parsed = async_url(url)
    arguments: dict[str, Any] = {
        "host": parsed.host,
        "port": parsed.port,
        "user": parsed.username,
        "password": parsed.password,
        "database": parsed.database,
    }
    for name, value in parsed.query.items():
        text = value if isinstance(value, str) else value[-1]
        if name in _INTEGER_OPTIONS:
            if not text.isdigit():
                raise ValueError(f"DATABASE_URL option {name} must be a whole number")
            arguments[name] = int(text)
        else:
            arguments[name] = text
    return {k: v for k, v in arguments.items() if v is not None}


@dataclass(frozen=True)
class Statement:
    """A SQL statement compiled for asyncpg, with its named parameters in positional order."""

    sql: str
    names: tuple[str, ...]

    @classmethod
    def compile(cls, statement: ClauseElement) -> Statement:
        compiled = statement.compile(dialect=_DIALECT)
        return cls(str(compiled), tuple(getattr(compiled, "positiontup", None) or ()))

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        return [values[name] for name in self.names]


class Connection:
    """One pooled connection, running compiled statements and returning rows as dicts."""

    def __init__(self, raw: asyncpg.Connection) -> None:
        self._raw = raw

    async def fetch_all(self, statement: Statement, **values: Any) -> list[Row]:
        records = await self._raw.fetch(statement.sql, *statement.arguments(values))
        return [dict(record) for record in records]

    async def fetch_one(self, statement: Statement, **values: Any) -> Row | None:
        record = await self._raw.fetchrow(statement.sql, *statement.arguments(values))
        return None if record is None else dict(record)


QueryLogger = Callable[[Any], None]


class Database:
    """The application's handle on PostgreSQL; handlers get one from the lifespan state."""

    def __init__(self, pool: asyncpg.Pool, url: str, loggers: list[QueryLogger]) -> None:
        self.pool = pool
        self.url = url
        self._loggers = loggers  # the list the pool's acquire and release hooks read

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A connection for one statement, which is atomic on its own."""
        try:
            async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT) as raw:
                yield Connection(raw)
        except _UNAVAILABLE as error:
            raise DatabaseUnavailable(type(error).__name__) from error

    async def ping(self) -> bool:
        """Whether the database answers a query now."""
        try:
            async with self.connection() as connection:
                await connection._raw.fetchval("SELECT 1")
        except DatabaseUnavailable:
            return False
        return True

    def add_query_logger(self, logger: QueryLogger) -> None:
        """Call logger with every statement run from now on (for metrics, tracing and tests)."""
        self._loggers.append(logger)

    def remove_query_logger(self, logger: QueryLogger) -> None:
        self._loggers.remove(logger)


@asynccontextmanager
async def open_database(url: str, *, pool_size: int = 10) -> AsyncIterator[Database]:
    """A Database for the lifetime of the block; its connections are closed afterwards."""
    loggers: list[QueryLogger] = []

    async def setup(raw: asyncpg.Connection) -> None:
        for logger in loggers:
            raw.add_query_logger(logger)

    async def reset(raw: asyncpg.Connection) -> None:
        # Nothing to reset: statements here change no session state (asyncpg's default reset
        # costs a round trip on every release). Loggers come off, so a removed one is gone.
        for logger in loggers:
            raw.remove_query_logger(logger)

    try:
        pool = await asyncpg.create_pool(
            min_size=0,  # start even while the database is down; /readyz says so
            max_size=pool_size,
            timeout=5,
            command_timeout=30,
            server_settings={"application_name": "tasks-api"},
            setup=setup,
            reset=reset,
            **connect_arguments(url),
        )
    except _UNAVAILABLE as error:
        raise DatabaseUnavailable(type(error).__name__) from error
    try:
        yield Database(pool, url, loggers)
    finally:
        await pool.close()


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
