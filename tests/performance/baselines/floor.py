"""The overhead floor: Starlette + asyncpg + orjson, minimal validation, the same routes, JWT
check and SQL as tasks-api. What a hand-rolled service costs; benchmark only."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import jwt
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from persistence.database_url import connect_arguments

SECRET = os.environ["JWT_SECRET"]
INSERT = (
    "INSERT INTO tasks (user_id, title, description, completed, priority, due_date) "
    "VALUES ($1, $2, $3, $4, $5, $6) RETURNING *"
)
COUNT = "SELECT count(*) FROM tasks WHERE user_id = $1"
PAGE = "SELECT * FROM tasks WHERE user_id = $1 ORDER BY created_at DESC, id LIMIT $2 OFFSET $3"
GET = "SELECT * FROM tasks WHERE user_id = $1 AND id = $2"
REPLACE = (
    "UPDATE tasks SET title = $3, description = $4, completed = $5, priority = $6, "
    "due_date = NULL, updated_at = now() WHERE user_id = $1 AND id = $2 RETURNING *"
)
TOGGLE = (
    "UPDATE tasks SET completed = NOT completed, updated_at = now() "
    "WHERE user_id = $1 AND id = $2 RETURNING *"
)
pool: asyncpg.Pool | None = None


def reply(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body, default=str), status, media_type="application/json")


def owner(request: Request) -> str | Response:
    user_id: str = request.path_params["user_id"]
    header = request.headers.get("authorization", "")
    try:
        claims = jwt.decode(
            header[7:], SECRET, algorithms=["HS256"], options={"require": ["exp", "sub"]}
        )
    except jwt.PyJWTError:
        return Response(status_code=401)
    return user_id if claims["sub"] == user_id else Response(status_code=403)


async def tasks(request: Request) -> Response:
    user_id = owner(request)
    if isinstance(user_id, Response):
        return user_id
    assert pool is not None
    if request.method == "POST":
        body = orjson.loads(await request.body())
        if not isinstance(body, dict) or not body.get("title"):
            return Response(status_code=400)
        row = await pool.fetchrow(
            INSERT,
            user_id, body["title"], body.get("description"), body.get("completed", False),
            body.get("priority", "medium"), None,
        )  # fmt: skip
        return reply(dict(row), 201)
    limit = int(request.query_params.get("limit", 20))
    offset = int(request.query_params.get("offset", 0))
    total = await pool.fetchval(COUNT, user_id)
    rows = await pool.fetch(
        PAGE,
        user_id, limit, offset,
    )  # fmt: skip
    return reply(
        {"items": [dict(r) for r in rows], "total": total, "limit": limit, "offset": offset}
    )


async def task(request: Request) -> Response:
    user_id = owner(request)
    if isinstance(user_id, Response):
        return user_id
    assert pool is not None
    task_id = uuid.UUID(request.path_params["task_id"])
    if request.method == "GET":
        row = await pool.fetchrow(GET, user_id, task_id)
    else:
        body = orjson.loads(await request.body())
        row = await pool.fetchrow(
            REPLACE,
            user_id, task_id, body["title"], body.get("description"), body.get("completed", False),
            body.get("priority", "medium"),
        )  # fmt: skip
    return reply(dict(row)) if row else Response(status_code=404)


async def complete(request: Request) -> Response:
    user_id = owner(request)
    if isinstance(user_id, Response):
        return user_id
    assert pool is not None
    row = await pool.fetchrow(
        TOGGLE,
        user_id, uuid.UUID(request.path_params["task_id"]),
    )  # fmt: skip
    return reply(dict(row)) if row else Response(status_code=404)


@asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    global pool
    pool = await asyncpg.create_pool(
        min_size=1, max_size=10, **connect_arguments(os.environ["DATABASE_URL"])
    )
    yield
    await pool.close()


app = Starlette(
    routes=[
        Route("/api/{user_id}/tasks", tasks, methods=["GET", "POST"]),
        Route("/api/{user_id}/tasks/{task_id}", task, methods=["GET", "PUT"]),
        Route("/api/{user_id}/tasks/{task_id}/complete", complete, methods=["PATCH"]),
    ],
    lifespan=lifespan,
)
