"""Spreading the schema over a Citus cluster by user (`tasks-api distribute`), and keeping it
spread through later migrations.

Every per-user table (DISTRIBUTED_BY in tables.py) becomes a distributed table sharded by
user_id, co-located with tasks: a user's rows of every table live in one shard group on one
worker, so every statement (each filters by user_id: tests/unit/test_sharding.py) runs on that
worker alone, and a write and the rows that follow it (the count cells its trigger changes, the
idempotency key stored with it) commit on one node. A table with no user (rate-limit windows:
an address that failed authentication has none) stays a table of the coordinator, which every
request passes through anyway.

The count trigger on tasks runs on the workers, in each shard, and writes only the cells of the
user whose rows changed, which live in the co-located shard: exactly the trigger Citus lets run
there once `citus.enable_unsafe_triggers` is on (migration 0008 wrote it so). Migrations set the
same on Citus, so a later one may add a trigger to a distributed table (migrations/env.py).
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from persistence.tables import DISTRIBUTED_BY, metadata, tasks

# Citus runs triggers on distributed tables only when told to (they run on the workers, inside
# each shard: ours touch nothing but the co-located shard of the same user).
_TRIGGERS_ON_SHARDS = "SET LOCAL citus.enable_unsafe_triggers = on"


class NotDistributable(Exception):
    """The database cannot be distributed from here; the message says why."""


def sharded() -> list[tuple[str, str]]:
    """(table, distribution column) for every per-user table, tasks first: the others are
    co-located with it."""
    found = [
        (table.name, table.info[DISTRIBUTED_BY])
        for table in metadata.sorted_tables
        if table.info[DISTRIBUTED_BY] is not None
    ]
    return sorted(found, key=lambda entry: entry[0] != tasks.name)


def citus(connection: Connection) -> bool:
    """Whether the database has the Citus extension."""
    found = connection.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'citus'"))
    return found.first() is not None


def distributed(connection: Connection) -> set[str]:
    """The tables of the current schema that Citus has distributed (none without Citus)."""
    if not citus(connection):
        return set()
    rows = connection.execute(
        text(
            "SELECT c.relname FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid"
            " WHERE c.relnamespace = current_schema()::regnamespace AND p.partmethod = 'h'"
        )
    )
    return {row[0] for row in rows}


def distribute(connection: Connection) -> list[str]:
    """Distribute every per-user table not yet distributed, in the caller's transaction; the
    tables distributed now (none when all already are). NotDistributable when the database is
    not a Citus coordinator or the schema is not migrated."""
    if not citus(connection):
        raise NotDistributable(
            "the database has no Citus extension: `tasks-api distribute` spreads the tables over"
            " a Citus cluster, run against its coordinator (README: When one PostgreSQL is not"
            " enough)"
        )
    if connection.execute(text("SELECT groupid FROM pg_dist_local_group")).scalar() != 0:
        raise NotDistributable(
            "this is a Citus worker, not the coordinator: point DATABASE_URL at the coordinator"
        )
    if not connection.execute(text("SELECT citus_is_coordinator()")).scalar():
        raise NotDistributable(
            "the Citus coordinator has no nodes yet: add them first (citus_set_coordinator_host,"
            " then citus_add_node for each worker; README: When one PostgreSQL is not enough)"
        )
    missing = [name for name, _ in sharded() if name not in _tables(connection)]
    if missing:
        raise NotDistributable(
            f"the schema is not migrated (no table {', '.join(missing)}): run `tasks-api migrate`"
        )
    return _spread(connection)


def _tables(connection: Connection) -> set[str]:
    rows = connection.execute(
        text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    )
    return set(rows.scalars())


def _spread(connection: Connection) -> list[str]:
    """Distribute the per-user tables that exist and are not distributed yet."""
    done, present = distributed(connection), _tables(connection)
    connection.execute(text(_TRIGGERS_ON_SHARDS))
    now = []
    for name, column in sharded():
        if name in done or name not in present:
            continue
        connection.execute(
            text(
                "SELECT create_distributed_table(CAST(:name AS regclass), :column,"
                " colocate_with => :with)"
            ),
            {"name": name, "column": column, "with": "default" if name == tasks.name else "tasks"},
        )
        now.append(name)
    return now


def before_migrations(connection: Connection) -> None:
    """On Citus, let the migrations add triggers to distributed tables (see the module's note),
    and change them one shard at a time: Citus refuses some commands (a DROP FUNCTION) after
    a change it made over several connections at once in the same transaction."""
    if citus(connection):
        connection.execute(text(_TRIGGERS_ON_SHARDS))
        connection.execute(text("SET LOCAL citus.multi_shard_modify_mode = 'sequential'"))


def after_migrations(connection: Connection) -> list[str]:
    """Once tasks is distributed, distribute what the migrations added (a new per-user table,
    or one a downgrade dropped and the upgrade made again), in their transaction, so the
    cluster never runs with one of them left on the coordinator."""
    if tasks.name in distributed(connection):
        return _spread(connection)
    return []
