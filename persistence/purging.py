"""Removing expired rows a few at a time, inside the writes that add rows: no job to run."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Table, delete, literal_column, select, tuple_


def purge(
    table: Table,
    key: list[Any],
    stale: ColumnElement[bool],
    batch: int,
    within: ColumnElement[bool] | None = None,
) -> Any:
    """A CTE ("purged") deleting up to batch rows for which stale holds, by their key columns,
    among the rows within holds for (one user's: then the whole statement stays on that user's
    shard of a distributed PostgreSQL); rows another transaction holds are skipped, never waited
    for."""
    rows = select(*key).where(stale).limit(batch).with_for_update(skip_locked=True)
    chosen = tuple_(*key).in_(rows.where(within) if within is not None else rows)
    removal = delete(table).where(chosen if within is None else within & chosen)
    return removal.returning(literal_column("1")).cte("purged")
