"""The schema exists only through Alembic: reversible, and matching persistence/tables.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect

from persistence.database import Database, open_database
from persistence.schema import current_revision, downgrade, upgrade
from persistence.tables import metadata


async def _inspect(database: Database, read: Callable[[Connection], Any]) -> Any:
    async with database.transaction() as connection:
        return await connection.run_sync(read)


def test_upgrade_downgrade_upgrade(create_database: Callable[[str], str]) -> None:
    url = create_database("migration_tests")

    async def scenario() -> None:
        async with open_database(url, pool_size=1) as database:
            assert await current_revision(database) is None

            await upgrade(database)
            head = await current_revision(database)
            assert head is not None
            assert "tasks" in await _inspect(database, lambda c: inspect(c).get_table_names())

            await downgrade(database, "base")
            assert await current_revision(database) is None
            tables = await _inspect(database, lambda c: inspect(c).get_table_names())
            assert tables == ["alembic_version"]
            enums = await _inspect(
                database,
                lambda c: c.exec_driver_sql(
                    "SELECT typname FROM pg_type WHERE typname = 'task_priority'"
                ).all(),
            )
            assert enums == []

            await upgrade(database)
            assert await current_revision(database) == head

    asyncio.run(scenario())


def test_migrated_schema_matches_the_table_definitions(database_url: str) -> None:
    def differences(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async def compare() -> list[Any]:
        async with open_database(database_url, pool_size=1) as database:
            result: list[Any] = await _inspect(database, differences)
            return result

    assert asyncio.run(compare()) == []


def test_the_list_index_exists(database_url: str) -> None:
    async def indexes() -> list[dict[str, Any]]:
        async with open_database(database_url, pool_size=1) as database:
            result: list[dict[str, Any]] = await _inspect(
                database, lambda c: inspect(c).get_indexes("tasks")
            )
            return result

    found = {ix["name"]: ix for ix in asyncio.run(indexes())}
    index = found["ix_tasks_user_id_created_at_id"]
    assert index["column_names"] == ["user_id", "created_at", "id"]
    assert index["column_sorting"] == {"created_at": ("desc",)}
