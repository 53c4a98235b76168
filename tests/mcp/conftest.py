"""A live server for MCP tests (uvicorn in this process, so coverage sees it), and a way to
call its tools with the official Python SDK client."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from handlers.root import create_app
from handlers.security import mint_token
from handlers.settings import Settings
from tests.conftest import TEST_SECRET

T = TypeVar("T")
# The current protocol revision (per-request envelope) and the handshake era before it, which
# the TypeScript SDK 1.x clients most agent hosts embed still speak.
MODES = ["2026-07-28", "legacy"]


@pytest.fixture(scope="session")
def live(settings: Settings) -> Iterator[str]:
    """The API and /mcp on 127.0.0.1; its socket is bound before the server starts, so a
    request made at once waits in the backlog rather than failing."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # a bound socket that is not listening refuses connections
    port = sock.getsockname()[1]
    app = create_app(dataclasses.replace(settings, host="127.0.0.1", port=port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()
    assert not thread.is_alive(), "the MCP test server did not stop"


def token_for(subject: str, secret: str = TEST_SECRET, ttl: int = 600) -> str:
    return mint_token(secret, subject, ttl_seconds=ttl)


def with_client(url: str, token: str, mode: str, work: Callable[[Client], Awaitable[T]]) -> T:
    """work's result, done with an SDK client connected to url/mcp as token's user."""

    async def run() -> T:
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30) as http,
            Client(streamable_http_client(f"{url}/mcp", http_client=http), mode=mode) as client,
        ):
            return await work(client)

    return asyncio.run(run())


def call(url: str, token: str, tool: str, arguments: dict[str, Any], mode: str = MODES[0]) -> Any:
    """The tool's result: (is_error, structured content)."""

    async def work(client: Client) -> Any:
        result = await client.call_tool(tool, arguments)
        return result.is_error, result.structured_content

    return with_client(url, token, mode, work)
