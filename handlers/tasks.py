"""Task operations: validated arguments in, one transaction, persistence, body and status out."""

from __future__ import annotations

from typing import Any

from handlers.context import Reply, child_location, reply, transaction
from handlers.problems import NotFound
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
) -> Reply:
    async with transaction() as connection:
        items, total = await tasks.list_tasks(
            connection,
            user_id,
            limit=limit,
            offset=offset,
            completed=completed,
            priority=priority,
            sort=sort,
        )
    return reply({"items": items, "total": total, "limit": limit, "offset": offset}, 200)


async def create_task(user_id: str, body: dict[str, Any]) -> Reply:
    async with transaction() as connection:
        task = await tasks.create_task(connection, user_id, body)
    return reply(task, 201, {"Location": child_location(task["id"])})


async def get_task(user_id: str, task_id: str) -> Reply:
    async with transaction() as connection:
        task = await tasks.get_task(connection, user_id, task_id)
    return reply(_found(task), 200)


async def replace_task(user_id: str, task_id: str, body: dict[str, Any]) -> Reply:
    async with transaction() as connection:
        task = await tasks.replace_task(connection, user_id, task_id, body)
    return reply(_found(task), 200)


async def complete_task(user_id: str, task_id: str, body: dict[str, Any] | None = None) -> Reply:
    completed = (body or {}).get("completed")
    async with transaction() as connection:
        task = await tasks.set_task_completed(connection, user_id, task_id, completed)
    return reply(_found(task), 200)


async def delete_task(user_id: str, task_id: str) -> Reply:
    async with transaction() as connection:
        deleted = await tasks.delete_task(connection, user_id, task_id)
    if not deleted:
        raise NotFound(NO_SUCH_TASK)
    return reply(None, 204)
