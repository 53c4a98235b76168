"""SQL for tasks. Every statement is scoped to its owner by `_owned`, the one place that does it.

Statements are built with SQLAlchemy Core and compiled once per shape (functools.cache), then run
on asyncpg. A page of tasks is one statement: the count of matching tasks joined with the page.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    bindparam,
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

from persistence.database import Connection, Statement
from persistence.tables import task_priority, tasks

Task = dict[str, Any]
_WRITABLE = ("title", "description", "completed", "priority", "due_date")
MAX_CURSOR_LENGTH = 1024


class InvalidCursor(ValueError):
    """A cursor this server did not make, or made for another sort order."""


def _owned(with_task: bool = False) -> ColumnElement[bool]:
    """The rows the caller may see: all of :user_id's, or the one with :task_id."""
    mine = tasks.c.user_id == bindparam("user_id")
    return and_(mine, tasks.c.id == bindparam("task_id")) if with_task else mine


def _after(sort: str, after_null: bool) -> ColumnElement[bool]:
    """Rows after the cursor's (:after_value, :after_id) in sort order (ties broken by id; a
    missing due date sorts last). The range on the sort column comes first so an index on it
    bounds the scan; the rest only sorts out ties."""
    column = tasks.c[sort.removeprefix("-")]
    after_id = tasks.c.id > bindparam("after_id", type_=tasks.c.id.type)
    if after_null:  # only due dates can be missing, and they come last
        return and_(column.is_(None), after_id)
    value = bindparam("after_value", type_=column.type)
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
    column = table.c[sort.removeprefix("-")]
    key = column.desc() if sort.startswith("-") else column.asc()
    return [key.nulls_last(), table.c.id.asc()]


@cache
def _page(sort: str, completed: bool, priority: bool, cursor: bool, after_null: bool) -> Statement:
    """Count and page in one statement, for each shape of filter and cursor."""
    where = [_owned()]
    if completed:
        where.append(tasks.c.completed == bindparam("completed"))
    if priority:
        where.append(tasks.c.priority == bindparam("priority", type_=tasks.c.priority.type))
    counted = select(func.count().label("total")).where(*where).subquery("counted")
    page_where = [*where, _after(sort, after_null)] if cursor else where
    page = (
        select(tasks)
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
    return Statement.compile(statement)


_CREATE = Statement.compile(
    insert(tasks)
    .values(user_id=bindparam("user_id"), **{name: bindparam(name) for name in _WRITABLE})
    .returning(*tasks.c)
)
_GET = Statement.compile(select(tasks).where(_owned(with_task=True)))
_REPLACE = Statement.compile(
    update(tasks)
    .where(_owned(with_task=True))
    .values(updated_at=func.now(), **{name: bindparam(name) for name in _WRITABLE})
    .returning(*tasks.c)
)
_SET_COMPLETED = Statement.compile(
    update(tasks)
    .where(_owned(with_task=True))
    .values(completed=bindparam("completed"), updated_at=func.now())
    .returning(*tasks.c)
)
_TOGGLE_COMPLETED = Statement.compile(
    update(tasks)
    .where(_owned(with_task=True))
    .values(completed=not_(tasks.c.completed), updated_at=func.now())
    .returning(*tasks.c)
)
_DELETE = Statement.compile(
    delete(tasks).where(_owned(with_task=True)).returning(literal_column("1"))
)


def _values(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Column values from a validated request body (date-times arrive as RFC 3339 text)."""
    values = {name: fields.get(name) for name in _WRITABLE}
    if isinstance(values["due_date"], str):
        values["due_date"] = datetime.fromisoformat(values["due_date"].upper())
    return values


def encode_cursor(sort: str, task: Task) -> str:
    """An opaque cursor that resumes after task in sort order."""
    value = task[sort.removeprefix("-")]
    if isinstance(value, datetime):
        value = value.isoformat()
    raw = json.dumps([sort, value, str(task["id"])], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[Any, uuid.UUID]:
    """The (sort value, id) a cursor resumes after; InvalidCursor when it is not ours."""
    try:
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        cursor_sort, value, task_id = json.loads(raw)
        after_id = uuid.UUID(task_id)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor("is not a cursor this API returned") from None
    if cursor_sort != sort:
        raise InvalidCursor(f"was made for sort={cursor_sort!s:.20}; use the same sort")
    column = sort.removeprefix("-")
    try:
        if value is not None and column in ("created_at", "due_date"):
            value = datetime.fromisoformat(value)
        elif value is None and column != "due_date":
            raise ValueError("missing value")
        elif value is not None and not isinstance(value, str):
            raise TypeError("not text")
        if column == "priority" and value not in task_priority.enums:
            raise ValueError("not a priority")
    except (ValueError, TypeError):
        raise InvalidCursor("is not a cursor this API returned") from None
    return value, after_id


async def list_tasks(
    connection: Connection,
    user_id: str,
    *,
    limit: int,
    offset: int = 0,
    completed: bool | None = None,
    priority: str | None = None,
    sort: str = "-created_at",
    cursor: str | None = None,
) -> tuple[list[Task], int, str | None]:
    """One page of user_id's tasks, how many match in all, and the cursor of the next page."""
    values: dict[str, Any] = {
        "user_id": user_id, "completed": completed, "priority": priority,
        "limit": limit + 1, "offset": offset,
    }  # fmt: skip
    after_null = False
    if cursor is not None:
        values["after_value"], values["after_id"] = decode_cursor(cursor, sort)
        after_null = values["after_value"] is None
    statement = _page(sort, completed is not None, priority is not None, cursor is not None,
                      after_null)  # fmt: skip
    rows = await connection.fetch_all(statement, **values)
    total = int(rows[0]["total"]) if rows else 0  # the outer join always yields the count row
    items = []
    for row in rows:
        del row["total"]
        if row["id"] is not None:  # an empty page is one row of NULLs beside the count
            items.append(row)
    more = len(items) > limit
    items = items[:limit]
    return items, total, encode_cursor(sort, items[-1]) if more else None


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
    connection: Connection, user_id: str, task_id: str, fields: Mapping[str, Any]
) -> Task | None:
    """Overwrite the task's writable fields; None when user_id has no such task."""
    return await connection.fetch_one(
        _REPLACE, user_id=user_id, task_id=uuid.UUID(task_id), **_values(fields)
    )


async def set_task_completed(
    connection: Connection, user_id: str, task_id: str, completed: bool | None
) -> Task | None:
    """Set `completed`, or flip it when completed is None; None when there is no such task."""
    if completed is None:
        return await connection.fetch_one(
            _TOGGLE_COMPLETED, user_id=user_id, task_id=uuid.UUID(task_id)
        )
    return await connection.fetch_one(
        _SET_COMPLETED, user_id=user_id, task_id=uuid.UUID(task_id), completed=completed
    )


async def delete_task(connection: Connection, user_id: str, task_id: str) -> bool:
    """Delete the task; whether user_id had it."""
    deleted = await connection.fetch_one(_DELETE, user_id=user_id, task_id=uuid.UUID(task_id))
    return deleted is not None
