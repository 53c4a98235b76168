"""The operations called as any door calls them: a Context and validated arguments in, an Answer
or a domain error out. No HTTP, no Connexion, no MCP SDK; the real database."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
import pytest

from handlers import health, tasks
from handlers.core.answer import Answer
from handlers.core.context import Context, Services
from handlers.core.errors import BadRequest, NotFound, PreconditionFailed, PreconditionRequired
from handlers.services import jsonifier
from persistence.cursors import Cursors
from persistence.database import open_database

T = TypeVar("T")
# A body as the doors hand it over: validated, the contract's defaults filled in.
NEW = {"description": None, "completed": False, "priority": "medium", "due_date": None}
Call = Callable[[Services], Awaitable[T]]


def with_services(database_url: str, work: Call[T], **policies: Any) -> T:
    async def run() -> T:
        async with open_database(database_url, pool_size=2) as database:
            cursors = Cursors(secrets.token_bytes(32))
            return await work(Services(database=database, cursors=cursors, **policies))

    return asyncio.run(run())


def json(value: Any) -> Any:
    """value as a door sends it: JSON."""
    return orjson.loads(jsonifier.dumps(value))


def call(services: Services, user: str | None, method: str, target: str, **fields: Any) -> Context:
    return Context(services=services, user_id=user, method=method, target=target, **fields)


def test_a_task_made_read_and_changed_without_any_door(database_url: str, user: str) -> None:
    tasks_path = f"/api/{user}/tasks"

    async def work(services: Services) -> tuple[Answer, ...]:
        made = await tasks.create_task(
            call(services, user, "POST", tasks_path),
            user,
            {**NEW, "title": "Plain", "priority": "low"},
        )
        task_id = str(made.body["id"])
        task_path = f"{tasks_path}/{task_id}"
        read = await tasks.get_task(call(services, user, "GET", task_path), user, task_id)
        unchanged = await tasks.get_task(
            call(services, user, "GET", task_path, if_none_match=made.headers["ETag"]),
            user, task_id,
        )  # fmt: skip
        changed = await tasks.update_task(
            call(services, user, "PATCH", task_path, if_match=made.headers["ETag"]),
            user, task_id, {"title": "Changed"},
        )  # fmt: skip
        with pytest.raises(PreconditionFailed):
            await tasks.update_task(
                call(services, user, "PATCH", task_path, if_match=made.headers["ETag"]),
                user, task_id, {"title": "Lost"},
            )  # fmt: skip
        page = await tasks.list_tasks(
            call(services, user, "GET", tasks_path, prefer="count=exact"),
            user, limit=10, offset=0, sort="-created_at",
        )  # fmt: skip
        return made, read, unchanged, changed, page

    made, read, unchanged, changed, page = with_services(database_url, work)
    assert (made.status, made.body["title"], made.headers["ETag"]) == (201, "Plain", '"1"')
    assert made.headers["Location"] == f"{tasks_path}/{made.body['id']}"
    assert (read.status, json(read.body)) == (200, json(made.body))
    assert (unchanged.status, unchanged.body) == (304, None)
    assert (changed.status, changed.body["title"], changed.headers["ETag"]) == (
        200,
        "Changed",
        '"2"',
    )
    assert page.body["total"] == 1
    assert page.headers == {"Preference-Applied": "count=exact"}


def test_an_idempotency_key_makes_a_retried_create_happen_once(
    database_url: str, user: str
) -> None:
    target = f"/api/{user}/tasks"

    async def work(services: Services) -> tuple[Answer, Answer, Answer]:
        keyed = call(services, user, "POST", target, idempotency_key="retry-me")
        first = await tasks.create_task(keyed, user, {**NEW, "title": "Once"})
        again = await tasks.create_task(keyed, user, {**NEW, "title": "Once"})
        listed = await tasks.list_tasks(
            call(services, user, "GET", target), user, limit=10, offset=0, sort="-created_at"
        )
        return first, again, listed

    first, again, listed = with_services(database_url, work)
    assert json(again.body) == json(first.body)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert listed.body["total"] == 1


def test_policies_and_missing_tasks_are_domain_errors(database_url: str, user: str) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    target = f"/api/{user}/tasks/{missing}"

    async def work(services: Services) -> list[type[Exception]]:
        raised = []
        attempts = [
            tasks.get_task(call(services, user, "GET", target), user, missing),
            tasks.delete_task(call(services, user, "DELETE", target), user, missing),
            tasks.create_task(call(services, user, "POST", f"/api/{user}/tasks"), user, NEW),
        ]
        for attempt in attempts:
            try:
                await attempt
            except Exception as error:
                raised.append(type(error))
        return raised

    strict = {"require_if_match": True, "require_idempotency_key": True}
    assert with_services(database_url, work, **strict) == [
        NotFound, PreconditionRequired, BadRequest,
    ]  # fmt: skip


def test_the_probes_answer_without_a_door(database_url: str) -> None:
    async def work(services: Services) -> Answer:
        return await health.check_readiness(call(services, None, "GET", "/readyz"))

    ready = with_services(database_url, work)
    assert (ready.body, ready.status, ready.headers) == ({"status": "ok"}, 200, {})
