"""Requests waiting for a pooled connection get one in the order they asked: none is overtaken
by a request that asked after it, however the others arrive (a request that waited behind
newcomers again and again is the slow 1% of a loaded server)."""

from __future__ import annotations

import asyncio
import random

from persistence.database import Database, Statement, open_database

POOL = 2
REQUESTS = 24
ROUNDS = 15
SELECT = Statement("SELECT 1 AS x", (), {})


async def hold(database: Database, barrier: asyncio.Barrier) -> None:
    async with database.connection():
        await barrier.wait()


async def overtakes(database: Database) -> list[int]:
    """Per request: how many were handed a connection after it asked, beyond those that were
    already waiting when it asked."""
    served = 0
    found: list[int] = []
    draw = random.Random(20)  # noqa: S311 - the same arrivals every run

    async def request(pause: int) -> None:
        nonlocal served
        for _ in range(pause):  # arrive at a different step of the event loop each time
            await asyncio.sleep(0)
        asked, ahead = served, database.waiting
        async with database.connection() as db:
            found.append(served - asked - ahead)
            served += 1
            await db.fetch_one(SELECT)

    async def client() -> None:
        for _ in range(ROUNDS):
            await request(draw.randrange(8))

    await asyncio.gather(*(client() for _ in range(REQUESTS)))
    return found


def test_a_waiting_request_is_never_overtaken_by_later_ones(database_url: str) -> None:
    async def run() -> list[int]:
        async with open_database(database_url, pool_size=POOL) as database:
            # the pool opens its connections first (opening one takes longer than a statement)
            opened = asyncio.Barrier(POOL)
            await asyncio.gather(*(hold(database, opened) for _ in range(POOL)))
            return await overtakes(database)

    found = asyncio.run(run())
    assert len(found) == REQUESTS * ROUNDS
    assert max(found) <= 0, sorted(found)[-10:]
