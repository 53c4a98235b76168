"""Runs the Alembic migrations in migrations/ from code: the app, the CLI and the tests."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

from persistence.database import Database

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, optionally handing it a connection to run on."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def upgrade(database: Database, revision: str = "head") -> None:
    """Migrate the schema up to revision, in one transaction."""

    def run(connection: Connection) -> None:
        command.upgrade(alembic_config(connection), revision)

    async with database.transaction() as connection:
        await connection.run_sync(run)


async def downgrade(database: Database, revision: str) -> None:
    """Migrate the schema down to revision, in one transaction."""

    def run(connection: Connection) -> None:
        command.downgrade(alembic_config(connection), revision)

    async with database.transaction() as connection:
        await connection.run_sync(run)


async def current_revision(database: Database) -> str | None:
    """The revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with database.transaction() as connection:
        return await connection.run_sync(read)
