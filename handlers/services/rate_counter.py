"""How a process counts requests against the shared rate-limit windows (persistence/rate_limits.py).

RATE_LIMIT_MODE=exact: every counted request is one upsert, and its decision is made on the exact
shared total. Every counted request is then a write on the database, a read as much as a create.

RATE_LIMIT_MODE=batched (the default): a request is counted in this process's memory and decided
from the last shared total the process knows for its bucket, plus the hits the process has not
yet sent (and those in flight). Every RATE_LIMIT_SYNC_MS the process sends the hits of every
bucket it saw with one statement, which returns the buckets' new shared totals. A request makes
no database call for its limit.

The bound: a process learns of another's hits within one interval plus a round trip to the
database, and counts each of its own at once. So the requests admitted past a limit in one
window are at most those the client sent, to all processes together, during one interval plus
a round trip after its count crossed the limit: at a client's rate r, about
r x (RATE_LIMIT_SYNC_MS + round trip); never more than (processes - 1) x the limit, since each
process stops at the limit on its own counts. With one process the count is exact.

Windows are calendar minutes of the database's clock: each sync also reads that clock, and the
process reckons minutes by it (its own clock corrected by the difference, within half a round
trip), so every process and host agrees on when a minute turns. While the database cannot be
reached, hits stay pending (those of past minutes are dropped: they no longer decide anything)
and decisions go on from what is known; the first sync after it is back sends them. What a
process holds is bounded however many buckets a minute brings (MAX_PENDING, MAX_KNOWN).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from opentelemetry import trace

from handlers.services.tracing import background, failed, step
from persistence import rate_limits
from persistence.database import Database, DatabaseUnavailable
from persistence.rate_limits import WINDOW_SECONDS, Count

logger = logging.getLogger(__name__)

MODES = ("batched", "exact")
# Buckets with unsent hits that make a process sync at once, from the request that adds one
# more, rather than wait for the interval: what bounds its memory, whatever the cardinality
# (addresses that fail authentication, say), at a few MB.
MAX_PENDING = 20_000
# Shared totals a process remembers; past it, it keeps only those of the buckets it just sent
# (a bucket forgotten is decided on this process's own hits until its next sync).
MAX_KNOWN = 100_000
ROWS_PER_STATEMENT = 2_000  # a sync of more buckets than this sends several statements

Key = tuple[str, int]  # a bucket and the start of a window (Unix seconds, database clock)


def _window(now: float) -> int:
    """The start of the minute now is in (Unix seconds)."""
    return int(now // WINDOW_SECONDS) * WINDOW_SECONDS


class RateCounter(Protocol):
    """Counts one request against a bucket; returns the count it is decided on."""

    async def hit(self, bucket: str) -> Count: ...


class ExactCounter:
    """One upsert per counted request: the decision is on the exact shared total."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def hit(self, bucket: str) -> Count:
        with step(self.database.tracer, "rate_limit.count"):
            async with self.database.connection() as db:
                return await rate_limits.hit(db, bucket)


class BatchedCounter:
    """Counts in memory; sync() sends what was counted and learns the shared totals."""

    def __init__(
        self,
        database: Database,
        interval: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.database = database
        self.interval = interval
        self.clock = clock
        self.offset = 0.0  # the database's clock minus ours, learnt at every sync
        self.known: dict[Key, int] = {}  # shared totals, as of the last sync that sent the key
        self.pending: dict[Key, int] = {}  # counted here, not sent yet
        self.in_flight: dict[Key, int] = {}  # sent, total not known yet
        self._lock = asyncio.Lock()  # one sync at a time
        self._failing = False

    def now(self) -> float:
        """The database's clock, as this process reckons it."""
        return self.clock() + self.offset

    def _learn_clock(self, sent: float, database_now: float) -> None:
        """The offset, from the database's clock read between sent and now."""
        self.offset = database_now - (sent + self.clock()) / 2

    async def hit(self, bucket: str) -> Count:
        now = self.now()
        window = _window(now)
        key = (bucket, window)
        mine = self.pending.get(key, 0) + 1
        self.pending[key] = mine
        hits = self.known.get(key, 0) + self.in_flight.get(key, 0) + mine
        if len(self.pending) > MAX_PENDING:
            await self.sync()
        return Count(hits, window + WINDOW_SECONDS - now)

    async def sync(self) -> None:
        """Send the pending hits; learn their buckets' totals and the database's clock."""
        async with self._lock:
            current = _window(self.now())
            # Totals of past windows decide nothing any more.
            self.known = {k: n for k, n in self.known.items() if k[1] >= current}
            if len(self.known) > MAX_KNOWN:
                self.known = {k: n for k, n in self.known.items() if k in self.pending}
            if not self.pending:
                return
            self.in_flight, self.pending = self.pending, {}
            batch = list(self.in_flight.items())
            with background(
                self.database.tracer, "rate_limit.sync", {"tasks_api.buckets": len(batch)}
            ):
                await self._send(batch, current)

    async def _send(self, batch: list[tuple[Key, int]], current: int) -> None:
        """Send in_flight's hits (as batch), a statement per ROWS_PER_STATEMENT."""
        try:
            for start in range(0, len(batch), ROWS_PER_STATEMENT):
                rows = dict(batch[start : start + ROWS_PER_STATEMENT])
                sent = self.clock()
                async with self.database.connection() as db:
                    added = await rate_limits.add(db, rows)
                self._learn_clock(sent, added.now)
                self.known.update(added.hits)
                for key in rows:
                    del self.in_flight[key]
        except DatabaseUnavailable as error:
            failed(trace.get_current_span(), error)
            self._put_back(current)
            if not self._failing:
                self._failing = True
                logger.warning(
                    "rate-limit counts not synced (%s); deciding on this process's counts "
                    "until the database is back",
                    error,
                )
            return
        except Exception:
            self.in_flight = {}  # not the database's absence: sending them again won't help
            raise
        if self._failing:
            self._failing = False
            logger.warning("rate-limit counts synced again")

    def _put_back(self, current: int) -> None:
        """Hits that could not be sent wait for the next sync, but for past windows'."""
        for key, count in self.in_flight.items():
            if key[1] >= current:
                self.pending[key] = self.pending.get(key, 0) + count
        self.in_flight = {}

    async def read_clock(self) -> None:
        """Learn the database's clock before the first sync (if it can be reached)."""
        with contextlib.suppress(DatabaseUnavailable):
            sent = self.clock()
            async with self.database.connection() as db:
                now = await rate_limits.clock(db)
            self._learn_clock(sent, now)

    @contextlib.asynccontextmanager
    async def syncing(self) -> AsyncIterator[None]:
        """Sync every interval while the block runs, and once more at its end (a process that
        stops sends what it counted); minutes are the database's from the start."""
        await self.read_clock()

        async def loop() -> None:
            while True:
                await asyncio.sleep(self.interval)
                try:
                    await self.sync()
                except Exception:  # a bug must not stop the counting for good
                    logger.exception("rate-limit sync failed")

        task = asyncio.create_task(loop(), name="rate-limit sync")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self.sync()


@contextlib.asynccontextmanager
async def counting(database: Database, mode: str, interval: float) -> AsyncIterator[RateCounter]:
    """The process's counter for mode, running for the block; with the database's tracer, where
    it touches the database is traced (a request's count in exact mode, each sync in batched
    mode)."""
    if mode == "exact":
        yield ExactCounter(database)
        return
    counter = BatchedCounter(database, interval)
    async with counter.syncing():
        yield counter
