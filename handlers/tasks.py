"""Task operations: validated arguments in, persistence called, reply out.

Each operation is one statement, atomic on its own; a write sent with an Idempotency-Key also
records its answer, in one transaction with the write (handlers/idempotency.py). Every task
answer carries the task's ETag; reads and writes honour If-Match and If-None-Match
(handlers/preconditions.py).
"""

from __future__ import annotations

from typing import Any

from handlers import idempotency, preconditions
from handlers.context import Reply, child_location, connection, reply, request_header, state
from handlers.core.errors import BadRequest, NotFound
from handlers.idempotency import Answer
from persistence import tasks
from persistence.cursors import InvalidCursor, Position
from persistence.database import Connection
from persistence.tasks import Task

NO_SUCH_TASK = "The user has no task with this id."


def _answer(task: Task | None, status: int, headers: dict[str, str] | None = None) -> Answer:
    """The task as the contract shows it, with its version as the ETag."""
    if task is None:
        raise NotFound(NO_SUCH_TASK)
    version = task.pop("version")
    return Answer(task, status, {**(headers or {}), "ETag": preconditions.etag(version)})


def _position(cursor: str | None, user_id: str, sort: str) -> Position | None:
    if cursor is None:
        return None
    try:
        return state().cursors.decode(cursor, user_id, sort)
    except InvalidCursor as error:
        detail = str(error)
        raise BadRequest(
            f"The cursor {detail}.", [{"location": "query", "name": "cursor", "detail": detail}]
        ) from None


async def list_tasks(
    user_id: str,
    limit: int,
    offset: int,
    sort: str,
    completed: bool | None = None,
    priority: str | None = None,
    cursor: str | None = None,
) -> Reply:
    after = _position(cursor, user_id, sort)  # before any I/O: a bad cursor costs nothing
    async with connection() as db:
        items, total, more = await tasks.list_tasks(
            db, user_id, limit=limit, offset=offset, completed=completed,
            priority=priority, sort=sort, after=after,
        )  # fmt: skip
    next_cursor = state().cursors.encode(user_id, sort, items[-1]) if more else None
    page = {"items": items, "total": total, "limit": limit, "offset": offset}
    # Every filter the contract offers is counted exactly (and cheaply) by the user's count
    # cells, so whichever count a client prefers, it gets the exact one, and is told so.
    applied = {"Preference-Applied": "count=exact"} if _prefers_a_count() else None
    if preconditions.check_untagged(read=True):
        return reply(None, 304)
    return reply({**page, "next_cursor": next_cursor}, 200, applied)


COUNT_PREFERENCES = frozenset({"exact", "planned", "estimated"})


def _prefers_a_count() -> bool:
    """Whether the request's Prefer field (RFC 7240) states a `count` preference we know."""
    for preference in (request_header("Prefer") or "").split(","):
        name, _, value = preference.split(";")[0].partition("=")
        wanted = value.strip().strip('"').lower()
        if name.strip().lower() == "count" and wanted in COUNT_PREFERENCES:
            return True
    return False


async def create_task(user_id: str, body: dict[str, Any]) -> Reply:
    preconditions.check_untagged(read=False)

    async def create(db: Connection) -> Answer:
        task = await tasks.create_task(db, user_id, body)
        return _answer(task, 201, {"Location": child_location(task["id"])})

    return await idempotency.run(user_id, body, create)


async def get_task(user_id: str, task_id: str) -> Reply:
    async with connection() as db:
        answer = _answer(await tasks.get_task(db, user_id, task_id), 200)
    if preconditions.check_read(answer.headers["ETag"]):
        return reply(None, 304, {"ETag": answer.headers["ETag"]})
    return answer.reply()


async def replace_task(user_id: str, task_id: str, body: dict[str, Any]) -> Reply:
    versions = preconditions.for_write(state().require_if_match)
    async with connection() as db:
        task = await tasks.replace_task(db, user_id, task_id, body, versions=versions)
    return _answer(task, 200).reply()


async def update_task(user_id: str, task_id: str, body: dict[str, Any]) -> Reply:
    versions = preconditions.for_write(state().require_if_match)
    async with connection() as db:
        task = await tasks.update_task(db, user_id, task_id, body, versions=versions)
    return _answer(task, 200).reply()


async def complete_task(user_id: str, task_id: str, body: dict[str, Any] | None = None) -> Reply:
    versions = preconditions.for_write(state().require_if_match)
    completed = (body or {}).get("completed")

    async def complete(db: Connection) -> Answer:
        task = await tasks.set_task_completed(db, user_id, task_id, completed, versions=versions)
        return _answer(task, 200)

    return await idempotency.run(user_id, body, complete)


async def delete_task(user_id: str, task_id: str) -> Reply:
    versions = preconditions.for_write(state().require_if_match)
    async with connection() as db:
        deleted = await tasks.delete_task(db, user_id, task_id, versions=versions)
    if not deleted:
        raise NotFound(NO_SUCH_TASK)
    return reply(None, 204)
