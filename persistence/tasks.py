"""SQL for tasks. Every statement is scoped to its owner by `_owned`, the one place that does it."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, delete, func, insert, not_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.tables import tasks

Task = dict[str, Any]

_SORT_COLUMNS = {
    "created_at": tasks.c.created_at,
    "due_date": tasks.c.due_date,
    "priority": tasks.c.priority,
    "title": tasks.c.title,
}


def _owned(user_id: str, task_id: str | None = None) -> ColumnElement[bool]:
    """The rows user_id may see: all of theirs, or the one with task_id."""
    mine = tasks.c.user_id == user_id
    return mine if task_id is None else and_(mine, tasks.c.id == uuid.UUID(task_id))


def _order_by(sort: str) -> list[Any]:
    """ORDER BY for a sort key such as "-due_date"; missing due dates last, ties by id."""
    column = _SORT_COLUMNS[sort.removeprefix("-")]
    key = column.desc() if sort.startswith("-") else column.asc()
    return [key.nulls_last(), tasks.c.id.asc()]


def _columns(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Column values from a validated request body (date-times arrive as RFC 3339 text)."""
    values = dict(fields)
    if isinstance(values.get("due_date"), str):
        values["due_date"] = datetime.fromisoformat(values["due_date"])
    return values


def _task(row: Row[Any] | None) -> Task | None:
    return None if row is None else dict(row._mapping)


async def list_tasks(
    connection: AsyncConnection,
    user_id: str,
    *,
    limit: int,
    offset: int,
    completed: bool | None = None,
    priority: str | None = None,
    sort: str = "-created_at",
) -> tuple[list[Task], int]:
    """One page of user_id's tasks matching the filters, and how many match in all."""
    where = [_owned(user_id)]
    if completed is not None:
        where.append(tasks.c.completed == completed)
    if priority is not None:
        where.append(tasks.c.priority == priority)
    total = await connection.scalar(select(func.count()).select_from(tasks).where(*where))
    rows = await connection.execute(
        select(tasks).where(*where).order_by(*_order_by(sort)).limit(limit).offset(offset)
    )
    return [dict(row._mapping) for row in rows], int(total or 0)


async def create_task(connection: AsyncConnection, user_id: str, fields: Mapping[str, Any]) -> Task:
    """Insert a task owned by user_id and return it as stored."""
    row = (
        await connection.execute(
            insert(tasks).values(user_id=user_id, **_columns(fields)).returning(*tasks.c)
        )
    ).one()
    return dict(row._mapping)


async def get_task(connection: AsyncConnection, user_id: str, task_id: str) -> Task | None:
    """The task, if user_id owns it."""
    result = await connection.execute(select(tasks).where(_owned(user_id, task_id)))
    return _task(result.one_or_none())


async def replace_task(
    connection: AsyncConnection, user_id: str, task_id: str, fields: Mapping[str, Any]
) -> Task | None:
    """Overwrite the task's writable fields; None when user_id has no such task."""
    result = await connection.execute(
        update(tasks)
        .where(_owned(user_id, task_id))
        .values(**_columns(fields), updated_at=func.now())
        .returning(*tasks.c)
    )
    return _task(result.one_or_none())


async def set_task_completed(
    connection: AsyncConnection, user_id: str, task_id: str, completed: bool | None
) -> Task | None:
    """Set `completed`, or flip it when completed is None; None when there is no such task."""
    value = not_(tasks.c.completed) if completed is None else completed
    result = await connection.execute(
        update(tasks)
        .where(_owned(user_id, task_id))
        .values(completed=value, updated_at=func.now())
        .returning(*tasks.c)
    )
    return _task(result.one_or_none())


async def delete_task(connection: AsyncConnection, user_id: str, task_id: str) -> bool:
    """Delete the task; whether user_id had it."""
    result = await connection.execute(
        delete(tasks).where(_owned(user_id, task_id)).returning(tasks.c.id)
    )
    return result.one_or_none() is not None
