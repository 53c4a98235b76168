"""How database failures reach clients: a value PostgreSQL refuses (SQLSTATE class 22) is the
client's fault, never a 503 or a 500; an unreachable database is DatabaseUnavailable (503)."""

from __future__ import annotations

import asyncio

import pytest

from persistence.database import (
    DatabaseUnavailable,
    InvalidValue,
    Statement,
    open_database,
)


def run(url: str, sql: str) -> None:
    async def go() -> None:
        async with open_database(url, pool_size=1) as database, database.connection() as db:
            await db.fetch_one(Statement(sql, (), {}))

    asyncio.run(go())


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1 / 0 AS x",  # 22012 division_by_zero
        "SELECT 'not a number'::int AS x",  # 22P02 invalid_text_representation
        "SELECT date '2026-02-30' AS x",  # 22008 datetime_field_overflow
    ],
)
def test_a_refused_value_is_invalid_input(database_url: str, sql: str) -> None:
    with pytest.raises(InvalidValue):
        run(database_url, sql)


def test_a_statement_that_runs_too_long_is_unavailable(database_url: str) -> None:
    with pytest.raises(DatabaseUnavailable):
        run(database_url, "SELECT pg_sleep(5) AS x")


def test_a_database_nobody_listens_on_is_unavailable() -> None:
    with pytest.raises(DatabaseUnavailable):
        run("postgresql://u@127.0.0.1:1/none", "SELECT 1 AS x")


def test_url_options_reach_postgresql(database_url: str) -> None:
    """application_name and options (`-c name=value`) are server settings of every connection."""
    separator = "&" if "?" in database_url else "?"
    url = f"{database_url}{separator}application_name=web-1&options=-c%20work_mem%3D8MB"

    async def settings() -> tuple[str, str]:
        async with open_database(url, pool_size=1) as database, database.connection() as db:
            row = await db.fetch_one(
                Statement(
                    "SELECT current_setting('application_name') AS a, "
                    "current_setting('work_mem') AS w",
                    (),
                    {},
                )
            )
            assert row is not None
            return row["a"], row["w"]

    assert asyncio.run(settings()) == ("web-1", "8MB")
