"""tasks-api on a real Citus cluster, set up as the README's "When one PostgreSQL is not
enough" says: the CRUD flow, users whose rows live on different workers, one idempotency key
raced, one ETag raced, exact totals after concurrent writes, every statement on one shard, a
pooler in front, and migrations that still run once the tables are distributed."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
import httpx
import pytest

from handlers.services.settings import Settings
from persistence.database import open_database
from persistence.database_url import connect_arguments
from persistence.distribution import sharded
from persistence.embedded import EmbeddedServer
from persistence.schema import downgrade
from tests import flows
from tests.citus.cluster import DATABASE, Cluster, readme_lines
from tests.citus.fixtures import QUOTA, SECRET, WORKERS, auth, new_user, set_up
from tests.helpers import call, client_with, sql, token_for
from tests.live import LiveServer, serving_production, tasks_api
from tests.pgbouncer import PgBouncer
from tests.unit.test_sharding import SHARDED, every_statement, sorts

# What each statement's parameters are given when it is explained: any user, any task.
SAMPLE = {
    "user_id": "explained", "task_id": uuid.uuid4(), "after_id": uuid.uuid4(), "key": "k",
    "fingerprint": b"f", "status": 201, "body": "{}", "headers": "{}", "ttl_seconds": 60,
    "completed": True, "priority": "high", "title": "t", "description": "d",
    "due_date": "2026-01-01T00:00:00Z", "version_1": 1, "versions": [1], "limit": 11,
    "offset": 0, "bucket": "b", "buckets": ["b"], "windows": [1], "counts": [1], "hits": 1,
}  # fmt: skip
# A cursor's position is a due date, a priority or a title, as the page's sort says.
AFTER_VALUES = ["2026-01-01T00:00:00Z", "medium", "t"]


def test_distribute_spreads_every_per_user_table_over_the_workers(
    cluster: Cluster, coordinator: str
) -> None:
    tables = sql(coordinator, "SELECT table_name::text, colocation_id FROM citus_tables")
    assert {row[0] for row in tables} == set(SHARDED)
    assert len({row[1] for row in tables}) == 1  # co-located: a user's rows on one worker
    placed = sql(coordinator, "SELECT DISTINCT nodeport FROM citus_shards")
    assert {row[0] for row in placed} == {worker.port for worker in cluster.workers[:WORKERS]}
    again = tasks_api("distribute", DATABASE_URL=coordinator)
    assert (again.returncode, again.stdout) == (0, "already distributed\n"), again.stderr


def test_distribute_refuses_what_it_cannot_distribute(
    cluster: Cluster, coordinator: str, postgres: EmbeddedServer
) -> None:
    """A worker, a PostgreSQL without Citus, a coordinator with no nodes, and a schema not
    migrated yet: one line each, saying what to do."""
    coordinator_node = cluster.coordinator
    for database in ("alone", "unmigrated"):
        cluster.psql(coordinator_node, f"CREATE DATABASE {database}", database="postgres")
        cluster.psql(coordinator_node, "CREATE EXTENSION citus", database=database)
    cluster.psql(
        coordinator_node,
        f"SELECT citus_set_coordinator_host('127.0.0.1', {coordinator_node.port})",
        database="unmigrated",
    )
    refusals = {
        cluster.workers[0].url(): "this is a Citus worker, not the coordinator",
        postgres.url(): "the database has no Citus extension",
        coordinator_node.url("alone"): "the Citus coordinator has no nodes yet",
        coordinator_node.url("unmigrated"): "the schema is not migrated",
    }
    for url, said in refusals.items():
        refused = tasks_api("distribute", DATABASE_URL=url)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.count("\n") == 1, refused.stderr
        assert said in refused.stderr


@pytest.mark.parametrize("flow", flows.EVERY, ids=lambda flow: flow.__name__)
def test_what_every_database_must_do(flow: flows.Flow, server: LiveServer) -> None:
    user = new_user()
    flow(server.url, user, auth(user))


def test_the_count_cells_equal_a_recount_after_concurrent_writes(
    server: LiveServer, coordinator: str
) -> None:
    user = new_user()
    flows.totals_after_concurrent_writes(server.url, user, auth(user))
    _counts_match(coordinator, user)


def _worker_of(coordinator: str, users: list[str]) -> dict[str, tuple[int, int]]:
    """Each user's (worker port, shard of tasks)."""
    rows = sql(
        coordinator,
        "SELECT u, s.nodeport, s.shardid FROM unnest($1::text[]) AS u,"
        " citus_shards s WHERE s.shardid = get_shard_id_for_distribution_column('tasks', u)",
        users,
    )
    return {row[0]: (row[1], row[2]) for row in rows}


def test_users_on_different_workers_see_only_their_own_tasks(
    cluster: Cluster, coordinator: str, server: LiveServer
) -> None:
    candidates = [new_user() for _ in range(20)]
    placed = _worker_of(coordinator, candidates)
    first = candidates[0]
    second = next(user for user in candidates if placed[user][0] != placed[first][0])
    made = {}
    for user in (first, second):
        answer = httpx.post(f"{server.url}/api/{user}/tasks", json={"title": f"of {user}"},
                            headers=auth(user), timeout=10)  # fmt: skip
        assert answer.status_code == 201, answer.text
        made[user] = answer.json()["id"]
    for user, other in ((first, second), (second, first)):
        mine = httpx.get(f"{server.url}/api/{user}/tasks", headers=auth(user), timeout=10)
        assert [task["id"] for task in mine.json()["items"]] == [made[user]]
        theirs = httpx.get(f"{server.url}/api/{other}/tasks/{made[other]}",
                           headers=auth(user), timeout=10)  # fmt: skip
        assert theirs.status_code == 403
        # The row is in the user's shard on the user's worker, and nowhere else.
        port, shard = placed[user]
        worker = next(node for node in cluster.workers if node.port == port)
        shard_table = f"tasks_{int(shard)}"
        stored = sql(worker.url(), f"SELECT id FROM {shard_table} WHERE user_id = $1", user)  # noqa: S608
        assert [str(row[0]) for row in stored] == [made[user]]


def _single_shard_tasks(plan: dict[str, Any]) -> list[int]:
    """The task count of every distributed job in an EXPLAIN (FORMAT JSON) plan, subplans
    included (Citus runs a WITH that modifies rows as a subplan of its own)."""
    counts = []
    job = plan.get("Distributed Query")
    if job is not None:
        counts.append(job["Job"]["Task Count"])
        for subplan in job.get("Subplans", []):
            for planned in subplan.get("PlannedStmt", []):
                counts += _single_shard_tasks(planned["Plan"])
    for child in plan.get("Plans", []):
        counts += _single_shard_tasks(child)
    return counts


def test_every_statement_on_a_per_user_table_is_a_single_shard_router_query(
    coordinator: str,
) -> None:
    """Each statement persistence/ can build (every list shape and conditional write too),
    explained by Citus with sample values: one task on one shard, for it and for any subplan."""

    async def explain_all() -> dict[str, list[int]]:
        plans: dict[str, list[int]] = {}
        connection = await asyncpg.connect(**connect_arguments(coordinator))
        try:
            for statement in {s.sql: s for s in every_statement()}.values():
                if not any(f" {table}" in statement.sql for table in SHARDED):
                    continue
                for after in AFTER_VALUES:
                    values = {**SAMPLE, "after_value": after}
                    arguments = [statement.constants.get(name, values.get(name))
                                 for name in statement.names]  # fmt: skip
                    try:
                        async with connection.transaction():
                            explained = await connection.fetchval(
                                f"EXPLAIN (FORMAT JSON) {statement.sql}", *arguments
                            )
                        break
                    except asyncpg.DataError:
                        continue  # the cursor's position is of another sort's kind
                plan = json.loads(explained)[0]["Plan"]
                plans[statement.sql] = _single_shard_tasks(plan)
        finally:
            await connection.close()
        return plans

    plans = asyncio.run(explain_all())
    assert len(plans) > 150
    assert {sql: tasks for sql, tasks in plans.items() if not tasks or set(tasks) != {1}} == {}


def _counters(cluster: Cluster) -> dict[str, tuple[int, int]]:
    """Each node's (single-shard, multi-shard) query executions in the database, as Citus
    counts them."""
    found = {}
    for node in cluster.nodes:
        row = sql(
            node.url(),
            "SELECT query_execution_single_shard, query_execution_multi_shard"
            " FROM citus_stat_counters WHERE name = current_database()",
        )[0]
        found[node.name] = (row[0], row[1])
    return found


def test_the_server_runs_every_request_on_one_shard(cluster: Cluster, server: LiveServer) -> None:
    """Every operation through both doors (lists in every sort, filtered and paged), counted
    by Citus on every node: single-shard executions only."""
    before = _counters(cluster)
    user = new_user()
    tasks = f"{server.url}/api/{user}/tasks"
    requests = 0
    with httpx.Client(headers=auth(user), timeout=10) as http:
        ids = []
        for n, priority in zip(range(6), itertools.cycle(["low", "medium", "high"]), strict=False):
            made = http.post(tasks, json={"title": f"t{n}", "priority": priority,
                                          "due_date": f"2026-12-0{n + 1}T00:00:00Z"},
                             headers={"Idempotency-Key": f"k{n}"})  # fmt: skip
            assert made.status_code == 201, made.text
            ids.append(made.json()["id"])
        requests += 6
        for sort in sorts():
            for filters in ({}, {"completed": "false"}, {"priority": "high"}):
                asked: dict[str, str | int] = {"sort": sort, "limit": 2, **filters}
                page = http.get(tasks, params=asked)
                assert page.status_code == 200, page.text
                requests += 1
                cursor = page.json().get("next_cursor")
                if cursor:
                    following = http.get(tasks, params={**asked, "cursor": cursor})
                    assert following.status_code == 200, following.text
                    requests += 1
        task = f"{tasks}/{ids[0]}"
        etag = http.get(task).headers["etag"]
        answers = [
            http.put(task, json={"title": "replaced"}, headers={"If-Match": etag}),
            http.patch(task, json={"priority": "low"},
                       headers={"Content-Type": "application/merge-patch+json"}),
            http.patch(f"{task}/complete"),
            http.patch(f"{task}/complete", json={"completed": False}),
            http.delete(f"{tasks}/{ids[1]}"),
        ]  # fmt: skip
        assert [a.status_code for a in answers] == [200, 200, 200, 200, 204]
        requests += 6
    token = token_for(user, SECRET)
    added = call(server.url, token, "add_task", {"title": "by an agent"})
    listed = call(server.url, token, "list_tasks", {"completed": False})
    assert (added[0], listed[0]) == (False, False)
    after = _counters(cluster)
    multi = {node: after[node][1] - before[node][1] for node in after}
    single = sum(after[node][0] - before[node][0] for node in after)
    assert multi == {node.name: 0 for node in cluster.nodes}
    assert single >= requests


def test_the_server_sets_up_its_sessions_for_citus(coordinator: str) -> None:
    """Without this, asyncpg's look-up of our enum on each new connection takes half a second
    on a coordinator, and concurrent writes on fresh connections got 503."""

    async def look() -> tuple[bool, str]:
        async with open_database(coordinator, pool_size=1) as database:
            async with database.connection() as connection:
                shown = await connection._raw.fetchval("SHOW citus.override_table_visibility")
            return database.citus, shown

    assert asyncio.run(look()) == (True, "off")


@pytest.fixture(scope="module")
def pooled_server(
    cluster: Cluster, coordinator: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The server behind PgBouncer in transaction mode, in front of the coordinator."""
    bouncer = PgBouncer(server=f"host=127.0.0.1 port={cluster.coordinator.port}")
    pooled = bouncer.url(DATABASE, pool_mode="transaction")
    data = tmp_path_factory.mktemp("pooled")
    try:
        with serving_production(pooled, SECRET, data, RATE_LIMIT_PER_MINUTE=str(QUOTA)) as live:
            yield live
    finally:
        bouncer.stop()


@pytest.mark.parametrize("flow", flows.EVERY, ids=lambda flow: flow.__name__)
def test_behind_pgbouncer_in_front_of_the_coordinator(
    flow: flows.Flow, pooled_server: LiveServer
) -> None:
    user = new_user()
    flow(pooled_server.url, user, auth(user))


def test_a_database_in_use_is_distributed_with_its_rows_and_migrations_run_on(
    cluster: Cluster,
) -> None:
    """An operator's existing database (tasks, counts, keys), distributed by two `distribute`
    at once: every row moves to the workers and none stays on the coordinator, the counts stay
    exact, and one command does the work. Then a migration that drops a per-user table and the
    triggers on tasks, and one that makes them again (0007, down and up): the table is
    distributed again in the migration's own transaction. On a database of its own: the
    server's keeps serving."""
    url = cluster.create_database("migrated")
    assert tasks_api("migrate", DATABASE_URL=url).returncode == 0
    cluster.psql(
        cluster.coordinator,
        "INSERT INTO tasks (user_id, title, completed) SELECT 'u' || (n % 7), 't', n % 3 = 0"
        " FROM generate_series(1, 600) n",
        database="migrated",
    )
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: tasks_api("distribute", DATABASE_URL=url), range(2)))
    assert [run.returncode for run in runs] == [0, 0], [run.stderr for run in runs]
    said = sorted(run.stdout for run in runs)
    assert said == [
        "already distributed\n",
        f"distributed by user: {', '.join(s for s, _ in sharded())}\n",
    ]
    distributed = "SELECT table_name::text FROM citus_tables"
    assert {row[0] for row in sql(url, distributed)} == set(SHARDED)
    left = sql(url, "SELECT pg_relation_size(t::regclass) FROM unnest($1::text[]) t", list(SHARDED))
    assert [row[0] for row in left] == [0] * len(SHARDED)
    assert sql(url, "SELECT count(*) FROM tasks")[0][0] == 600
    _counts_match(url)
    asyncio.run(downgrade(url, "2026_11_24_0006"))
    assert "task_counts" not in {row[0] for row in sql(url, distributed)}
    migrated = tasks_api("migrate", DATABASE_URL=url)
    assert migrated.returncode == 0, migrated.stderr
    assert {row[0] for row in sql(url, distributed)} == set(SHARDED)
    cluster.psql(
        cluster.coordinator,
        "UPDATE tasks SET completed = NOT completed WHERE user_id IN ('u1', 'u2');"
        " DELETE FROM tasks WHERE user_id = 'u3'",
        database="migrated",
    )
    _counts_match(url)


def _counts_match(url: str, user: str | None = None) -> None:
    """The count cells (of every user, or of one) equal a count of the tasks."""
    kept = sql(url, "SELECT user_id, completed, priority, tasks FROM task_counts"
                      " WHERE tasks > 0 AND ($1::text IS NULL OR user_id = $1)", user)  # fmt: skip
    recount = sql(url, "SELECT user_id, completed, priority, count(*) FROM tasks"
                         " WHERE $1::text IS NULL OR user_id = $1 GROUP BY 1, 2, 3",
                    user)  # fmt: skip
    assert kept
    assert sorted(map(tuple, kept)) == sorted(map(tuple, recount))


def test_a_worker_added_and_the_shards_rebalanced_serve_on(cluster: Cluster) -> None:
    """The README's lines for a new worker: shards move to it with their rows, and the users
    whose shards moved are served and counted there (the count trigger's function and the
    enum reached the new node). On a database of its own, which starts with two workers."""
    url = cluster.create_database("grown", workers=WORKERS)
    set_up(url)
    users = [f"grown-{n}" for n in range(40)]
    cluster.psql(
        cluster.coordinator,
        "INSERT INTO tasks (user_id, title, priority) SELECT 'grown-' || (n % 40), 't',"
        " (ARRAY['low', 'high'])[1 + n % 2]::task_priority FROM generate_series(1, 400) n",
        database="grown",
    )
    new = cluster.workers[WORKERS]
    for _, line in readme_lines("citus-grow"):
        cluster.psql(cluster.coordinator, cluster.addressed(line), database="grown")
    moved = [user for user, (port, _) in _worker_of(url, users).items() if port == new.port]
    assert moved  # some users now live on the new worker
    settings = Settings(
        environment="production", database_url=url, jwt_secret=SECRET,
        data_dir=cluster.root, rate_limit_per_minute=0, auth_failure_limit_per_minute=0,
    )  # fmt: skip
    with client_with(settings) as client:
        for user in moved[:3]:
            listed = client.get(f"/api/{user}/tasks", headers=auth(user))
            assert listed.json()["total"] == 10
            made = client.post(f"/api/{user}/tasks", json={"title": "after"}, headers=auth(user))
            assert made.status_code == 201, made.text
            assert client.get(f"/api/{user}/tasks", headers=auth(user)).json()["total"] == 11
    _counts_match(url)


def test_a_worker_that_stops_is_503_for_its_users_alone_until_it_is_back(
    cluster: Cluster, coordinator: str, server: LiveServer
) -> None:
    candidates = [new_user() for _ in range(20)]
    placed = _worker_of(coordinator, candidates)
    stopped = cluster.workers[0]
    away = next(user for user in candidates if placed[user][0] == stopped.port)
    still = next(user for user in candidates if placed[user][0] != stopped.port)
    for user in (away, still):
        made = httpx.post(f"{server.url}/api/{user}/tasks", json={"title": "before"},
                          headers=auth(user), timeout=10)  # fmt: skip
        assert made.status_code == 201, made.text
    cluster.stop_node(stopped)
    try:
        for method in ("GET", "POST"):
            body = {"title": "meanwhile"} if method == "POST" else None
            url = f"{server.url}/api/{{}}/tasks"
            answers = {
                user: httpx.request(method, url.format(user), json=body, headers=auth(user))
                for user in (away, still)
            }
            assert answers[still].status_code in (200, 201), answers[still].text
            assert answers[away].status_code == 503, answers[away].text
            assert answers[away].headers["content-type"] == "application/problem+json"
            assert answers[away].headers["retry-after"]
    finally:
        cluster.start_node(stopped)
    listed = httpx.get(f"{server.url}/api/{away}/tasks", headers=auth(away), timeout=10)
    assert (listed.status_code, listed.json()["total"]) == (200, 1)
