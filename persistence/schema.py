"""Runs the Alembic migrations in migrations/ from code (the app, the CLI and the tests), and
the distribution of the schema over a Citus cluster (persistence/distribution.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection

from persistence import distribution
from persistence.database import engine_for

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
T = TypeVar("T")


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, optionally handing it a connection to run on."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def _run(url: str, work: Callable[[Connection], T]) -> T:
    """work on a SQLAlchemy connection to url, in one transaction (migrations need SQLAlchemy;
    requests do not, so this engine lives only as long as the call)."""
    engine = engine_for(url)
    try:
        async with engine.begin() as connection:
            return await connection.run_sync(work)
    finally:
        await engine.dispose()


async def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the schema up to revision, in one transaction."""
    await _run(url, lambda connection: command.upgrade(alembic_config(connection), revision))


async def downgrade(url: str, revision: str) -> None:
    """Migrate the schema down to revision, in one transaction."""
    await _run(url, lambda connection: command.downgrade(alembic_config(connection), revision))


async def current_revision(url: str) -> str | None:
    """The revision the database is at, or None before the first migration."""
    return await _run(url, lambda c: MigrationContext.configure(c).get_current_revision())


async def distribute(url: str) -> list[str]:
    """Distribute the schema over the Citus cluster whose coordinator url is, in one
    transaction; the tables distributed now (distribution.NotDistributable: it cannot be)."""
    return await _run(url, distribution.distribute)
