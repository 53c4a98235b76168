"""Behind a real PgBouncer in transaction pool mode, stock configuration, with the one setting the
docs give (`pool_mode=transaction` in DATABASE_URL): migrations, the CRUD flow, idempotency
keys under a race, conditional writes under a race, exact totals and rate limits, and a statement
timeout that PostgreSQL itself enforces. Without that setting the server refuses to start and
says what to add. (The outage under load through PgBouncer is in tests/faults.)"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from handlers.services.security import mint_token
from handlers.services.settings import Settings
from handlers.services.state import STATE_KEY
from persistence.database import DatabaseUnavailable, open_database
from persistence.embedded import EmbeddedServer
from tests import flows
from tests.helpers import FIELD, client_with
from tests.live import LiveServer, serving_production, tasks_api
from tests.pgbouncer import PgBouncer

SECRET = "pooled-" + uuid.uuid4().hex + uuid.uuid4().hex
DATABASE = "pgbouncer_tests"
QUOTA = 100  # requests per user and minute: more than any test but the limit test sends


@pytest.fixture(scope="module")
def pgbouncer(postgres: EmbeddedServer) -> Iterator[PgBouncer]:
    bouncer = PgBouncer(postgres)
    yield bouncer
    bouncer.stop()


@pytest.fixture(scope="module")
def pooled_url(pgbouncer: PgBouncer, create_database: Callable[[str], str]) -> str:
    create_database(DATABASE)
    return pgbouncer.url(DATABASE, pool_mode="transaction")


def command(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    return tasks_api(*args, JWT_SECRET=SECRET, **settings)


@pytest.fixture(scope="module")
def server(pooled_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # Migrated through the pooler, twice: the second run meets the first one's server
    # connection (and whatever it prepared there) and must find nothing to do.
    for _ in range(2):
        migrated = command("migrate", DATABASE_URL=pooled_url)
        assert migrated.returncode == 0, migrated.stderr
    data = tmp_path_factory.mktemp("pooled")
    with serving_production(pooled_url, SECRET, data, RATE_LIMIT_PER_MINUTE=str(QUOTA)) as live:
        yield live


def auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SECRET, user)}"}


def new_user() -> str:
    return f"pooled-{uuid.uuid4().hex[:8]}"


def test_the_stock_url_is_refused_at_start_saying_what_to_add(pgbouncer: PgBouncer) -> None:
    """PgBouncer refuses the statement_timeout start-up setting; without pool_mode=transaction
    that would be a 503 on every request, for ever."""
    result = command("serve", DATABASE_URL=pgbouncer.url(DATABASE))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "unsupported startup parameter: statement_timeout" in result.stderr
    assert "add pool_mode=transaction to DATABASE_URL" in result.stderr


@pytest.mark.parametrize("flow", flows.EVERY, ids=lambda flow: flow.__name__)
def test_what_every_database_must_do(flow: flows.Flow, server: LiveServer) -> None:
    user = new_user()
    flow(server.url, user, auth(user))


def test_statements_per_request_are_the_operations_own_in_one_transaction(
    pooled_url: str, settings: Settings
) -> None:
    """Each operation runs the statements it runs without the pooler (one each), inside a
    transaction that sets the statement timeout first: one round trip more at each end."""
    user = new_user()
    tasks = f"/api/{user}/tasks"
    seen: list[str] = []

    def record(query: Any) -> None:
        # asyncpg looks up a type's codec once per connection, the first time it meets it.
        if "'jit'" not in query.query and "pg_catalog" not in query.query:
            seen.append(query.query)

    with client_with(settings, database_url=pooled_url, jwt_secret=SECRET) as client:
        database = client.app_state[STATE_KEY].database
        database.add_query_logger(record)
        made = client.post(tasks, json={"title": "counted"}, headers=auth(user))
        per_request = [list(seen)]
        task = f"{tasks}/{made.json()['id']}"
        for method, url in (("GET", task), ("GET", tasks), ("PATCH", f"{task}/complete")):
            seen.clear()
            assert client.request(method, url, headers=auth(user)).status_code == 200
            per_request.append(list(seen))
        database.remove_query_logger(record)

    assert made.status_code == 201
    for queries in per_request:
        assert len(queries) == 3, queries
        assert queries[0] == "BEGIN; SET LOCAL statement_timeout = 1000"
        assert queries[2] == "COMMIT"


def test_the_rate_limit_trips_at_exactly_the_quota(server: LiveServer) -> None:
    async def burst(user: str) -> list[httpx.Response]:
        url = f"{server.url}/api/{user}/tasks"
        async with httpx.AsyncClient(headers=auth(user), timeout=10) as http:
            return await asyncio.gather(*(http.get(url) for _ in range(QUOTA + 10)))

    for _ in range(2):  # a burst that straddles two calendar minutes is sent again
        answers = asyncio.run(burst(new_user()))
        left = [int(m["t"]) for a in answers if (m := FIELD.search(a.headers["ratelimit"]))]
        if max(left) - min(left) <= 5:
            break
    statuses = [a.status_code for a in answers]
    assert statuses.count(200) == QUOTA
    assert statuses.count(429) == 10


def test_postgresql_enforces_the_statement_timeout_behind_the_pooler(pooled_url: str) -> None:
    async def sleep_too_long() -> BaseException | None:
        async with open_database(pooled_url, pool_size=1) as database:
            async with database.connection() as connection:
                shown = await connection._raw.fetchval("SHOW statement_timeout")
                assert shown == "1s"
            try:
                async with database.connection() as connection:
                    # The client would wait 5 s: only PostgreSQL can cut this one off at 1 s.
                    await connection._raw.fetchval("SELECT pg_sleep(3)", timeout=5)
            except DatabaseUnavailable as error:
                return error.__cause__
            return None

    cause = asyncio.run(sleep_too_long())
    assert cause is not None
    assert "canceling statement due to statement timeout" in str(cause)
