"""Several processes on one PostgreSQL act as one server: two workers of one `tasks-api serve`,
and two servers on two ports. Tasks, idempotency keys, ETags and rate limits are shared."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from handlers.security import mint_token
from tests.api.test_limits import in_one_window
from tests.live import TASKS_API, LiveServer, environment, free_port

SECRET = "workers-" + uuid.uuid4().hex + uuid.uuid4().hex
QUOTA = 8


def start(url: str, tmp: Path, *extra: str) -> LiveServer:
    env = environment(
        APP_ENV="production", DATABASE_URL=url, JWT_SECRET=SECRET, PORT=str(free_port()),
        DATA_DIR=str(tmp), RATE_LIMIT_PER_MINUTE=str(QUOTA), LOG_FORMAT="json",
    )  # fmt: skip
    return LiveServer([str(TASKS_API), "serve", *extra], env, start_timeout=90)


@pytest.fixture(scope="module")
def shared_database(migrated_database: Callable[[str], str]) -> str:
    return migrated_database("workers_tests")


@pytest.fixture(scope="module")
def two_servers(
    shared_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, LiveServer]]:
    tmp = tmp_path_factory.mktemp("two-servers")
    first = start(shared_database, tmp)
    second = start(shared_database, tmp)
    yield first, second
    first.stop()
    second.stop()


def auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SECRET, user)}"}


def test_a_task_written_through_one_is_read_through_the_other(
    two_servers: tuple[LiveServer, LiveServer],
) -> None:
    a, b = two_servers
    user = f"w-{uuid.uuid4().hex[:8]}"
    made = httpx.post(f"{a.url}/api/{user}/tasks", json={"title": "via A"}, headers=auth(user))
    read = httpx.get(f"{b.url}/api/{user}/tasks/{made.json()['id']}", headers=auth(user))
    assert read.json() == made.json()
    assert read.headers["etag"] == made.headers["etag"]


def test_a_stale_etag_through_one_after_a_write_through_the_other_is_412(
    two_servers: tuple[LiveServer, LiveServer],
) -> None:
    a, b = two_servers
    user = f"w-{uuid.uuid4().hex[:8]}"
    made = httpx.post(f"{a.url}/api/{user}/tasks", json={"title": "v1"}, headers=auth(user))
    path = f"/api/{user}/tasks/{made.json()['id']}"
    tag = {"If-Match": made.headers["etag"]}
    assert httpx.put(f"{a.url}{path}", json={"title": "v2"},
                     headers={**auth(user), **tag}).status_code == 200  # fmt: skip
    stale = httpx.put(f"{b.url}{path}", json={"title": "lost"}, headers={**auth(user), **tag})
    assert stale.status_code == 412
    assert httpx.get(f"{b.url}{path}", headers=auth(user)).json()["title"] == "v2"


def test_one_idempotency_key_sent_to_both_at_once_creates_one_task(
    two_servers: tuple[LiveServer, LiveServer],
) -> None:
    user = f"w-{uuid.uuid4().hex[:8]}"
    headers = {**auth(user), "Idempotency-Key": uuid.uuid4().hex}

    def send(server: LiveServer) -> httpx.Response:
        return httpx.post(f"{server.url}/api/{user}/tasks", json={"title": "once"}, headers=headers)

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(send, two_servers))
    for answer in answers:  # the loser of the race is told to retry, and its retry replays
        if answer.status_code == 409:
            answers.append(send(two_servers[0]))
    created = [a for a in answers if a.status_code == 201]
    assert len({a.json()["id"] for a in created}) == 1
    listed = httpx.get(f"{two_servers[1].url}/api/{user}/tasks", headers=auth(user)).json()
    assert listed["total"] == 1


def test_the_rate_limit_trips_at_exactly_the_quota_across_both(
    two_servers: tuple[LiveServer, LiveServer],
) -> None:
    user = f"w-{uuid.uuid4().hex[:8]}"

    def run() -> list[httpx.Response]:
        both = two_servers * QUOTA
        return [
            httpx.get(f"{s.url}/api/{user}/tasks", headers=auth(user)) for s in both[: QUOTA + 2]
        ]

    answers = in_one_window(run)
    assert [a.status_code for a in answers] == [200] * QUOTA + [429, 429]


def test_two_workers_of_one_server_share_the_quota(shared_database: str, tmp_path: Path) -> None:
    server = start(shared_database, tmp_path, "--workers", "2")
    user = f"w-{uuid.uuid4().hex[:8]}"
    try:

        def run() -> list[httpx.Response]:
            # A new connection each time, so the kernel hands them to either worker.
            return [httpx.get(f"{server.url}/api/{user}/tasks", headers=auth(user))
                    for _ in range(QUOTA * 3)]  # fmt: skip

        answers = in_one_window(run)
    finally:
        server.stop()
    statuses = [a.status_code for a in answers]
    assert statuses == [200] * QUOTA + [429] * (QUOTA * 2)
    lines = [json.loads(x) for x in server.log.splitlines() if x.startswith('{"method"')]
    pids = {line["pid"] for line in lines if line.get("user") == user}
    assert len(pids) == 2, "both workers served requests"
