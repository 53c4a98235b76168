"""What tests share: one module of helpers, imported by the test modules and conftest files
(never from another test module): tokens, apps with other settings, live servers, readers of
problems and metrics."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import asyncpg
import httpx2
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from handlers.root import create_app
from handlers.services.security import Clock, mint_token
from handlers.services.settings import Settings
from persistence.database_url import connect_arguments
from tests.live import TASKS_API, LiveServer, environment, free_port

QUOTA = 8

PROBLEM_KEYS = {"type", "title", "status", "detail"}

TEST_SECRET = secrets.token_urlsafe(48)


@contextmanager
def client_with(
    settings: Settings,
    *,
    address: tuple[str, int] = ("testclient", 50000),  # TestClient's own default
    root_path: str = "",
    clock: Clock = time.monotonic,
    **changes: Any,
) -> Iterator[TestClient]:
    """The one way tests build an app: of its own, for a test that needs other settings
    (REQUIRE_IF_MATCH, a database that is down, ...) or counts of its own; on the same
    database unless changed. address is the client's; root_path a prefix a proxy mounts the
    API under; clock what times the key caches."""
    app = create_app(dataclasses.replace(settings, **changes), clock=clock)
    with TestClient(
        app, raise_server_exceptions=False, client=address, root_path=root_path
    ) as test_client:
        yield test_client


@contextmanager
def serving(
    settings: Settings, otel: Mapping[str, str] | None = None, **changes: Any
) -> Iterator[str]:
    """The app for these settings, served by uvicorn in this process (so coverage sees it) on
    127.0.0.1: its URL. The socket listens before the server starts, so a request made at once
    waits in the backlog rather than being refused. otel: OTEL_* variables the app is made
    with (it reads them, as OpenTelemetry's SDK does, from the environment as it is made)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    with mock.patch.dict(os.environ, otel or {}):
        app = create_app(dataclasses.replace(settings, host="127.0.0.1", port=port, **changes))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
    assert not thread.is_alive(), "the test server did not stop"


def bearer(subject: str, secret: str = TEST_SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(secret, subject)}"}


T = TypeVar("T")


# The current protocol revision (per-request envelope) and the handshake era before it, which
# the TypeScript SDK 1.x clients most agent hosts embed still speak.
MODES = ["2026-07-28", "legacy"]


def token_for(subject: str, secret: str = TEST_SECRET, ttl: int = 600) -> str:
    return mint_token(secret, subject, ttl_seconds=ttl)


def with_client(
    url: str,
    token: str,
    mode: str,
    work: Callable[[Client], Awaitable[T]],
    headers: Mapping[str, str] | None = None,
) -> T:
    """work's result, done with an SDK client connected to url/mcp as token's user (its HTTP
    requests with headers besides)."""

    async def run() -> T:
        sent = {"Authorization": f"Bearer {token}", **(headers or {})}
        async with (
            httpx2.AsyncClient(headers=sent, timeout=30) as http,
            Client(streamable_http_client(f"{url}/mcp", http_client=http), mode=mode) as client,
        ):
            return await work(client)

    return asyncio.run(run())


def call(
    url: str,
    token: str,
    tool: str,
    arguments: dict[str, Any],
    mode: str = MODES[0],
    headers: Mapping[str, str] | None = None,
) -> Any:
    """The tool's result: (is_error, structured content)."""

    async def work(client: Client) -> Any:
        result = await client.call_tool(tool, arguments)
        return result.is_error, result.structured_content

    return with_client(url, token, mode, work, headers)


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body.keys() >= PROBLEM_KEYS
    assert body["status"] == status
    return body


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def create(client: TestClient, url: str, auth: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = client.post(url, json={"title": "task", **fields}, headers=auth)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


FIELD = re.compile(r'"(?P<policy>[a-z-]+)";r=(?P<r>\d+);t=(?P<t>\d+)')


def client_address() -> str:
    """An address no other test uses."""
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"


def in_one_window(run: Callable[[str], list[Any]], prefix: str = "quota") -> list[Any]:
    """run's responses for a user no other test has seen, from one calendar minute: if the
    minute turned during the run (the seconds left, `t`, went up), it runs again, with most of
    a new minute ahead, for another new user (the first one's hits after the turn count in the
    new minute)."""
    for _ in range(2):
        responses = run(f"{prefix}-{uuid.uuid4().hex[:8]}")
        left = [
            int(m["t"]) for r in responses if (m := FIELD.search(r.headers.get("ratelimit", "")))
        ]
        if left == sorted(left, reverse=True):
            return responses
    raise AssertionError("the minute turned twice during one short test")


def sql(database_url: str, statement: str, *args: Any) -> Any:
    async def run() -> Any:
        connection = await asyncpg.connect(**connect_arguments(database_url))
        try:
            return await connection.fetch(statement, *args)
        finally:
            await connection.close()

    return asyncio.run(run())


SECRET = "workers-" + uuid.uuid4().hex + uuid.uuid4().hex


# When a worker has run its lifespan and serves: each server says so once per worker.
WORKER_READY = {"uvicorn": "Application startup complete", "granian": "Started worker-"}


def start(url: str, tmp: Path, *extra: str, **settings: str) -> LiveServer:
    env = environment(**{
        "APP_ENV": "production", "DATABASE_URL": url, "JWT_SECRET": SECRET,
        "PORT": str(free_port()), "DATA_DIR": str(tmp), "RATE_LIMIT_PER_MINUTE": str(QUOTA),
        "LOG_FORMAT": "json", **settings,
    })  # fmt: skip
    return LiveServer([str(TASKS_API), "serve", *extra], env, start_timeout=90)
