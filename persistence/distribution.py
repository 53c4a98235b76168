"""Spreading the schema over a Citus cluster by user (`tasks-api distribute`), and keeping it
spread through later migrations.

Every per-user table (DISTRIBUTED_BY in tables.py) becomes a distributed table sharded by
user_id, all of them co-located: a user's rows of every table live in one shard group on one
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

from sqlalchemy import Connection, delete, func, insert, select, text

from persistence.tables import DISTRIBUTED_BY, metadata, task_counts, tasks

_SCHEMA_LOCK = 7_412_604_519  # any constant: see lock_schema


class NotDistributable(Exception):
    """The database cannot be distributed from here; the message says why."""


def sharded() -> list[tuple[str, str]]:
    """(table, distribution column) for every per-user table, tasks last: distributing a table
    copies its rows into its shards, which fires the count trigger of tasks in each shard, and
    the cells it writes must be distributed by then."""
    found = [
        (table.name, table.info[DISTRIBUTED_BY])
        for table in metadata.sorted_tables
        if table.info[DISTRIBUTED_BY] is not None
    ]
    return sorted(found, key=lambda entry: entry[0] == tasks.name)


def lock_schema(connection: Connection) -> None:
    """Wait for, and hold until the transaction ends, the right to change the schema: every
    migration and distribution takes it, so they run one at a time (several servers starting
    with --migrate at once, an operator's `distribute` meanwhile)."""
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})


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
    lock_schema(connection)
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
    """Distribute the per-user tables that exist and are not distributed yet, each co-located
    with the first one distributed, and leave no copy of their rows on the coordinator."""
    done, present = distributed(connection), _tables(connection)
    _changing_distributed_tables(connection)
    now: list[str] = []
    for name, column in sharded():
        if name in done or name not in present:
            continue
        anchor = next((table for table, _ in sharded() if table in done or table in now), None)
        connection.execute(
            text(
                "SELECT create_distributed_table(CAST(:name AS regclass), :column,"
                " colocate_with => :with)"
            ),
            {"name": name, "column": column, "with": anchor or "default"},
        )
        connection.execute(
            text("SELECT truncate_local_data_after_distributing_table(CAST(:name AS regclass))"),
            {"name": name},
        )
        now.append(name)
    if tasks.name in now and task_counts.name in present:
        # The rows copied into the shards of tasks went through its count trigger there, on
        # top of the cells already copied: count them again from the tasks (each user's cells
        # from that user's shard, once, while the new shards still block writes).
        connection.execute(delete(task_counts))
        cells = [tasks.c.user_id, tasks.c.completed, tasks.c.priority]
        recount = select(*cells, func.count()).group_by(*cells)
        connection.execute(insert(task_counts).from_select([*cells, task_counts.c.tasks], recount))
    return now


def _changing_distributed_tables(connection: Connection) -> None:
    """For the rest of the transaction: triggers may be added to distributed tables (see the
    module's note), and each worker is changed over one connection. Over several at once (the
    default), what one connection made is not seen by the others before the commit: the rows
    copied into the shards of tasks fire the count trigger, which found no shard of the
    task_counts distributed just before; and Citus refuses some commands (DROP FUNCTION)."""
    connection.execute(text("SET LOCAL citus.enable_unsafe_triggers = on"))
    connection.execute(text("SET LOCAL citus.multi_shard_modify_mode = 'sequential'"))


def before_migrations(connection: Connection) -> None:
    """On Citus, let the migrations change distributed tables."""
    if citus(connection):
        _changing_distributed_tables(connection)


def after_migrations(connection: Connection) -> list[str]:
    """Once tasks is distributed, distribute what the migrations added (a new per-user table,
    or one a downgrade dropped and the upgrade made again), in their transaction, so the
    cluster never runs with one of them left on the coordinator."""
    if tasks.name in distributed(connection):
        return _spread(connection)
    return []
