"""A real Citus cluster (a coordinator and two workers, and a third to add), migrated and
distributed as the README says: for tests/citus, and for tests/api with TEST_ON_CITUS set
(`make test-citus` runs both; `make test`, which needs nothing but Python, neither). A plugin
of tests/conftest.py, its fixtures named citus_*: nothing starts until a test asks."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from handlers.services.security import mint_token
from tests.citus.cluster import Cluster
from tests.docs import README, blocks
from tests.live import tasks_api

SECRET = "citus-" + uuid.uuid4().hex + uuid.uuid4().hex
QUOTA = 10_000  # requests per user and minute: on, so the coordinator's windows are used
WORKERS = 2  # in the database the server uses; one more is started, for adding


@pytest.fixture(scope="session")
def citus_cluster() -> Iterator[Cluster]:
    started = Cluster(workers=WORKERS + 1)
    try:
        yield started.start(workers=WORKERS)
    finally:
        started.stop()


def set_up(url: str) -> None:
    """The README's commands before serving (the `citus-app` block), with DATABASE_URL."""
    (block,) = blocks(README, "citus-app")
    commands = [line.split("#")[0].split() for line in block.splitlines()]
    steps = [command[1:] for command in commands if command[:1] == ["tasks-api"]]
    steps = [step for step in steps if step[0] != "serve"]  # the server fixture serves
    assert [step[0] for step in steps] == ["migrate", "distribute"]
    for step in steps:
        done = tasks_api(*step, DATABASE_URL=url)
        assert done.returncode == 0, done.stderr


@pytest.fixture(scope="session")
def citus_coordinator(citus_cluster: Cluster) -> str:
    """The coordinator's URL, migrated and distributed as the README says."""
    url = citus_cluster.coordinator.url()
    set_up(url)
    return url


def auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SECRET, user)}"}


def new_user() -> str:
    return f"citus-{uuid.uuid4().hex[:8]}"
