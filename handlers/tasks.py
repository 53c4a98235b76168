"""Task operations: the call's context and validated arguments in, persistence called, an Answer
out. They know no door: HTTP, MCP and the command line call them alike (handlers/core/).

Each operation is one statement, atomic on its own; a write sent with an idempotency key also
records its answer, in one transaction with the write (handlers/core/idempotency.py). Every task
answer carries the task's ETag; reads and writes honour If-Match and If-None-Match
(handlers/core/preconditions.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from handlers.core import idempotency, preconditions
from handlers.core.answer import Answer
from handlers.core.context import Context
from handlers.core.errors import BadRequest, NotFound, PreconditionFailed
from persistence import tasks
from persistence.cursors import InvalidCursor, Position
from persistence.database import Connection
from persistence.tasks import StaleVersion, Task, Versions

T = TypeVar("T")
NO_SUCH_TASK = "The user has no task with this id."
STALE = (
    "The task is not at a version the request's If-Match or If-None-Match allows (it has "
    "changed, or exists); read it again and decide."
)


def _answer(task: Task | None, status: int, headers: dict[str, str] | None = None) -> Answer:
    """The task as the contract shows it, with its version as the ETag."""
    if task is None:
        raise NotFound(NO_SUCH_TASK)
    version = task.pop("version")
    return Answer(task, status, {**(headers or {}), "ETag": preconditions.etag(version)})


def _position(ctx: Context, cursor: str | None, user_id: str, sort: str) -> Position | None:
    if cursor is None:
        return None
    try:
        return ctx.services.cursors.decode(cursor, user_id, sort)
    except InvalidCursor as error:
        detail = str(error)
        raise BadRequest(
            f"The cursor {detail}.", [{"location": "query", "name": "cursor", "detail": detail}]
        ) from None


async def list_tasks(
    ctx: Context,
    user_id: str,
    limit: int,
    offset: int,
    sort: str,
    completed: bool | None = None,
    priority: str | None = None,
    cursor: str | None = None,
) -> Answer:
    after = _position(ctx, cursor, user_id, sort)  # before any I/O: a bad cursor costs nothing
    async with ctx.connection() as db:
        items, total, more = await tasks.list_tasks(
            db, user_id, limit=limit, offset=offset, completed=completed,
            priority=priority, sort=sort, after=after,
        )  # fmt: skip
    next_cursor = ctx.services.cursors.encode(user_id, sort, items[-1]) if more else None
    etags = {str(item["id"]): preconditions.etag(item.pop("version")) for item in items}
    page = {"items": items, "total": total, "limit": limit, "offset": offset}
    # Every filter the contract offers is counted exactly (and cheaply) by the user's count
    # cells, so whichever count a client prefers, it gets the exact one, and is told so.
    applied = {"Preference-Applied": "count=exact"} if _prefers_a_count(ctx) else {}
    if preconditions.check_untagged(ctx, read=True):
        return Answer(None, 304)
    return Answer({**page, "next_cursor": next_cursor}, 200, applied, etags)


COUNT_PREFERENCES = frozenset({"exact", "planned", "estimated"})


def _prefers_a_count(ctx: Context) -> bool:
    """Whether the call's preferences (RFC 7240) state a `count` preference we know."""
    for preference in (ctx.prefer or "").split(","):
        name, _, value = preference.split(";")[0].partition("=")
        wanted = value.strip().strip('"').lower()
        if name.strip().lower() == "count" and wanted in COUNT_PREFERENCES:
            return True
    return False


async def create_task(ctx: Context, user_id: str, body: dict[str, Any]) -> Answer:
    preconditions.check_untagged(ctx, read=False)

    async def create(db: Connection) -> Answer:
        task = await tasks.create_task(db, user_id, body)
        return _answer(task, 201, {"Location": ctx.child_location(task["id"])})

    return await idempotency.run(ctx, user_id, body, create)


async def get_task(ctx: Context, user_id: str, task_id: str) -> Answer:
    async with ctx.connection() as db:
        answer = _answer(await tasks.get_task(db, user_id, task_id), 200)
    if preconditions.check_read(ctx, answer.headers["ETag"]):
        return Answer(None, 304, {"ETag": answer.headers["ETag"]})
    return answer


async def _written(ctx: Context, write: Callable[[Connection, Versions], Awaitable[T]]) -> T:
    """What a conditional write returns, PreconditionFailed when the task is at no version the
    call's conditions allow (checked before any database work: a 428 needs none)."""
    versions = preconditions.for_write(ctx)
    try:
        async with ctx.connection() as db:
            return await write(db, versions)
    except StaleVersion:
        raise PreconditionFailed(STALE) from None


async def replace_task(ctx: Context, user_id: str, task_id: str, body: dict[str, Any]) -> Answer:
    async def replace(db: Connection, versions: Versions) -> Task | None:
        return await tasks.replace_task(db, user_id, task_id, body, versions=versions)

    return _answer(await _written(ctx, replace), 200)


async def update_task(ctx: Context, user_id: str, task_id: str, body: dict[str, Any]) -> Answer:
    async def update(db: Connection, versions: Versions) -> Task | None:
        return await tasks.update_task(db, user_id, task_id, body, versions=versions)

    return _answer(await _written(ctx, update), 200)


async def complete_task(
    ctx: Context, user_id: str, task_id: str, body: dict[str, Any] | None = None
) -> Answer:
    versions = preconditions.for_write(ctx)
    completed = (body or {}).get("completed")

    async def complete(db: Connection) -> Answer:
        try:
            task = await tasks.set_task_completed(
                db, user_id, task_id, completed, versions=versions
            )
        except StaleVersion:
            raise PreconditionFailed(STALE) from None
        return _answer(task, 200)

    return await idempotency.run(ctx, user_id, body, complete)


async def delete_task(ctx: Context, user_id: str, task_id: str) -> Answer:
    async def delete(db: Connection, versions: Versions) -> bool:
        return await tasks.delete_task(db, user_id, task_id, versions=versions)

    if not await _written(ctx, delete):
        raise NotFound(NO_SUCH_TASK)
    return Answer(None, 204)
