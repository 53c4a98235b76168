"""The connection pool, SQLAlchemy statements compiled once and run on asyncpg, and the map from
connection failures to one error.

SQLAlchemy Core defines every statement (and Alembic the schema); each is compiled once for
asyncpg's dialect and then run straight on an asyncpg pool, so a request pays for neither
statement compilation nor SQLAlchemy's result machinery. Every operation is a single statement,
atomic on its own, so none runs inside an explicit transaction (work of several statements would
add one here, with asyncpg's connection.transaction()).
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql import ClauseElement

from persistence.embedded import embedded_postgres

# Failures that mean "the database cannot serve us now", as opposed to a bug in a statement:
# no connection, a connection lost mid-statement (asyncpg then reports InterfaceError or
# InternalClientError), a timeout, and SQLSTATE classes 08 (connection), 53 (insufficient
# resources), 57 (operator intervention: shutdown, statement timeout) and 58 (system error).
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.InsufficientResourcesError,
    asyncpg.OperatorInterventionError,
    asyncpg.PostgresSystemError,
)

# How long a request waits for the database before it answers 503 (README: "What clients get
# when something is wrong"): opening a connection, each statement, and all of a request's work
# on its connection (waiting for a free one included), so a client never waits 2 s or more on
# a database that is down or hung.
CONNECT_TIMEOUT = 0.8
STATEMENT_TIMEOUT = 1.0
# All of one request's work on its connection, transactions of several statements included.
REQUEST_BUDGET = 1.5  # leaves half a second of the 2 s for everything else, even on a busy host
RELEASE_TIMEOUT = 0.5
# Migrations are run by an operator or at start-up, and may wait for a database that is waking up.
MIGRATION_CONNECT_TIMEOUT = 30.0

# URL options asyncpg reads itself from the DSN.
_DSN_OPTIONS = frozenset({
    "host", "port", "dbname", "database", "user", "password", "passfile", "service",
    "sslmode", "sslcert", "sslkey", "sslrootcert", "sslcrl", "sslpassword", "sslnegotiation",
    "ssl_min_protocol_version", "ssl_max_protocol_version", "target_session_attrs",
    "krbsrvname", "gsslib",
})  # fmt: skip
# libpq options asyncpg has no use for; dropped.
_LIBPQ_ONLY = frozenset({"channel_binding", "gssencmode"})
# asyncpg options a URL may carry that must reach it as numbers, e.g. statement_cache_size=0 behind
# a transaction-mode pooler (PgBouncer, Supavisor), which cannot keep prepared statements.
_INTEGER_OPTIONS = frozenset({"statement_cache_size", "max_cached_statement_lifetime",
                              "max_cacheable_statement_size"})  # fmt: skip
_TRANSLATED = frozenset({"application_name", "options", "connect_timeout"})
_SUPPORTED = _DSN_OPTIONS | _INTEGER_OPTIONS | _TRANSLATED | _LIBPQ_ONLY
_SSLMODES = frozenset({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"})
_FILE_OPTIONS = ("passfile", "sslcert", "sslkey", "sslrootcert", "sslcrl")
_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]
Row = dict[str, Any]


class DatabaseUnavailable(Exception):
    """The database could not be reached or did not answer in time."""


class InvalidValue(Exception):
    """PostgreSQL refused a value (SQLSTATE class 22, data exception): the client's fault."""


def _postgresql_scheme(url: str) -> str:
    """postgres:// (as Heroku and others write it) spelled postgresql://."""
    return (
        "postgresql://" + url.removeprefix("postgres://") if url.startswith("postgres://") else url
    )


def async_url(url: str) -> URL:
    """A PostgreSQL URL (postgres:// or postgresql://) as SQLAlchemy's asyncpg URL, without
    options: engines made by engine_for() take those from connect_arguments()."""
    url = _postgresql_scheme(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError("DATABASE_URL must be a PostgreSQL URL")
    return parsed.set(drivername="postgresql+asyncpg", query={})


def engine_for(url: str) -> AsyncEngine:
    """A SQLAlchemy engine (for migrations) that connects exactly as the app's pool does."""
    arguments = {**connect_arguments(url), "timeout": MIGRATION_CONNECT_TIMEOUT}

    async def connect() -> asyncpg.Connection:
        return await asyncpg.connect(**arguments)

    return create_async_engine(async_url(url), pool_size=1, async_creator=connect)


def _server_settings(options: str) -> dict[str, str]:
    """libpq's `options` (`-c name=value`, `--name=value`) as server settings."""
    settings: dict[str, str] = {}
    words = shlex.split(options)
    while words:
        word = words.pop(0)
        if word == "-c" and words:
            word = words.pop(0)
        elif word.startswith("-c") or word.startswith("--"):
            word = word[2:]
        else:
            raise ValueError("DATABASE_URL option options must be `-c name=value` pairs")
        name, equals, value = word.partition("=")
        if not equals or not name:
            raise ValueError("DATABASE_URL option options must be `-c name=value` pairs")
        settings[name.replace("-", "_")] = value
    return settings


def connect_arguments(url: str) -> dict[str, Any]:
    """asyncpg.connect() arguments for a PostgreSQL URL: the DSN for asyncpg to read, with the
    options it would misread taken out and translated. ValueError names any option that cannot
    work, so a bad URL stops the server at start instead of failing every request."""
    url = _postgresql_scheme(url)
    parts = urlsplit(url)
    if parts.scheme.partition("+")[0] != "postgresql":
        raise ValueError("DATABASE_URL must be a PostgreSQL URL")
    kept: list[tuple[str, str]] = []
    arguments: dict[str, Any] = {"timeout": CONNECT_TIMEOUT}
    server_settings: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in _LIBPQ_ONLY:
            continue
        if name in _INTEGER_OPTIONS:
            if not (value.isascii() and value.isdigit()):
                raise ValueError(f"DATABASE_URL option {name} must be a whole number")
            arguments[name] = int(value)
        elif name == "connect_timeout":
            if not (value.isascii() and value.isdigit() and int(value) > 0):
                raise ValueError("DATABASE_URL option connect_timeout must be whole seconds > 0")
            arguments["timeout"] = min(float(value), CONNECT_TIMEOUT)
        elif name == "application_name":
            server_settings["application_name"] = value
        elif name == "options":
            server_settings.update(_server_settings(value))
        elif name in _DSN_OPTIONS:
            _check_dsn_option(name, value)
            kept.append((name, value))
        else:
            supported = ", ".join(sorted(_SUPPORTED))
            raise ValueError(
                f"DATABASE_URL option {name[:40]!r} is not supported; use one of {supported}"
            )
    arguments["dsn"] = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(kept)))
    if server_settings:
        arguments["server_settings"] = server_settings
    return arguments


def _check_dsn_option(name: str, value: str) -> None:
    if name == "sslmode" and value not in _SSLMODES:
        raise ValueError(
            f"DATABASE_URL option sslmode must be one of {', '.join(sorted(_SSLMODES))}"
        )
    system_roots = name == "sslrootcert" and value == "system"
    if name in _FILE_OPTIONS and not system_roots and not Path(value).expanduser().is_file():
        raise ValueError(f"DATABASE_URL option {name} names a file that does not exist")


@dataclass(frozen=True)
class Statement:
    """A SQL statement compiled for asyncpg, with its named parameters in positional order."""

    sql: str
    names: tuple[str, ...]
    constants: Mapping[str, Any]  # values the statement itself gives (`version + 1`, LIMIT 100)
    source: ClauseElement | None = field(default=None, compare=False, repr=False)  # compiled from

    @classmethod
    def compile(cls, statement: ClauseElement) -> Statement:
        compiled: Any = statement.compile(dialect=_DIALECT)
        names = tuple(getattr(compiled, "positiontup", None) or ())
        constants = {
            name: bind.value
            for name, bind in compiled.binds.items()
            if name in names and bind.value is not None
        }
        return cls(str(compiled), names, constants, statement)

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        return [values[name] if name in values else self.constants[name] for name in self.names]


# The statements the current request has run (a one-item list), for its log line; set by the
# HTTP adapter for each request, None outside one.
statement_count: ContextVar[list[int] | None] = ContextVar("statement_count", default=None)


def _counted() -> None:
    counter = statement_count.get()
    if counter is not None:
        counter[0] += 1


class Connection:
    """One pooled connection, running compiled statements and returning rows as dicts."""

    def __init__(self, raw: asyncpg.Connection) -> None:
        self._raw = raw

    async def fetch_all(self, statement: Statement, **values: Any) -> list[Row]:
        _counted()
        records = await self._raw.fetch(statement.sql, *statement.arguments(values))
        return [dict(record) for record in records]

    async def fetch_one(self, statement: Statement, **values: Any) -> Row | None:
        _counted()
        record = await self._raw.fetchrow(statement.sql, *statement.arguments(values))
        return None if record is None else dict(record)


QueryLogger = Callable[[Any], None]
# A statement PostgreSQL cancelled for its statement_timeout, or one the client gave up on.
_TIMED_OUT = (asyncpg.QueryCanceledError, TimeoutError)


class Watcher(Protocol):
    """Told how the pool is used and when statements time out (for metrics)."""

    def pool_changed(self, size: int, in_use: int, waiting: int) -> None: ...

    def timed_out(self) -> None: ...


class _Unwatched:
    def pool_changed(self, size: int, in_use: int, waiting: int) -> None:
        pass

    def timed_out(self) -> None:
        pass


class Database:
    """The application's handle on PostgreSQL; handlers get one from the lifespan state."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        url: str,
        loggers: list[QueryLogger],
        watcher: Watcher | None = None,
    ) -> None:
        self.pool = pool
        self.url = url
        self._loggers = loggers  # the list the pool's acquire and release hooks read
        self._watcher = watcher or _Unwatched()
        self.in_use = 0  # connections handed out
        self.waiting = 0  # requests waiting for one

    def _changed(self) -> None:
        self._watcher.pool_changed(self.pool.get_size(), self.in_use, self.waiting)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A connection for the block, which must finish within REQUEST_BUDGET.

        A connection that failed or timed out is closed, never returned to the pool: asyncpg
        would first wait for its query to be cancelled, which on a hung server never happens.
        """
        try:
            async with asyncio.timeout(REQUEST_BUDGET):
                self.waiting += 1
                self._changed()
                try:
                    raw = await self.pool.acquire()  # opening one is bounded by CONNECT_TIMEOUT
                finally:
                    self.waiting -= 1
                self.in_use += 1
                self._changed()
                try:
                    yield Connection(raw)
                except _UNAVAILABLE:
                    raw.terminate()
                    raise
                finally:
                    self.in_use -= 1
                    await self.pool.release(raw, timeout=RELEASE_TIMEOUT)
                    self._changed()
        except _UNAVAILABLE as error:
            if isinstance(error, _TIMED_OUT):
                self._watcher.timed_out()
            raise DatabaseUnavailable(type(error).__name__) from error
        except asyncpg.DataError as error:
            raise InvalidValue(str(error)[:200]) from error

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A connection in a transaction: committed when the block ends, rolled back when it
        raises (the one place that opens transactions)."""
        async with self.connection() as connection, connection._raw.transaction():
            yield connection

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
async def open_database(
    url: str, *, pool_size: int = 10, watcher: Watcher | None = None
) -> AsyncIterator[Database]:
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

    arguments = connect_arguments(url)
    arguments["server_settings"] = {
        "application_name": "tasks-api",
        # The server gives up too, so a statement cut off here does not run on unseen.
        "statement_timeout": str(int(STATEMENT_TIMEOUT * 1000)),
        **arguments.get("server_settings", {}),
    }
    try:
        pool = await asyncpg.create_pool(
            min_size=0,  # start even while the database is down; /readyz says so
            max_size=pool_size,
            command_timeout=STATEMENT_TIMEOUT,
            setup=setup,
            reset=reset,
            **arguments,
        )
    except _UNAVAILABLE as error:
        raise DatabaseUnavailable(type(error).__name__) from error
    try:
        yield Database(pool, url, loggers, watcher)
    finally:
        await pool.close()


@asynccontextmanager
async def connect(
    url: str | None, data_dir: Path, *, pool_size: int = 10, watcher: Watcher | None = None
) -> AsyncIterator[Database]:
    """The database at url or, with no url, the embedded one under data_dir (started and
    stopped with the block)."""
    async with AsyncExitStack() as stack:
        if url is None:
            url = await stack.enter_async_context(embedded_postgres(data_dir))
        database = open_database(url, pool_size=pool_size, watcher=watcher)
        yield await stack.enter_async_context(database)
