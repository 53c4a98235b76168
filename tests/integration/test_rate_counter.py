"""How processes count requests against the shared limits (handlers/services/rate_counter.py),
on the real database: two BatchedCounters on one database stand for two processes, and each sync
is called when the test says, so what each one knows at every step is exact."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import pytest

from handlers.services.rate_counter import BatchedCounter, ExactCounter
from persistence.database import Database, open_database
from persistence.database_url import connect_arguments
from tests.helpers import sql

T = TypeVar("T")
INTERVAL = 3600.0  # never reached: the tests sync by hand


def with_database(url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    async def run() -> T:
        async with open_database(url, pool_size=2) as database:
            return await work(database)

    return asyncio.run(run())


async def count_in(url: str, bucket: str) -> int:
    """The bucket's hits in the database, over all its windows."""
    connection = await asyncpg.connect(**connect_arguments(url))
    try:
        found = await connection.fetchval(
            "SELECT coalesce(sum(hits), 0) FROM rate_limits WHERE bucket = $1", bucket
        )
        return int(found)
    finally:
        await connection.close()


def stored(url: str, bucket: str) -> int:
    return asyncio.run(count_in(url, bucket))


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_hit_is_counted_in_memory_and_sent_by_the_next_sync(database_url: str) -> None:
    bucket = f"user:mem-{uuid.uuid4().hex[:8]}"

    async def work(database: Database) -> tuple[list[int], int, int]:
        counter = BatchedCounter(database, INTERVAL)
        counts = [(await counter.hit(bucket)).hits for _ in range(3)]
        before = await count_in(database_url, bucket)
        await counter.sync()
        return counts, before, await count_in(database_url, bucket)

    counts, before, after = with_database(database_url, work)
    assert counts == [1, 2, 3]  # one process's own count is exact
    assert before == 0  # no statement per request
    assert after == 3  # one statement for all of them


def test_a_process_learns_the_others_hits_at_its_next_sync(database_url: str) -> None:
    bucket = f"user:two-{uuid.uuid4().hex[:8]}"

    async def work(database: Database) -> list[int]:
        first = BatchedCounter(database, INTERVAL)
        second = BatchedCounter(database, INTERVAL)
        for _ in range(5):
            await first.hit(bucket)
        await first.sync()
        seen = [(await second.hit(bucket)).hits]  # second has not synced: its own hit only
        await second.sync()  # sends it, and learns the total: 6
        seen.append((await second.hit(bucket)).hits)
        seen.append((await first.hit(bucket)).hits)  # first knows 5, plus its new one
        await first.sync()  # total 7
        await second.sync()  # total 8
        seen.append((await first.hit(bucket)).hits)  # first knows 7, plus its new one
        return seen

    assert with_database(database_url, work) == [1, 7, 6, 8]
    assert stored(database_url, bucket) == 8  # first's last hit is not sent yet


def test_hits_in_flight_are_counted_while_the_sync_runs(database_url: str) -> None:
    bucket = f"user:flight-{uuid.uuid4().hex[:8]}"

    async def work(database: Database) -> tuple[int, int]:
        counter = BatchedCounter(database, INTERVAL)
        await counter.hit(bucket)
        await counter.hit(bucket)
        syncing = asyncio.create_task(counter.sync())
        await asyncio.sleep(0)  # the sync has taken the pending hits and awaits the database
        during = (await counter.hit(bucket)).hits
        await syncing
        return during, (await counter.hit(bucket)).hits

    assert with_database(database_url, work) == (3, 4)


def test_windows_follow_the_databases_clock(database_url: str) -> None:
    """A process whose clock is an hour ahead counts in the database's minute, and tells the
    seconds left in it."""
    bucket = f"user:clock-{uuid.uuid4().hex[:8]}"

    async def work(database: Database) -> list[float]:
        counter = BatchedCounter(database, INTERVAL, clock=lambda: time.time() + 3600)
        await counter.read_clock()
        resets = [(await counter.hit(bucket)).reset_seconds]
        await counter.sync()
        resets.append((await counter.hit(bucket)).reset_seconds)
        await counter.sync()
        return resets

    resets = with_database(database_url, work)
    rows = sql(database_url, "SELECT 60 - extract(epoch FROM now() - window_start) AS left, hits"
               " FROM rate_limits WHERE bucket = $1", bucket)  # fmt: skip
    assert [r["hits"] for r in rows] == [2]
    assert 0 < float(rows[0]["left"]) <= 60
    for reset in resets:
        assert abs(reset - float(rows[0]["left"])) < 2


def test_a_new_minute_starts_from_zero(database_url: str) -> None:
    bucket = f"user:minute-{uuid.uuid4().hex[:8]}"
    clock = Clock(1_800_000_000.0 + 50)  # 2027-01-15, 50 s into a minute

    async def work(database: Database) -> list[tuple[int, int]]:
        counter = BatchedCounter(database, INTERVAL, clock=clock)
        seen = []
        for _ in range(2):
            count = await counter.hit(bucket)
            seen.append((count.hits, round(count.reset_seconds)))
        clock.now += 15
        count = await counter.hit(bucket)
        seen.append((count.hits, round(count.reset_seconds)))
        return seen

    assert with_database(database_url, work) == [(1, 10), (2, 10), (1, 55)]


def test_with_the_database_down_hits_wait_and_past_minutes_are_dropped(database_url: str) -> None:
    bucket = f"user:down-{uuid.uuid4().hex[:8]}"
    clock = Clock(1_800_000_000.0 + 30)

    async def work(database: Database) -> tuple[int, int]:
        async with open_database("postgresql://u@127.0.0.1:1/none", pool_size=1) as dead:
            counter = BatchedCounter(dead, INTERVAL, clock=clock)
            for _ in range(3):
                await counter.hit(bucket)
            await counter.sync()  # fails: kept
            clock.now += 60  # a new minute
            await counter.hit(bucket)
            await counter.sync()  # fails again: the past minute's 3 are dropped
            pending = sum(counter.pending.values())
            counter.database = database  # the database is back
            await counter.sync()
            return pending, len(counter.pending)

    pending, left = with_database(database_url, work)
    assert pending == 1  # the new minute's hit; the past minute's were dropped
    assert left == 0
    assert stored(database_url, bucket) == 1


def test_exact_mode_writes_every_hit_at_once(database_url: str) -> None:
    bucket = f"user:exact-{uuid.uuid4().hex[:8]}"

    async def work(database: Database) -> list[tuple[int, int]]:
        counter = ExactCounter(database)
        seen = []
        for _ in range(3):
            count = await counter.hit(bucket)
            seen.append((count.hits, await count_in(database_url, bucket)))
        return seen

    assert with_database(database_url, work) == [(1, 1), (2, 2), (3, 3)]


def test_two_processes_syncing_the_same_buckets_at_once_both_commit(database_url: str) -> None:
    buckets = [f"user:race-{uuid.uuid4().hex[:8]}" for _ in range(50)]

    async def work(database: Database) -> None:
        counters = [BatchedCounter(database, INTERVAL) for _ in range(4)]
        for i, counter in enumerate(counters):
            for bucket in buckets[i % 2 :] + buckets[: i % 2]:  # in different orders
                await counter.hit(bucket)
        await asyncio.gather(*(c.sync() for c in counters))

    with_database(database_url, work)
    assert [stored(database_url, b) for b in buckets] == [4] * 50


def test_what_a_process_remembers_is_bounded(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many buckets in one minute (addresses failing authentication, say) cost a bounded
    memory: past MAX_KNOWN, only the totals of the buckets just sent are kept."""
    from handlers.services import rate_counter

    monkeypatch.setattr(rate_counter, "MAX_KNOWN", 10)
    prefix = f"auth:many-{uuid.uuid4().hex[:8]}"

    async def work(database: Database) -> tuple[int, int]:
        counter = BatchedCounter(database, INTERVAL)
        for i in range(30):
            await counter.hit(f"{prefix}-{i}")
        await counter.sync()
        remembered = len(counter.known)
        await counter.hit(f"{prefix}-0")
        await counter.sync()
        return remembered, len(counter.known)

    remembered, after = with_database(database_url, work)
    assert remembered == 30  # one sync's worth is always kept
    assert after == 1  # over the bound: only what that sync sent
