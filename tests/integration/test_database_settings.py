"""A DATABASE_URL that cannot work stops `tasks-api serve` and `tasks-api migrate` at start with
one line that names the cause (never a traceback, never the password); the same refusal after
start (a rotated password) is a 503 like any outage, said once in the log."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from handlers.services.settings import Settings
from persistence.database import open_database
from persistence.database_url import connect_arguments
from persistence.embedded import EmbeddedServer
from tests.helpers import bearer, client_with
from tests.live import TASKS_API, environment, free_port

PASSWORD = "correct-" + uuid.uuid4().hex


async def _admin(postgres: EmbeddedServer, *statements: str) -> None:
    connection = await asyncpg.connect(**connect_arguments(postgres.url()))
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def password_role(postgres: EmbeddedServer) -> Iterator[str]:
    """A role that must give its password (scram-sha-256): the embedded server trusts every
    other role, so this one gets its own pg_hba rule, first in the file."""
    role = f"pw_{uuid.uuid4().hex[:8]}"
    hba = postgres.pgdata / "pg_hba.conf"
    original = hba.read_text()
    hba.write_text(f"local all {role} scram-sha-256\n{original}")
    asyncio.run(
        _admin(
            postgres,
            f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{PASSWORD}'",
            "SELECT pg_reload_conf()",
        )
    )
    yield role
    hba.write_text(original)
    asyncio.run(_admin(postgres, "SELECT pg_reload_conf()", f"DROP ROLE IF EXISTS {role}"))


def url_as(postgres: EmbeddedServer, database: str, role: str, password: str) -> str:
    return postgres.url(database).replace("postgres:@", f"{role}:{password}@", 1)


def run_command(
    *args: str, timeout: float = 60, **settings: str
) -> subprocess.CompletedProcess[str]:
    env = environment(APP_ENV="production", JWT_SECRET="x" * 8 + uuid.uuid4().hex * 2,
                      PORT=str(free_port()), **settings)  # fmt: skip
    return subprocess.run(
        [str(TASKS_API), *args], env=env, capture_output=True, text=True, timeout=timeout,
        check=False,
    )  # fmt: skip


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The command's only output line (on stderr), after checking there is nothing else."""
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def mistakes(postgres: EmbeddedServer, role: str, database_url: str) -> dict[str, tuple[str, str]]:
    """DATABASE_URLs that no retry can fix, and what the one line must say about each."""
    return {
        "wrong password": (
            url_as(postgres, "app_tests", role, "wrong-" + uuid.uuid4().hex),
            f'password authentication failed for user "{role}"',
        ),
        "missing database": (
            postgres.url("no_such_database"),
            'database "no_such_database" does not exist',
        ),
        "missing role": (
            database_url.replace("postgres:@", "nobody_here:@", 1),
            'role "nobody_here" does not exist',
        ),
    }


@pytest.mark.parametrize("mistake", ["wrong password", "missing database", "missing role"])
@pytest.mark.parametrize("command", [["migrate"], ["serve"], ["serve", "--migrate"]])
def test_a_database_url_no_retry_can_fix_is_refused_at_start_in_one_line(
    postgres: EmbeddedServer, password_role: str, database_url: str, mistake: str,
    command: list[str], tmp_path: Path,
) -> None:  # fmt: skip
    url, cause = mistakes(postgres, password_role, database_url)[mistake]
    started = time.monotonic()

    result = run_command(*command, DATABASE_URL=url, DATA_DIR=str(tmp_path))

    assert result.returncode == 2
    line = one_line(result)
    assert line.startswith("tasks-api: ")
    assert cause in line
    assert "wrong-" not in line  # no password, ever
    assert PASSWORD not in line
    assert time.monotonic() - started < 20  # refused at once, not after retries


def test_verify_full_without_a_root_certificate_is_refused_naming_the_file(
    database_url: str, tmp_path: Path
) -> None:
    result = run_command(
        "serve", DATABASE_URL=f"{database_url}&sslmode=verify-full", HOME=str(tmp_path)
    )
    assert result.returncode == 2
    line = one_line(result)
    assert "sslmode=verify-full but no root certificate" in line
    assert str(tmp_path / ".postgresql" / "root.crt") in line
    assert "sslrootcert=system" in line  # what to use instead


def test_channel_binding_require_is_refused_saying_what_to_use_instead(database_url: str) -> None:
    result = run_command("migrate", DATABASE_URL=f"{database_url}&channel_binding=require")
    assert result.returncode == 2
    line = one_line(result)
    assert "channel_binding=require cannot be honoured" in line
    assert "sslmode=verify-full" in line


def test_a_database_that_is_down_at_migrate_is_one_line_too() -> None:
    result = run_command(
        "migrate", DATABASE_URL=f"postgresql://u@127.0.0.1:{free_port()}/none?connect_timeout=1"
    )
    assert result.returncode == 1
    line = one_line(result)
    assert line.startswith("tasks-api: the database is not reachable: ")


def test_a_password_rotated_after_start_is_503_and_logged_once(
    postgres: EmbeddedServer,
    password_role: str,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = url_as(postgres, "app_tests", password_role, PASSWORD)
    rotated = "rotated-" + uuid.uuid4().hex
    headers = bearer("rotation")
    with client_with(settings, database_url=url) as client:
        assert client.get("/api/rotation/tasks", headers=headers).status_code == 200
        asyncio.run(
            _admin(
                postgres,
                f"ALTER ROLE {password_role} PASSWORD '{rotated}'",
                # The pool's open connections outlive a password change; end them as a
                # restarted or failed-over database would.
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{password_role}'",  # noqa: E501, S608 - the role this module made
            )
        )
        with caplog.at_level(logging.INFO, logger="persistence.database"):
            answers = [client.get("/api/rotation/tasks", headers=headers) for _ in range(5)]
            ready = client.get("/readyz")
            asyncio.run(_admin(postgres, f"ALTER ROLE {password_role} PASSWORD '{PASSWORD}'"))
            back = client.get("/api/rotation/tasks", headers=headers)

    for answer in [*answers, ready]:
        assert answer.status_code == 503
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.headers["retry-after"] == "1"
    assert back.status_code == 200
    said = [r.getMessage() for r in caplog.records if r.name == "persistence.database"]
    refused = [m for m in said if "password authentication failed" in m]
    assert len(refused) == 1, said  # six requests refused, one line
    assert said[-1].startswith("database available again after ")
    assert not any(r.exc_info for r in caplog.records)  # no traceback per request
    assert all(rotated not in m and PASSWORD not in m for m in said)


def test_on_a_postgresql_without_citus_no_citus_setting_is_made(database_url: str) -> None:
    """The session settings a Citus coordinator gets (tests/citus) are made only there."""

    async def look() -> tuple[bool, bool]:
        async with open_database(database_url, pool_size=1) as database:
            async with database.connection() as connection:
                try:
                    await connection._raw.fetchval("SHOW citus.override_table_visibility")
                except asyncpg.UndefinedObjectError:
                    return database.citus, False
            return database.citus, True

    assert asyncio.run(look()) == (False, False)
