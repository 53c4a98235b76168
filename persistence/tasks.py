"""SQL for tasks. Every statement is scoped to its owner by `_owned`, the one place that does it.

Statements are built with SQLAlchemy Core and compiled once per shape (functools.cache), then run
on asyncpg. A page of tasks is one statement: how many tasks match, summed from the user's count
cells (persistence/tables.py: task_counts, at most six rows, kept by the database with every
write), joined with the page, so a page costs the same for a user with 100,000 tasks as for one
with 20.
A conditional write (If-Match, If-None-Match) is one statement too: the change, guarded by the
row version, and whether the task exists at all, so that a failed precondition and a missing task
tell apart.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Literal

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    DateTime,
    String,
    all_,
    and_,
    any_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal_column,
    not_,
    or_,
    select,
    true,
    update,
)

from persistence import timestamps
from persistence.cursors import Position
from persistence.database import Connection, Statement
from persistence.tables import task_counts as counts
from persistence.tables import tasks

Task = dict[str, Any]
_WRITABLE = ("title", "description", "completed", "priority", "due_date")
# What a task looks like to clients; `version` travels as its ETag instead.


Write = Any  # an UPDATE or DELETE ... RETURNING, before its WHERE clause


class StaleVersion(Exception):
    """The task exists, but not at any of the versions the client said it has (If-Match)."""


def _instant(name: str) -> ColumnElement[datetime]:
    """A timestamptz parameter sent as text (see persistence/timestamps.py for why)."""
    return cast(bindparam(name, type_=String), DateTime(timezone=True))


def _owned(with_task: bool = False, table: Any = tasks) -> ColumnElement[bool]:
    """The rows the caller may see: all of :user_id's (tasks, or their counts), or the one
    with :task_id."""
    mine = table.c.user_id == bindparam("user_id")
    return and_(mine, tasks.c.id == bindparam("task_id")) if with_task else mine


def _after(sort: str, after_null: bool) -> ColumnElement[bool]:
    """Rows after the cursor's (:after_value, :after_id) in sort order (ties broken by id; a
    missing due date sorts last). The range on the sort column comes first so an index on it
    bounds the scan; the rest only sorts out ties."""
    column = tasks.c[sort.removeprefix("-")]
    after_id = tasks.c.id > bindparam("after_id", type_=tasks.c.id.type)
    if after_null:  # only due dates can be missing, and they come last
        return and_(column.is_(None), after_id)
    value = (
        _instant("after_value")
        if isinstance(column.type, DateTime)
        else bindparam("after_value", type_=column.type)
    )
    beyond, reached = (
        (column < value, column <= value)
        if sort.startswith("-")
        else (column > value, column >= value)
    )
    tie_or_beyond = or_(beyond, and_(column == value, after_id))
    if column is tasks.c.due_date:
        return or_(and_(reached, tie_or_beyond), column.is_(None))
    return and_(reached, tie_or_beyond)


def _order_by(sort: str, table: Any = tasks) -> list[Any]:
    name = sort.removeprefix("-")
    column = table.c[name]
    key = column.desc() if sort.startswith("-") else column.asc()
    # NULLS LAST only where there can be nulls: on a NOT NULL column it changes no order, but
    # it would keep PostgreSQL from walking an index in DESC order (which puts nulls first)
    # and make it sort all of the user's rows for every page.
    if tasks.c[name].nullable:
        key = key.nulls_last()
    return [key, table.c.id.asc()]


def _filters(table: Any, completed: bool, priority: bool) -> list[ColumnElement[bool]]:
    """The caller's rows of table (tasks or task_counts) that the list's filters select."""
    where = [_owned(table=table)]
    if completed:
        where.append(table.c.completed == bindparam("completed"))
    if priority:
        where.append(table.c.priority == bindparam("priority", type_=table.c.priority.type))
    return where


@cache
def _page(sort: str, completed: bool, priority: bool, cursor: bool, after_null: bool) -> Statement:
    """Count and page in one statement, for each shape of filter and cursor."""
    where = _filters(tasks, completed, priority)
    total = func.coalesce(func.sum(counts.c.tasks), 0).label("total")
    counted = select(total).where(*_filters(counts, completed, priority)).subquery("counted")
    page_where = [*where, _after(sort, after_null)] if cursor else where
    page = (
        select(*tasks.c)
        .where(*page_where)
        .order_by(*_order_by(sort))
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
        .lateral("page")
    )
    statement = (
        select(counted.c.total, *page.c)
        .select_from(counted.outerjoin(page, true()))
        .order_by(*_order_by(sort, page))
    )
    return Statement.compile(statement, "tasks.list")


def _write_values() -> dict[str, Any]:
    values: dict[str, Any] = {name: bindparam(name) for name in _WRITABLE}
    values["due_date"] = _instant("due_date")
    return values


_CREATE = Statement.compile(
    insert(tasks).values(user_id=bindparam("user_id"), **_write_values()).returning(*tasks.c),
    "tasks.create",
)
_GET = Statement.compile(select(tasks).where(_owned(with_task=True)), "tasks.get")
_CHANGED = {"updated_at": func.now(), "version": tasks.c.version + 1}
_SET_COMPLETED = (
    update(tasks).values(completed=bindparam("completed"), **_CHANGED).returning(*tasks.c)
)
_TOGGLE_COMPLETED = (
    update(tasks).values(completed=not_(tasks.c.completed), **_CHANGED).returning(*tasks.c)
)


@cache
def _update(names: frozenset[str]) -> Write:
    """An UPDATE of only these writable columns (a merge patch's fields), one per set of them."""
    values = {name: value for name, value in _write_values().items() if name in names}
    return update(tasks).values(**_CHANGED, **values).returning(*tasks.c)


_DELETE: Write = delete(tasks).returning(literal_column("1").label("deleted"))


Guard = Literal["at", "not_at"] | None  # the version must be one of :versions, or none of them


@cache
def _write(change: Write, guard: Guard) -> Statement:
    """change applied to the caller's task; with a guard, only when its version is (`at`), or
    is not (`not_at`), one of :versions, and with `current_version` telling whether the task
    exists (no row: it does not)."""
    name = "tasks.delete" if change.is_delete else "tasks.update"
    if guard is None:
        return Statement.compile(change.where(_owned(with_task=True)), name)
    versions = bindparam("versions", type_=ARRAY(BigInteger))
    condition = (
        tasks.c.version == any_(versions) if guard == "at" else tasks.c.version != all_(versions)
    )
    changed = change.where(_owned(with_task=True), condition).cte("changed")
    target = select(tasks.c.version.label("current_version")).where(_owned(with_task=True))
    found = target.cte("target")
    return Statement.compile(
        select(found.c.current_version, *changed.c).select_from(found.outerjoin(changed, true())),
        f"{name}_{'if_match' if guard == 'at' else 'if_none_match'}",
    )


@dataclass(frozen=True)
class Versions:
    """The versions a write may change (RFC 9110 §13.1): one of `at` (If-Match; None for any)
    and none of `not_at` (If-None-Match). `at=()` allows none: `If-None-Match: *`, which no
    existing task satisfies."""

    at: tuple[int, ...] | None = None
    not_at: tuple[int, ...] = ()

    def guard(self) -> tuple[Guard, list[int]]:
        """The statement's guard and its :versions."""
        if self.at is not None:
            return "at", [v for v in self.at if v not in self.not_at]
        if self.not_at:
            return "not_at", list(self.not_at)
        return None, []


ANY_VERSION = Versions()


async def _conditional(
    connection: Connection,
    change: Write,
    versions: Versions,
    **values: Any,
) -> dict[str, Any] | None:
    """The changed row, None when there is no such task, StaleVersion when the task is at no
    version the write may change."""
    guard, listed = versions.guard()
    if guard is None:
        return await connection.fetch_one(_write(change, None), **values)
    row = await connection.fetch_one(_write(change, guard), versions=listed, **values)
    if row is None:
        return None
    if all(row[name] is None for name in row if name != "current_version"):
        raise StaleVersion
    del row["current_version"]
    return row


def _values(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Column values from a validated request body (date-times arrive as RFC 3339 text)."""
    values = {name: fields.get(name) for name in _WRITABLE}
    due = values["due_date"]
    values["due_date"] = timestamps.to_database(
        timestamps.parse(due) if isinstance(due, str) else due
    )
    return values


async def list_tasks(
    connection: Connection,
    user_id: str,
    *,
    limit: int,
    offset: int = 0,
    completed: bool | None = None,
    priority: str | None = None,
    sort: str = "-created_at",
    after: Position | None = None,
) -> tuple[list[Task], int, bool]:
    """One page of user_id's tasks (each with its version), how many match in all, and
    whether more follow."""
    values: dict[str, Any] = {
        "user_id": user_id, "completed": completed, "priority": priority,
        "limit": limit + 1, "offset": offset,
    }  # fmt: skip
    after_null = False
    if after is not None:
        after_null = after.value is None
        value = after.value
        values["after_value"] = (
            timestamps.to_database(value) if isinstance(value, datetime) else value
        )
        values["after_id"] = after.task_id
    statement = _page(sort, completed is not None, priority is not None, after is not None,
                      after_null)  # fmt: skip
    rows = await connection.fetch_all(statement, **values)
    total = int(rows[0]["total"]) if rows else 0  # the outer join always yields the count row
    items = []
    for row in rows:
        del row["total"]
        if row["id"] is not None:  # an empty page is one row of NULLs beside the count
            items.append(row)
    return items[:limit], total, len(items) > limit


async def create_task(connection: Connection, user_id: str, fields: Mapping[str, Any]) -> Task:
    """Insert a task owned by user_id and return it as stored. fields are a request body as
    validated against the contract, which fills in the defaults of omitted fields."""
    task = await connection.fetch_one(_CREATE, user_id=user_id, **_values(fields))
    assert task is not None  # noqa: S101 - INSERT ... RETURNING always returns the row
    return task


async def get_task(connection: Connection, user_id: str, task_id: str) -> Task | None:
    """The task, if user_id owns it."""
    return await connection.fetch_one(_GET, user_id=user_id, task_id=uuid.UUID(task_id))


async def replace_task(
    connection: Connection,
    user_id: str,
    task_id: str,
    fields: Mapping[str, Any],
    *,
    versions: Versions = ANY_VERSION,
) -> Task | None:
    """Overwrite every writable field (the validated body has the defaults of those it left
    out); None when user_id has no such task, StaleVersion when the task is at no version the
    write may change."""
    every = {name: fields.get(name) for name in _WRITABLE}
    return await update_task(connection, user_id, task_id, every, versions=versions)


async def update_task(
    connection: Connection,
    user_id: str,
    task_id: str,
    fields: Mapping[str, Any],
    *,
    versions: Versions = ANY_VERSION,
) -> Task | None:
    """Change only the given writable fields (at least one); None when user_id has no such task,
    StaleVersion when the task is at no version the write may change."""
    given = frozenset(fields) & frozenset(_WRITABLE)
    values = {name: value for name, value in _values(fields).items() if name in given}
    return await _conditional(
        connection, _update(given), versions, user_id=user_id, task_id=uuid.UUID(task_id),
        **values,
    )  # fmt: skip


async def set_task_completed(
    connection: Connection,
    user_id: str,
    task_id: str,
    completed: bool | None,
    *,
    versions: Versions = ANY_VERSION,
) -> Task | None:
    """Set `completed`, or flip it when completed is None; None when there is no such task,
    StaleVersion when the task is at no version the write may change."""
    key = uuid.UUID(task_id)
    if completed is None:
        return await _conditional(connection, _TOGGLE_COMPLETED, versions, user_id=user_id,
                                  task_id=key)  # fmt: skip
    return await _conditional(connection, _SET_COMPLETED, versions, user_id=user_id, task_id=key,
                              completed=completed)  # fmt: skip


async def delete_task(
    connection: Connection, user_id: str, task_id: str, *, versions: Versions = ANY_VERSION
) -> bool:
    """Delete the task; whether user_id had it. StaleVersion when the task is at no version
    the write may change."""
    deleted = await _conditional(connection, _DELETE, versions, user_id=user_id,
                                 task_id=uuid.UUID(task_id))  # fmt: skip
    return deleted is not None
