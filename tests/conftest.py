"""Fixtures shared by every tier: one embedded PostgreSQL per session, migrated by Alembic,
and a unique user per test so tests never see each other's data."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
from starlette.testclient import TestClient

from handlers.services.settings import Settings
from persistence.database_url import connect_arguments
from persistence.embedded import EmbeddedServer, start
from persistence.schema import upgrade
from tests.helpers import TEST_SECRET, bearer, client_with
from tests.live import REPO

# A developer's shell may point OpenTelemetry somewhere: no test traces unless it says so.
for _name in [name for name in os.environ if name.startswith("OTEL_")]:
    del os.environ[_name]

CITUS = Path(__file__).resolve().parent / "citus"
TEST_ON_CITUS = "TEST_ON_CITUS"
pytest_plugins = ["tests.citus.fixtures"]


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """tests/citus starts a Citus cluster: it runs only when named (`make test-citus`)."""
    if collection_path != CITUS:
        return None
    named = (Path(argument.split("::")[0]).resolve() for argument in config.args)
    return not any(path == CITUS or CITUS in path.parents for path in named)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    server = start(tmp_path_factory.mktemp("pg") / "postgres")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def create_database(postgres: EmbeddedServer) -> Callable[[str], str]:
    """Create an empty database on the test server and return its URL."""

    async def create(name: str) -> None:
        admin = await asyncpg.connect(**connect_arguments(postgres.url()))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()

    def make(name: str) -> str:
        asyncio.run(create(name))
        return postgres.url(name)

    return make


@pytest.fixture(scope="session")
def migrated_database(create_database: Callable[[str], str]) -> Callable[[str], str]:
    """Create an empty database, migrate it to head with Alembic like production; its URL."""

    def make(name: str) -> str:
        url = create_database(name)
        asyncio.run(upgrade(url))
        return url

    return make


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest, migrated_database: Callable[[str], str]) -> str:
    """The app database: on the embedded PostgreSQL, or with TEST_ON_CITUS set, the Citus
    cluster's coordinator, migrated and distributed (`make test-citus` runs tests/api so)."""
    if os.environ.get(TEST_ON_CITUS):
        url: str = request.getfixturevalue("citus_coordinator")
        return url
    return migrated_database("app_tests")


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        environment="production",
        database_url=database_url,
        jwt_secret=TEST_SECRET,
        data_dir=tmp_path_factory.mktemp("data"),
        validate_responses=True,
        # Off for the suite (fuzzing alone sends thousands a minute); tests/api/test_limits.py
        # turns them on.
        rate_limit_per_minute=0,
        auth_failure_limit_per_minute=0,
    )


@pytest.fixture(scope="session")
def client(settings: Settings) -> Iterator[TestClient]:
    """One app for the session, with response validation on, so every test also checks that
    responses conform to the contract."""
    with client_with(settings) as test_client:
        yield test_client


@pytest.fixture
def dot_env() -> Iterator[Path]:
    """The repository's .env, for a test to write; a developer's own is put back afterwards."""
    path = REPO / ".env"
    kept = path.read_bytes() if path.exists() else None
    yield path
    if kept is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(kept)


@pytest.fixture(scope="session")
def typescript_build() -> Path:
    """The TypeScript samples (tests/client/typescript), compiled once a session."""
    from tests.client.typescript_package import build

    return build()


@pytest.fixture
def user() -> str:
    """A user no other test has seen."""
    return f"user-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def auth(user: str) -> dict[str, str]:
    return bearer(user)


@pytest.fixture
def tasks_url(user: str) -> str:
    return f"/api/{user}/tasks"
