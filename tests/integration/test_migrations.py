"""The schema exists only through Alembic: reversible, and matching persistence/tables.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

from persistence.database import engine_for
from persistence.schema import current_revision, downgrade, upgrade
from persistence.tables import metadata


def read(url: str, query: Callable[[Connection], Any]) -> Any:
    async def run() -> Any:
        engine = engine_for(url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(query)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def tables(connection: Connection) -> list[str]:
    return sorted(inspect(connection).get_table_names())


def test_upgrade_downgrade_upgrade(create_database: Callable[[str], str]) -> None:
    url = create_database("migration_tests")
    assert asyncio.run(current_revision(url)) is None

    asyncio.run(upgrade(url))
    head = asyncio.run(current_revision(url))
    assert head is not None
    assert read(url, tables) == [
        "alembic_version", "idempotency_keys", "rate_limits", "task_counts", "tasks"
    ]  # fmt: skip
    unlogged = text("SELECT relpersistence FROM pg_class WHERE relname = 'rate_limits'")
    assert read(url, lambda c: c.execute(unlogged).scalar()) == b"u"  # counters skip the WAL

    asyncio.run(downgrade(url, "base"))
    assert asyncio.run(current_revision(url)) is None
    assert read(url, tables) == ["alembic_version"]
    enum = text("SELECT typname FROM pg_type WHERE typname = 'task_priority'")
    assert read(url, lambda c: c.execute(enum).all()) == []

    asyncio.run(upgrade(url))
    assert asyncio.run(current_revision(url)) == head


def test_migrated_schema_matches_the_table_definitions(database_url: str) -> None:
    def differences(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    assert read(database_url, differences) == []


def test_the_list_index_exists(database_url: str) -> None:
    found = {ix["name"]: ix for ix in read(database_url, lambda c: inspect(c).get_indexes("tasks"))}
    index = found["ix_tasks_user_id_created_at_id"]
    assert index["column_names"] == ["user_id", "created_at", "id"]
    assert index["column_sorting"] == {"created_at": ("desc",)}


def test_every_key_of_a_per_user_table_starts_with_user_id(database_url: str) -> None:
    """What a distributed PostgreSQL (Citus) needs to shard them by user_id."""

    def keys(connection: Connection) -> dict[Any, Any]:
        found = inspect(connection)
        return {
            **{
                t: found.get_pk_constraint(t)["constrained_columns"]
                for t in ("tasks", "idempotency_keys")
            },
            **{ix["name"]: ix["column_names"] for ix in found.get_indexes("idempotency_keys")},
        }

    assert read(database_url, keys) == {
        "tasks": ["user_id", "id"],
        "idempotency_keys": ["user_id", "key"],
        "ix_idempotency_keys_user_id_expires_at": ["user_id", "expires_at"],
    }


def test_removing_stale_rate_limit_windows_reads_no_more_than_it_removes(
    migrated_database: Callable[[str], str],
) -> None:
    """Every counted request looks for old windows to remove: by an index, never by reading
    a row for each user and address of the last minutes."""
    from persistence.rate_limits import _PURGE

    explained = plans(
        migrated_database("rate_limit_plan"),
        "INSERT INTO rate_limits SELECT 'user:' || n, date_trunc('minute', now()), 1"
        " FROM generate_series(1, 20000) AS n",
        [(_PURGE, {})],
    )[0]
    assert "ix_rate_limits_window_start" in explained, explained
    assert "Seq Scan on rate_limits" not in explained, explained


def plans(url: str, fill: str, statements: list[tuple[Any, dict[str, Any]]]) -> list[str]:
    """PostgreSQL's plans for statements (with their values), after fill and ANALYZE."""
    import asyncpg

    async def run() -> list[str]:
        connection = await asyncpg.connect(url)
        try:
            await connection.execute(fill)
            await connection.execute("ANALYZE")
            found = []
            for statement, values in statements:
                explain = f"EXPLAIN {statement.sql}"
                rows = await connection.fetch(explain, *statement.arguments(values))
                found.append("\n".join(row[0] for row in rows))
            return found
        finally:
            await connection.close()

    return asyncio.run(run())


def test_a_page_of_a_large_user_reads_a_page_not_the_user(
    migrated_database: Callable[[str], str],
) -> None:
    """The first page and a cursor page walk the (user_id, created_at) index for 21 rows and
    sum the user's count cells; nothing scans or sorts the user's 20,000 tasks."""
    from persistence.tasks import _page

    values = {
        "user_id": "large", "limit": 21, "offset": 0,
        # a cursor 1,000 tasks in, with 19,000 after it
        "after_value": (datetime.now(UTC) - timedelta(seconds=1000)).isoformat(),
        "after_id": uuid.uuid4(),
    }  # fmt: skip
    found = plans(
        migrated_database("page_plan"),
        "INSERT INTO tasks (user_id, title, created_at) SELECT 'large', 't',"
        " now() - g * interval '1 second' FROM generate_series(1, 20000) AS g",
        [(_page("-created_at", False, False, cursor, False), values) for cursor in (False, True)],
    )
    for plan in found:
        assert "Index Scan using ix_tasks_user_id_created_at_id on tasks" in plan, plan
        assert "Seq Scan on tasks" not in plan, plan
        assert "on task_counts" in plan, plan
        sorts = [line for line in plan.splitlines() if "Sort" in line and "Key" not in line]
        assert len(sorts) <= 1, plan  # only the outer sort of the 21 rows of the page
