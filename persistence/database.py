"""The connection pool, SQLAlchemy statements compiled once and run on asyncpg, and the map from
connection failures to one error.

SQLAlchemy Core defines every statement (and Alembic the schema); each is compiled once for
asyncpg's dialect and then run straight on an asyncpg pool, so a request pays for neither
statement compilation nor SQLAlchemy's result machinery. Every operation is a single statement,
atomic on its own, so none runs inside an explicit transaction (work of several statements
opens one with transaction()). Behind a pooler in transaction mode (pool_mode=transaction,
persistence/database_url.py) every block is a transaction instead, whose first statement sets
the statement timeout, since such poolers refuse it as a start-up setting.

A connection failure is one of two kinds. The database is down, slow or restarting: requests
get 503 until it is back. Or it refused us for a reason no retry fixes (wrong password, no such
database or role, a TLS certificate it will never accept): the server refuses to start with one
line that names the cause, and if that happens after start (a rotated password) requests get
503 too. Either way the log says why once per outage, not once per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlsplit

import asyncpg
from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.sql import ClauseElement

from persistence.database_url import Target, async_url, target
from persistence.embedded import embedded_postgres

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

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
# What PgBouncer says (SQLSTATE 08P01, like any lost connection) when it refuses a client for
# good, and what to do about it.
_POOLER_REFUSALS = {
    "unsupported startup parameter": (
        "a pooler in transaction mode (PgBouncer, Neon's or Supabase's pooler) is in front: "
        "add pool_mode=transaction to DATABASE_URL"
    ),
    "password authentication failed": "check the user and password in DATABASE_URL",
    "no such database": "check the database name in DATABASE_URL",
    "no such user": "check the user in DATABASE_URL",
}

# How long a request waits for the database before it answers 503 (docs/api.md: "When something
# is wrong"): opening a connection (CONNECT_TIMEOUT, in database_url.py), each
# statement, and all of a request's work on its connection (waiting for a free one included),
# so a client never waits 2 s or more on a database that is down or hung.
STATEMENT_TIMEOUT = 1.0
# All of one request's work on its connection, transactions of several statements included.
REQUEST_BUDGET = 1.5  # leaves half a second of the 2 s for everything else, even on a busy host
RELEASE_TIMEOUT = 0.5
# An outage is logged when it starts and when it ends; one of the same kind as the last,
# starting less than this many seconds after that one ended, is not logged again.
REPORT_INTERVAL = 10.0
# Migrations are run by an operator or at start-up, and may wait for a database that is waking up.
MIGRATION_CONNECT_TIMEOUT = 30.0
# Behind a pooler in transaction mode: the first statement of every block (one round trip).
_POOLED_BEGIN = f"BEGIN; SET LOCAL statement_timeout = {int(STATEMENT_TIMEOUT * 1000)}"
# On a Citus coordinator, asyncpg's look-up of a type it does not know yet (our enum), once per
# new connection, took half a second, half the statement timeout: Citus hides its shards from
# every catalog query with a filter on each pg_class row. Nothing here needs that filter (our
# statements name our tables, never a shard, and nothing lists the catalog's tables), so the
# app's sessions turn it off, where Citus is installed: run once per new connection, for the
# session (or, behind a pooler in transaction mode, where nothing may be set for the session,
# only to find out that Citus is there: then every transaction sets it).
_CITUS_SESSION = (
    "SELECT set_config('citus.override_table_visibility', 'off', $1)"
    " FROM pg_extension WHERE extname = 'citus'"
)
_CITUS_POOLED_BEGIN = f"{_POOLED_BEGIN}; SET LOCAL citus.override_table_visibility = off"
_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]
Row = dict[str, Any]
logger = logging.getLogger(__name__)


class DatabaseUnavailable(Exception):
    """The database could not be reached, did not answer in time, or refused us."""


class DatabaseMisconfigured(Exception):
    """The database refused us for a reason no retry fixes; the message names it."""


class InvalidValue(Exception):
    """PostgreSQL refused a value (SQLSTATE class 22, data exception): the client's fault."""


def refusal(error: BaseException) -> str | None:
    """Why a failed connection attempt will fail the same way until someone changes a setting
    (one line, without the password), or None when it may succeed later (the database is down,
    slow or restarting)."""
    message = _first_line(error) or type(error).__name__
    if isinstance(error, asyncpg.InvalidAuthorizationSpecificationError):
        return f"the database refused the credentials in DATABASE_URL: {message}"
    if isinstance(error, asyncpg.InvalidCatalogNameError):
        return f"the database refused the connection: {message}"
    if isinstance(error, asyncpg.exceptions.ClientConfigurationError):
        return f"the connection settings cannot work: {message}"
    if isinstance(error, ssl.SSLCertVerificationError):
        reason = error.verify_message or message
        return f"the database's TLS certificate was not accepted: {reason}"
    if isinstance(error, ConnectionError) and "rejected SSL upgrade" in message:
        return "the database does not speak TLS, which DATABASE_URL's sslmode requires"
    if isinstance(error, asyncpg.ProtocolViolationError):
        for said, advice in _POOLER_REFUSALS.items():
            if said in message:
                return f"the database refused the connection ({message}): {advice}"
    return None


def classified(error: BaseException) -> DatabaseMisconfigured | DatabaseUnavailable | None:
    """What a failure means for the server, wherever it was wrapped (SQLAlchemy and Alembic
    wrap asyncpg's errors): a refusal no retry fixes, an outage, or None for anything else."""
    seen: set[int] = set()
    found: BaseException | None = error
    while found is not None and id(found) not in seen:
        seen.add(id(found))
        reason = refusal(found)
        if reason is not None:
            return DatabaseMisconfigured(reason)
        if isinstance(found, _UNAVAILABLE):
            return DatabaseUnavailable(_outage(found))
        found = getattr(found, "orig", None) or found.__cause__
    return None


def _first_line(error: BaseException) -> str:
    """The first line of what error says, cut to 200 characters ("" when it says nothing)."""
    said = str(error).strip()
    return said.splitlines()[0][:200] if said else ""


def _outage(error: BaseException) -> str:
    """A short, stable description of why the database is unavailable, for the log."""
    said = _first_line(error)
    return f"{type(error).__name__}: {said}" if said else type(error).__name__


def engine_for(url: str) -> AsyncEngine:
    """A SQLAlchemy engine (for migrations) that connects exactly as the app's pool does. Its
    prepared statements get unique names, as SQLAlchemy advises behind a pooler in transaction
    mode (asyncpg#837): they outlive the client on the server connection, which the next
    `tasks-api migrate` may be given, and asyncpg's own names restart at 1 in every process.
    SQLAlchemy's engine is imported here, not with the module: serving never needs it (about
    7 MB per process)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    arguments = {**target(url).arguments, "timeout": MIGRATION_CONNECT_TIMEOUT}
    dbapi = PGDialect_asyncpg.import_dbapi()  # type: ignore[no-untyped-call]

    async def connect() -> asyncpg.Connection:
        return await asyncpg.connect(**arguments)

    def creator() -> Any:
        return dbapi.connect(async_creator_fn=connect, prepared_statement_name_func=_unique_name)

    return create_async_engine(async_url(url), pool_size=1, creator=creator)


def _unique_name() -> str:
    return f"__tasks_api_{uuid.uuid4().hex}__"


@dataclass(frozen=True)
class Statement:
    """A SQL statement compiled for asyncpg, with its named parameters in positional order, and
    its name (`tasks.create`): what its trace span is called, never its parameters."""

    sql: str
    names: tuple[str, ...]
    constants: Mapping[str, Any]  # values the statement itself gives (`version + 1`, LIMIT 100)
    source: ClauseElement | None = field(default=None, compare=False, repr=False)  # compiled from
    name: str = "statement"
    # Its span's attributes (OpenTelemetry's db.* conventions) that do not depend on the database.
    attributes: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def compile(cls, statement: ClauseElement, name: str) -> Statement:
        compiled: Any = statement.compile(dialect=_DIALECT)
        names = tuple(getattr(compiled, "positiontup", None) or ())
        constants = {
            name: bind.value
            for name, bind in compiled.binds.items()
            if name in names and bind.value is not None
        }
        sql = str(compiled)
        return cls(sql, names, constants, statement, name, _attributes(statement, sql))

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        return [values[name] if name in values else self.constants[name] for name in self.names]


def _attributes(statement: ClauseElement, sql: str) -> dict[str, Any]:
    """db.* attributes of a statement's spans (which are named by the statement): what it does
    and to which table, and its text with placeholders ($1). Each attribute costs every traced
    statement about 3 µs (recorded, then encoded for export): only these."""
    from sqlalchemy.sql.util import find_tables

    # The statement's own operation: a SELECT whose WITH changes rows is a SELECT.
    kinds = ("insert", "update", "delete")
    changes = [kind.upper() for kind in kinds if getattr(statement, f"is_{kind}", False)]
    operation = changes[0] if changes else "SELECT"
    tables = sorted({t.name for t in find_tables(statement, include_crud=True) if t.name})
    attributes: dict[str, Any] = {
        "db.system.name": "postgresql",
        "db.operation.name": operation,
        "db.query.text": sql,
    }
    if len(tables) == 1:
        attributes["db.collection.name"] = tables[0]
    return attributes


# The statements the current request has run (a one-item list), for its log line; set by the
# HTTP adapter for each request, None outside one.
statement_count: ContextVar[list[int] | None] = ContextVar("statement_count", default=None)


def _counted() -> None:
    counter = statement_count.get()
    if counter is not None:
        counter[0] += 1


class Connection:
    """One pooled connection, running compiled statements and returning rows as dicts; with a
    tracer, each statement run under a recorded span gets a span of its own (a client span named
    by the statement, with OpenTelemetry's db.* attributes and never a parameter)."""

    def __init__(self, raw: asyncpg.Connection, traced: Traced | None = None) -> None:
        self._raw = raw
        self._traced = traced

    async def fetch_all(self, statement: Statement, **values: Any) -> list[Row]:
        records = await self._run(self._raw.fetch, statement, values)
        return [dict(record) for record in records]

    async def fetch_one(self, statement: Statement, **values: Any) -> Row | None:
        record = await self._run(self._raw.fetchrow, statement, values)
        return None if record is None else dict(record)

    async def execute(self, statement: Statement, **values: Any) -> None:
        await self._run(self._raw.execute, statement, values)

    def _run(
        self, call: Callable[..., Awaitable[Any]], statement: Statement, values: Mapping[str, Any]
    ) -> Awaitable[Any]:
        """call (one of asyncpg's) with the statement; under its span when it is traced
        (untraced, asyncpg's own awaitable, with no layer between)."""
        _counted()
        arguments = statement.arguments(values)
        if self._traced is None or not _recording():
            return call(statement.sql, *arguments)
        return self._traced.run(call, statement, arguments)


def _recording() -> bool:
    return otel_trace.get_current_span().is_recording()


class Traced:
    """Statement spans for one database: its tracer and where the database is."""

    def __init__(self, tracer: Tracer, database: Target) -> None:
        self.tracer = tracer
        where = urlsplit(str(database.arguments.get("dsn", "")))
        self.attributes: dict[str, Any] = {"db.namespace": unquote(where.path.lstrip("/"))}
        if where.hostname:  # not a Unix socket (its directory is in the query)
            self.attributes["server.address"] = where.hostname
            self.attributes["server.port"] = where.port or 5432

    async def run(
        self, call: Callable[..., Awaitable[Any]], statement: Statement, arguments: list[Any]
    ) -> Any:
        with _StatementSpan(self, statement):
            return await call(statement.sql, *arguments)


class _StatementSpan:
    """A statement's client span, current while it runs (a class, not a generator: it is on the
    path of every traced statement, where each layer costs)."""

    __slots__ = ("_span", "_token")

    def __init__(self, traced: Traced, statement: Statement) -> None:
        self._span = traced.tracer.start_span(
            statement.name, kind=SpanKind.CLIENT,
            attributes={**traced.attributes, **statement.attributes},
            record_exception=False, set_status_on_exception=False,
        )  # fmt: skip
        self._token = otel_context.attach(otel_trace.set_span_in_context(self._span))

    def __enter__(self) -> Span:
        return self._span

    def __exit__(self, kind: Any, error: BaseException | None, _trace: Any) -> None:
        span = self._span
        if error is not None:
            code = getattr(error, "sqlstate", None)
            if isinstance(code, str):
                span.set_attribute("db.response.status_code", code)
            span.set_attribute("error.type", code or type(error).__qualname__)
            span.set_status(StatusCode.ERROR, type(error).__qualname__)
        otel_context.detach(self._token)
        span.end()


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
        *,
        pool_size: int,
        behind_transaction_pooler: bool = False,
        traced: Traced | None = None,
    ) -> None:
        self.pool = pool
        self.traced = traced  # statement spans, when tracing is on
        # Turns at the pool, first come first served. asyncpg's own queue lets a newcomer take
        # the connection that was just released for a waiter, which then queues again at the
        # back: under load a few requests wait many times over (the slowest 1% took twice as
        # long with a pool of 10 at 64 connections as with the turns).
        self._turns = asyncio.Semaphore(pool_size)
        self.url = url
        self._loggers = loggers  # the list the pool's acquire and release hooks read
        self._watcher = watcher or _Unwatched()
        self._pooled = behind_transaction_pooler
        self.citus = False  # Citus is installed (found by the first connection)
        self.in_use = 0  # connections handed out
        self.waiting = 0  # requests waiting for one
        self.trouble: str | None = None  # why the database is unavailable, until it is back
        self._down_since, self._recovered_at = 0.0, -REPORT_INTERVAL
        self._answered_503, self._reported, self._last_kind = 0, False, ""

    @property
    def tracer(self) -> Tracer | None:
        """The process's tracer, when tracing is on: whoever uses this database traces with it."""
        return None if self.traced is None else self.traced.tracer

    @property
    def _begin(self) -> str:
        """The first statement of every block behind a pooler in transaction mode."""
        return _CITUS_POOLED_BEGIN if self.citus else _POOLED_BEGIN

    async def _new_connection(self, raw: asyncpg.Connection) -> None:
        """Set up a connection the pool has just opened (see _CITUS_SESSION)."""
        if await raw.fetchval(_CITUS_SESSION, self._pooled) is not None:
            self.citus = True

    def _changed(self) -> None:
        self._watcher.pool_changed(self.pool.get_size(), self.in_use, self.waiting)

    def _unavailable(self, reason: str, *, refused: bool = False) -> None:
        """Say why requests get 503 once per outage, with its first cause (a database going
        down passes through several: shutting down, connection lost, no socket, starting up),
        and a refusal no retry fixes whenever it is new, since that one needs someone to act.
        An outage like the one that ended less than REPORT_INTERVAL ago (an overloaded pool
        that fails some requests and serves others) is not said again."""
        now = time.monotonic()
        if self.trouble is None:
            self._down_since, self._answered_503 = now, 0
            kind = reason.partition(":")[0]
            self._reported = (
                refused or kind != self._last_kind or (now - self._recovered_at >= REPORT_INTERVAL)
            )
            self._last_kind = kind
        self._answered_503 += 1
        if self.trouble is None or (refused and reason != self.trouble):
            self.trouble = reason
            if self._reported or refused:
                self._reported = True
                logger.error("database unavailable, answering 503 until it is back: %s", reason)

    def _available(self) -> None:
        if self.trouble is not None:
            self.trouble = None
            self._recovered_at = time.monotonic()
            if self._reported:
                down = self._recovered_at - self._down_since
                logger.warning("database available again after %.1f s (%d requests answered 503)",
                               down, self._answered_503)  # fmt: skip

    async def _acquire(self) -> asyncpg.Connection:
        """A pooled connection (opening one is bounded by CONNECT_TIMEOUT); a refusal that no
        retry fixes is DatabaseMisconfigured."""
        self.waiting += 1
        self._changed()
        try:
            await self._turns.acquire()
            try:
                return await self.pool.acquire()
            except BaseException:
                self._turns.release()
                raise
        except Exception as error:
            reason = refusal(error)
            if reason is not None:
                raise DatabaseMisconfigured(reason) from error
            raise
        finally:
            self.waiting -= 1

    async def _release(self, raw: asyncpg.Connection) -> None:
        """Give back a connection from _acquire, and its turn."""
        try:
            await self.pool.release(raw, timeout=RELEASE_TIMEOUT)
        finally:
            self._turns.release()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A connection for the block, which must finish within REQUEST_BUDGET."""
        async with self._connection(transaction=False) as connection:
            yield connection

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A connection in a transaction: committed when the block ends, rolled back when it
        raises (the one place that opens transactions)."""
        async with self._connection(transaction=True) as connection:
            yield connection

    @asynccontextmanager
    async def _connection(self, *, transaction: bool) -> AsyncIterator[Connection]:
        """A connection that failed or timed out is closed, never returned to the pool: asyncpg
        would first wait for its query to be cancelled, which on a hung server never happens."""
        try:
            async with asyncio.timeout(REQUEST_BUDGET):
                raw = await self._acquire()
                self.in_use += 1
                self._changed()
                try:
                    if self._pooled:
                        async with _pooled_transaction(raw, self._begin):
                            yield Connection(raw, self.traced)
                    elif transaction:
                        async with raw.transaction():
                            yield Connection(raw, self.traced)
                    else:
                        yield Connection(raw, self.traced)
                except (*_UNAVAILABLE, asyncio.CancelledError):  # cut off by the budget too
                    _discard(raw)
                    raise
                else:  # not after the connection alone: a pooler hands one out while the
                    self._available()  # database behind it is down
                finally:
                    self.in_use -= 1
                    await self._release(raw)
                    self._changed()
        except DatabaseMisconfigured as error:
            self._unavailable(str(error), refused=True)
            raise DatabaseUnavailable(str(error)) from error
        except _UNAVAILABLE as error:
            if isinstance(error, _TIMED_OUT):
                self._watcher.timed_out()
            if not isinstance(error, asyncpg.QueryCanceledError):  # one slow statement is no
                self._unavailable(_outage(error))  # outage; no answer at all within the budget is
            raise DatabaseUnavailable(type(error).__name__) from error
        except asyncpg.DataError as error:
            raise InvalidValue(str(error)[:200]) from error

    async def probe(self) -> None:
        """Open a connection and run a statement, as the first request would: raise
        DatabaseMisconfigured for a refusal no retry fixes; a database that is down or slow
        leaves its cause in `trouble` (requests get 503 until it is back)."""
        try:
            async with asyncio.timeout(REQUEST_BUDGET):
                raw = await self._acquire()
                try:
                    if self._pooled:
                        async with _pooled_transaction(raw, self._begin):
                            await raw.fetchval("SELECT 1")
                    else:
                        await raw.fetchval("SELECT 1")
                except _UNAVAILABLE:
                    _discard(raw)
                    raise
                finally:
                    await self._release(raw)
        except _UNAVAILABLE as error:
            reason = refusal(error)  # PgBouncer may refuse only at the first statement
            if reason is not None:
                raise DatabaseMisconfigured(reason) from error
            self.trouble = _outage(error)  # said by whoever opened it (the server's lifespan)
            self._down_since, self._answered_503, self._reported = time.monotonic(), 0, True

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


def _discard(raw: asyncpg.Connection) -> None:
    """Close a connection that failed or timed out, unless it is gone already (asyncpg hands a
    connection that died back to its pool by itself)."""
    with contextlib.suppress(asyncpg.InterfaceError):
        raw.terminate()


@asynccontextmanager
async def _pooled_transaction(raw: asyncpg.Connection, begin: str) -> AsyncIterator[None]:
    """The block as one transaction whose statements PostgreSQL cancels after
    STATEMENT_TIMEOUT, for a pooler in transaction mode (which hands the next transaction to
    any of its server connections, so nothing may be set for the session)."""
    await raw.execute(begin)
    try:
        yield
    except (*_UNAVAILABLE, asyncio.CancelledError):
        raise  # lost, or cut off mid-statement: the caller closes it, which rolls back
    except BaseException:
        await raw.execute("ROLLBACK")  # if this fails too, its error closes the connection
        raise
    await raw.execute("COMMIT")


def _pool_arguments(database: Target) -> dict[str, Any]:
    """asyncpg.create_pool()'s connection arguments: the URL's, and the statement timeout as a
    start-up setting unless a pooler in transaction mode (which refuses it) is in front."""
    arguments = dict(database.arguments)
    settings = {"application_name": "tasks-api"}
    if not database.behind_transaction_pooler:
        # The server gives up too, so a statement cut off here does not run on unseen.
        settings["statement_timeout"] = str(int(STATEMENT_TIMEOUT * 1000))
    arguments["server_settings"] = {**settings, **arguments.get("server_settings", {})}
    return arguments


@asynccontextmanager
async def open_database(
    url: str,
    *,
    pool_size: int = 10,
    watcher: Watcher | None = None,
    tracer: Tracer | None = None,
) -> AsyncIterator[Database]:
    """A Database for the lifetime of the block; its connections are closed afterwards.

    One connection is opened first: a refusal no retry fixes raises DatabaseMisconfigured (the
    server must not start); a database that is down leaves its cause in `trouble` (a server
    starts anyway and answers 503, and /readyz says so, until it is up).
    """
    loggers: list[QueryLogger] = []

    async def setup(raw: asyncpg.Connection) -> None:
        for logger in loggers:
            raw.add_query_logger(logger)

    async def reset(raw: asyncpg.Connection) -> None:
        # Nothing to reset: statements here change no session state (asyncpg's default reset
        # costs a round trip on every release). Loggers come off, so a removed one is gone.
        for logger in loggers:
            raw.remove_query_logger(logger)

    async def init(raw: asyncpg.Connection) -> None:
        await handle._new_connection(raw)

    database = target(url)
    try:
        pool = await asyncpg.create_pool(
            min_size=0,  # start even while the database is down; /readyz says so
            max_size=pool_size,
            command_timeout=STATEMENT_TIMEOUT,
            init=init,
            setup=setup,
            reset=reset,
            **_pool_arguments(database),
        )
    except _UNAVAILABLE as error:
        raise DatabaseUnavailable(type(error).__name__) from error
    handle = Database(
        pool,
        url,
        loggers,
        watcher,
        pool_size=pool_size,
        behind_transaction_pooler=database.behind_transaction_pooler,
        traced=None if tracer is None else Traced(tracer, database),
    )
    try:
        await handle.probe()
        yield handle
    finally:
        await pool.close()


@asynccontextmanager
async def connect(
    url: str | None,
    data_dir: Path,
    *,
    pool_size: int = 10,
    watcher: Watcher | None = None,
    tracer: Tracer | None = None,
) -> AsyncIterator[Database]:
    """The database at url or, with no url, the embedded one under data_dir (started and
    stopped with the block)."""
    async with AsyncExitStack() as stack:
        if url is None:
            url = await stack.enter_async_context(embedded_postgres(data_dir))
        database = open_database(url, pool_size=pool_size, watcher=watcher, tracer=tracer)
        yield await stack.enter_async_context(database)
