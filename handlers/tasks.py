"""Task operations: validated arguments in, one statement through persistence, reply out.

Each operation is a single statement, atomic on its own, so none opens a transaction.
"""

from __future__ import annotations

from typing import Any

from handlers.context import Reply, child_location, connection, reply
from handlers.problems import BadRequest, NotFound
from persistence import tasks
from persistence.tasks import Task

NO_SUCH_TASK = "The user has no task with this id."


def _found(task: Task | None) -> Task:
    if task is None:
        raise NotFound(NO_SUCH_TASK)
    return task


async def list_tasks(
    user_id: str,
    limit: int,
    offset: int,
    sort: str,
    completed: bool | None = None,
    priority: str | None = None,
    cursor: str | None = None,
) -> Reply:
    try:
        async with connection() as db:
            items, total, next_cursor = await tasks.list_tasks(
                db, user_id, limit=limit, offset=offset, completed=completed,
                priority=priority, sort=sort, cursor=cursor,
            )  # fmt: skip
    except tasks.InvalidCursor as error:
        detail = str(error)
        raise BadRequest(
            f"The cursor {detail}.", [{"location": "query", "name": "cursor", "detail": detail}]
        ) from None
    page = {"items": items, "total": total, "limit": limit, "offset": offset}
    return reply({**page, "next_cursor": next_cursor}, 200)


async def create_task(user_id: str, body: dict[str, Any]) -> Reply:
    async with connection() as db:
        task = await tasks.create_task(db, user_id, body)
    return reply(task, 201, {"Location": child_location(task["id"])})


async def get_task(user_id: str, task_id: str) -> Reply:
    async with connection() as db:
        task = await tasks.get_task(db, user_id, task_id)
    return reply(_found(task), 200)


async def replace_task(user_id: str, task_id: str, body: dict[str, Any]) -> Reply:
    async with connection() as db:
        task = await tasks.replace_task(db, user_id, task_id, body)
    return reply(_found(task), 200)


async def complete_task(user_id: str, task_id: str, body: dict[str, Any] | None = None) -> Reply:
    completed = (body or {}).get("completed")
    async with connection() as db:
        task = await tasks.set_task_completed(db, user_id, task_id, completed)
    return reply(_found(task), 200)


async def delete_task(user_id: str, task_id: str) -> Reply:
    async with connection() as db:
        deleted = await tasks.delete_task(db, user_id, task_id)
    if not deleted:
        raise NotFound(NO_SUCH_TASK)
    return reply(None, 204)
