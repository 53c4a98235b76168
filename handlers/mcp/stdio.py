"""`tasks-api mcp`: the same tools over stdio, for local agent hosts, as the user whose token is
in TASKS_API_TOKEN. The API app runs in this process (its lifespan started here, not by an HTTP
server), and every tool call goes through its pipeline with that token, verified like any other.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.stdio import stdio_server
from starlette.types import ASGIApp, Message

from contracts.tools.document import load
from handlers.mcp.server import Caller, create_server
from handlers.mcp.tools import tools
from handlers.problems import Unauthorized
from handlers.security import TokenVerifier
from handlers.settings import Settings, SettingsError

TOKEN_VARIABLE = "TASKS_API_TOKEN"  # noqa: S105 - the variable's name, not a secret


@asynccontextmanager
async def running(app: ASGIApp) -> AsyncIterator[dict[str, Any]]:
    """app's ASGI lifespan, started and stopped as an HTTP server would; its state."""
    state: dict[str, Any] = {}
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": state}

    async def lifespan() -> None:
        await app(scope, inbox.get, outbox.put)

    task = asyncio.create_task(lifespan())
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        await asyncio.gather(task, return_exceptions=True)
        raise SettingsError(f"the API could not start: {started.get('message', 'no reason given')}")
    try:
        yield state
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task


async def serve(settings: Settings, token: str | None) -> None:
    """Serve the tools over stdin/stdout until the host closes them."""
    from handlers.http.app import create_app

    if not token:
        raise SettingsError(f"set {TOKEN_VARIABLE} to the bearer token of the user to act for")
    verifier = TokenVerifier.from_settings(settings)
    try:
        claims = await verifier.verify(token)
    except Unauthorized as error:
        raise SettingsError(f"{TOKEN_VARIABLE} is not accepted: {error.detail}") from None
    finally:
        await verifier.aclose()
    app = create_app(settings)
    caller_state: dict[str, Any] = {}

    async def resolve(_ctx: Any) -> Caller:
        return Caller(token, claims["sub"], caller_state)

    server = create_server(tools(load()), app, resolve)
    # stdout is the protocol's: while serving, anything else written there goes to stderr.
    async with stdio_server() as (read, write), running(app) as state:
        caller_state.update(state)
        await server.run(read, write, server.create_initialization_options())
