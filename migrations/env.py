"""Alembic environment: runs on a connection handed over by the app, or on DATABASE_URL."""

import asyncio
import os

from alembic import context
from sqlalchemy import Connection

from persistence import distribution
from persistence.database import engine_for
from persistence.tables import metadata


def run_on(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        distribution.lock_schema(connection)
        # On a Citus cluster: triggers may be added to distributed tables, and once the schema
        # is distributed, a table the migrations add is distributed in the same transaction.
        distribution.before_migrations(connection)
        context.run_migrations()
        distribution.after_migrations(connection)


async def run_on_database_url() -> None:
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit(
            "Set DATABASE_URL, or run `tasks-api migrate` to use the embedded database."
        )
    engine = engine_for(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_on)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("Offline (--sql) migrations are not supported; run against a database.")

handed_over = context.config.attributes.get("connection")
if handed_over is not None:
    run_on(handed_over)
else:
    asyncio.run(run_on_database_url())
