"""A real Citus cluster (a coordinator and two workers), migrated and distributed as the README
says, and tasks-api served on its coordinator: `make test-citus` (not part of `make test`, which
needs nothing but Python; CI runs both)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from handlers.services.security import mint_token
from tests.citus.cluster import Cluster
from tests.live import TASKS_API, LiveServer, environment, free_port, tasks_api

SECRET = "citus-" + uuid.uuid4().hex + uuid.uuid4().hex
QUOTA = 10_000  # requests per user and minute: on, so the coordinator's windows are used


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    started = Cluster()
    try:
        yield started.start()
    finally:
        started.stop()


@pytest.fixture(scope="session")
def coordinator(cluster: Cluster) -> str:
    """The coordinator's URL, after the README's two commands: migrate, then distribute."""
    url = cluster.coordinator.url()
    for step in ("migrate", "distribute"):
        done = tasks_api(step, DATABASE_URL=url)
        assert done.returncode == 0, done.stderr
    return url


@pytest.fixture(scope="session")
def server(coordinator: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Two uvicorn workers on the coordinator, validating every response against the contract."""
    env = environment(
        APP_ENV="production", DATABASE_URL=coordinator, JWT_SECRET=SECRET,
        PORT=str(free_port()), DATA_DIR=str(tmp_path_factory.mktemp("citus")),
        LOG_FORMAT="json", RATE_LIMIT_PER_MINUTE=str(QUOTA), VALIDATE_RESPONSES="true",
    )  # fmt: skip
    live = LiveServer([str(TASKS_API), "serve", "--workers", "2"], env, start_timeout=60)
    yield live
    live.stop()
    assert "Traceback" not in live.log


def auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SECRET, user)}"}


def new_user() -> str:
    return f"citus-{uuid.uuid4().hex[:8]}"
