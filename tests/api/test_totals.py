"""A list's `total` is exact for every filter combination, kept by per-user count cells that the
database updates with every write: under concurrent writes from several connections, after a
backfill of existing users, and whatever count the client prefers (RFC 7240 `Prefer`)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from starlette.testclient import TestClient

from persistence import tasks
from persistence.database import Connection, open_database
from persistence.database_url import connect_arguments
from persistence.schema import downgrade, upgrade
from tests.helpers import bearer

PRIORITIES = ("low", "medium", "high")
FILTERS = [(c, p) for c in (None, True, False) for p in (None, *PRIORITIES)]


def query(url: str, statement: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(**connect_arguments(url))
        try:
            return list(await connection.fetch(statement, *args))
        finally:
            await connection.close()

    return asyncio.run(run())


def counted(url: str, user: str, completed: bool | None, priority: str | None) -> int:
    """The true number, by counting the user's rows."""
    rows = query(
        url,
        "SELECT count(*) FROM tasks WHERE user_id = $1 AND ($2::boolean IS NULL OR"
        " completed = $2) AND ($3::text IS NULL OR priority::text = $3)",
        user, completed, priority,
    )  # fmt: skip
    return int(rows[0][0])


def listed_total(
    client: TestClient, user: str, completed: bool | None, priority: str | None
) -> int:
    params: dict[str, Any] = {"limit": 1}
    if completed is not None:
        params["completed"] = str(completed).lower()
    if priority is not None:
        params["priority"] = priority
    answer = client.get(f"/api/{user}/tasks", params=params, headers=bearer(user))
    assert answer.status_code == 200, answer.text
    return int(answer.json()["total"])


def fields(rng: random.Random) -> dict[str, Any]:
    return {
        "title": f"t{rng.randrange(10**6)}", "description": None, "due_date": None,
        "completed": rng.random() < 0.4, "priority": rng.choice(PRIORITIES),
    }  # fmt: skip


def test_totals_stay_exact_under_concurrent_writes(client: TestClient, database_url: str) -> None:
    user = f"counts-{uuid.uuid4().hex[:8]}"
    rng = random.Random(7)  # noqa: S311 - reproducible test data, not secrets

    async def run() -> None:
        async with open_database(database_url, pool_size=8) as database:
            ids: list[str] = []

            async def create(db: Connection) -> None:
                ids.append(str((await tasks.create_task(db, user, fields(rng)))["id"]))

            async def change(step: int) -> None:
                task_id = rng.choice(ids)
                async with database.connection() as db:
                    match step % 6:
                        case 0:
                            await create(db)
                        case 1:
                            if await tasks.delete_task(db, user, task_id) and task_id in ids:
                                ids.remove(task_id)
                        case 2:
                            await tasks.set_task_completed(db, user, task_id, None)  # toggles
                        case 3:
                            await tasks.set_task_completed(db, user, task_id, rng.random() < 0.5)
                        case 4:
                            await tasks.replace_task(db, user, task_id, fields(rng))
                        case _:
                            patch = {"priority": rng.choice(PRIORITIES)}
                            await tasks.update_task(db, user, task_id, patch)

            async def seed() -> None:
                async with database.connection() as db:
                    await create(db)

            await asyncio.gather(*[seed() for _ in range(60)])
            # eight connections at once, each step racing the others on the same six cells
            for batch in range(0, 480, 48):
                await asyncio.gather(*[change(step) for step in range(batch, batch + 48)])

    asyncio.run(run())
    for completed, priority in FILTERS:
        expected = counted(database_url, user, completed, priority)
        assert listed_total(client, user, completed, priority) == expected, (completed, priority)
    assert counted(database_url, user, None, None) > 0


def test_a_task_moved_between_cells_and_back_leaves_them_exact(
    client: TestClient, tasks_url: str, auth: dict[str, str], user: str, database_url: str
) -> None:
    made = client.post(tasks_url, json={"title": "x", "priority": "low"}, headers=auth).json()
    path = f"{tasks_url}/{made['id']}"
    merge = {**auth, "Content-Type": "application/merge-patch+json"}
    client.patch(path, content=b'{"priority": "high", "completed": true}', headers=merge)
    client.patch(path, content=b'{"title": "renamed"}', headers=merge)  # no cell change
    assert listed_total(client, user, True, "high") == 1
    assert listed_total(client, user, None, "low") == 0
    client.delete(path, headers=auth)
    for completed, priority in FILTERS:
        assert listed_total(client, user, completed, priority) == 0


@pytest.mark.parametrize(
    ("prefer", "applied"),
    [
        ("count=exact", "count=exact"),
        ("count=planned", "count=exact"),
        ('COUNT="estimated"', "count=exact"),
        ("return=minimal, count=estimated", "count=exact"),
        ("count=exact; strict", "count=exact"),
        ("count=sloppy", None),
        ("return=minimal", None),
        (None, None),
    ],
)
def test_any_count_preference_gets_the_exact_total_and_says_so(
    client: TestClient,
    tasks_url: str,
    auth: dict[str, str],
    prefer: str | None,
    applied: str | None,
) -> None:
    client.post(tasks_url, json={"title": "x"}, headers=auth)
    headers = {**auth, **({"Prefer": prefer} if prefer is not None else {})}
    answer = client.get(tasks_url, headers=headers)
    assert answer.status_code == 200
    assert answer.json()["total"] == 1
    assert answer.headers.get("preference-applied") == applied


def test_the_backfill_counts_existing_users_and_is_reversible(
    create_database: Callable[[str], str],
) -> None:
    url = create_database("counts_backfill")
    asyncio.run(upgrade(url, "2026_11_24_0006"))  # before the count cells existed
    rng = random.Random(11)  # noqa: S311 - reproducible test data, not secrets
    users = [f"old-{n}" for n in range(5)]
    rows = [(rng.choice(users), rng.random() < 0.3, rng.choice(PRIORITIES)) for _ in range(500)]
    query(url, "INSERT INTO tasks (user_id, title, completed, priority)"
               " SELECT u, 't', c, p::task_priority FROM unnest($1::text[], $2::bool[], $3::text[])"
               " AS r(u, c, p)",
          [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])  # fmt: skip

    def cells() -> dict[tuple[str, bool, str], int]:
        found = query(url, "SELECT user_id, completed, priority::text, tasks FROM task_counts")
        return {(r[0], r[1], r[2]): r[3] for r in found if r[3]}

    def truth() -> dict[tuple[str, bool, str], int]:
        found = query(url, "SELECT user_id, completed, priority::text, count(*) FROM tasks"
                           " GROUP BY 1, 2, 3")  # fmt: skip
        return {(r[0], r[1], r[2]): r[3] for r in found}

    asyncio.run(upgrade(url))
    assert cells() == truth()
    assert sum(cells().values()) == 500

    asyncio.run(downgrade(url, "2026_11_24_0006"))
    assert query(url, "SELECT to_regclass('task_counts') IS NULL")[0][0] is True
    query(url, "INSERT INTO tasks (user_id, title) VALUES ('old-0', 'written while down')")
    asyncio.run(upgrade(url))
    assert cells() == truth()
    assert sum(cells().values()) == 501
