"""`tasks-api mcp`: the same tools over stdio, for local agent hosts, as the user whose token is
in TASKS_API_TOKEN. The API app runs in this process (its lifespan started here, not by an HTTP
server), and every tool call goes through its pipeline with that token, verified like any other.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterable, AsyncIterator, Callable
from contextlib import asynccontextmanager
from io import TextIOWrapper
from typing import Any, cast

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from pydantic import ValidationError
from starlette.types import ASGIApp, Message

from contracts.document import load
from handlers.core.errors import Unauthorized
from handlers.mcp.server import Admit, Caller, create_server, invalid_request_id
from handlers.services.security import TokenVerifier
from handlers.services.settings import DEV_KEY_FILE, Settings, SettingsError

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


async def serve(
    settings: Settings, token: str | None, make_app: Callable[[], ASGIApp], admit: Admit
) -> None:
    """Serve the tools over stdin/stdout until the host closes stdin; calls still running then
    are finished and answered (within GRACEFUL_TIMEOUT_SECONDS) before the process exits."""

    if not token:
        raise SettingsError(f"set {TOKEN_VARIABLE} to the bearer token of the user to act for")
    verifier = TokenVerifier.from_settings(settings)
    try:
        claims = await verifier.verify(token)
    except Unauthorized as error:
        raise SettingsError(
            f"{TOKEN_VARIABLE} is not accepted: {error.detail.rstrip('.')} (checked against"
            f" {_key_sources(settings)})"
        ) from None
    finally:
        await verifier.aclose()
    app = make_app()  # the composition root's: its lifespan starts the services
    caller_state: dict[str, Any] = {}

    async def resolve(_ctx: Any) -> Caller:
        return Caller(claims["sub"], caller_state)

    server = create_server(load(), resolve, admit=admit, log_calls=settings.access_log)
    lines = _CheckedLines(anyio.wrap_file(TextIOWrapper(sys.stdin.buffer, encoding="utf-8",
                                                        errors="replace")))  # fmt: skip
    # stdout is the protocol's: while serving, anything else written there goes to stderr.
    async with (
        stdio_server(stdin=cast("anyio.AsyncFile[str]", lines)) as (read, write),
        running(app) as state,
    ):
        caller_state.update(state)
        options = server.create_initialization_options()
        await _serve_until_answered(server, read, write, options, settings.graceful_timeout_seconds)


def _key_sources(settings: Settings) -> str:
    """What the token was checked against, so a refusal names where to look."""
    named = []
    if settings.jwt_secret is not None:
        named.append("JWT_SECRET")
    elif settings.shared_secret() is not None:
        named.append(f"the development secret in {settings.data_dir / DEV_KEY_FILE}")
    if settings.jwt_jwks_url is not None:
        named.append("the keys at JWT_JWKS_URL")
    return " and ".join(named) or "no key: set JWT_SECRET or JWT_JWKS_URL"


class _CheckedLines:
    """stdin's lines for the SDK's reader, blank ones skipped, and a request whose `id` JSON-RPC
    does not allow (a boolean, a fraction, an object) swapped for a frame the SDK refuses: it
    would take it for a notification and never answer."""

    def __init__(self, source: AsyncIterable[str]) -> None:
        self.source = source

    def __aiter__(self) -> AsyncIterator[str]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[str]:
        async for line in self.source:
            if not line.strip():
                continue
            yield _NOT_A_REQUEST if invalid_request_id(line.encode()) else line


_NOT_A_REQUEST = '{"jsonrpc": "2.0", "id": null}\n'  # valid JSON, no JSON-RPC message


async def _serve_until_answered(
    server: Server[Any],
    read: AsyncIterable[SessionMessage | Exception],
    write: Any,  # the SDK's stream of SessionMessage to stdout
    options: Any,
    grace: float,
) -> None:
    """server.run between the transport and the host, adding what the SDK leaves out: a line
    that is not JSON gets a parse error (-32700) and one that is no JSON-RPC message an invalid
    request (-32600), both with `id: null`; and when stdin closes, requests in flight are
    answered before the server stops (the SDK would cancel them)."""
    inbound, to_server = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    from_server, outbound = anyio.create_memory_object_stream[SessionMessage](0)
    pending: set[Any] = set()
    answered = anyio.Event()

    async def relay_out() -> None:
        async with outbound, write:  # closing write ends the SDK's stdout writer, as run() would
            async for sent in outbound:
                reply = sent.message
                if isinstance(reply, types.JSONRPCResponse | types.JSONRPCError):
                    pending.discard(reply.id)
                    answered.set()
                await write.send(sent)

    async with anyio.create_task_group() as group:
        group.start_soon(server.run, to_server, from_server, options)
        group.start_soon(relay_out)
        async with inbound:
            async for item in read:
                if isinstance(item, Exception):
                    await write.send(SessionMessage(_refusal(item)))
                    continue
                if isinstance(item.message, types.JSONRPCRequest):
                    pending.add(item.message.id)
                await inbound.send(item)
            with anyio.move_on_after(grace):  # stdin closed: let the calls in flight finish
                while pending:
                    answered = anyio.Event()
                    await answered.wait()


def _refusal(error: Exception) -> types.JSONRPCError:
    """The error for a line the SDK could not read: not JSON at all, or no JSON-RPC message."""
    unparsable = isinstance(error, ValidationError) and any(
        e["type"] == "json_invalid" for e in error.errors()
    )
    code, message = (
        (types.PARSE_ERROR, "Parse error")
        if unparsable
        else (types.INVALID_REQUEST, "Invalid Request: not a JSON-RPC 2.0 request or notification")
    )
    return types.JSONRPCError(
        jsonrpc="2.0", id=None, error=types.ErrorData(code=code, message=message)
    )
