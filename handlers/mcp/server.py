"""The MCP adapter: tool calls become the contract's operations, answered in the tool envelope.

A call is handed, in process, to the same ASGI pipeline that serves REST (no socket, no second
network hop): the same token check, ownership, request validation, handler, pool and problem
mapping, so no rule exists twice. This module only translates: arguments into the operation's
path, query and body (the user is always the token's subject), and its answer into
`{success, message, data, suggestion}`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlencode

import mcp_types as types
import orjson
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from starlette.types import ASGIApp, Message

from contracts.tools.document import Document
from handlers.context import COUNTED, STATE_KEY, AppState
from handlers.mcp import messages
from handlers.mcp.tools import SUBJECT, Tool
from handlers.mcp.tools import tools as tools_of
from handlers.schema_errors import schema_errors

NAME = "tasks-api"
MAX_ANSWER = 4 * 1024 * 1024  # a page of 100 tasks is about 100 KiB


@dataclass(frozen=True)
class Caller:
    """Who calls and where: the bearer token, and the ASGI scope fields the app needs (its
    lifespan `state`, and the `root_path` it is mounted under)."""

    token: str
    subject: str
    state: Mapping[str, Any]
    root_path: str = ""
    request_id: str | None = None  # the MCP request's, so its tool call's log line shares it
    counted: bool = False  # whether the call's request already counts against the user's quota


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


class InvalidArguments(Exception):
    """Arguments that cannot even become a request (the contract judges everything else)."""


def invalid_request_id(body: bytes) -> bool:
    """Whether body is a JSON-RPC request object whose `id` is neither a string nor an integer
    (a boolean, a fraction, an object, an array, `1e400`). Bodies that are not JSON are the
    SDK's to refuse."""
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:  # numbers orjson will not hold (1e400) are still JSON to the SDK's parser
            message = json.loads(body)
        except (ValueError, RecursionError):
            return False
    if not isinstance(message, dict) or "id" not in message:
        return False
    identifier = message["id"]
    return isinstance(identifier, bool) or not isinstance(identifier, str | int)


def _scalar(tool: Tool, name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON Schema's integer admits 10.0; a query parameter is "10"
    if isinstance(value, int | float | str):
        text = str(value)
        if name in tool.path_parameters and ("/" in text or not text):
            raise InvalidArguments(
                f"'{name}' must be a single non-empty path segment, not {text!r}."
            )
        return text
    raise InvalidArguments(f"'{name}' must be a single value, not {type(value).__name__}.")


def request_for(tool: Tool, arguments: Mapping[str, Any], caller: Caller) -> dict[str, Any]:
    """The operation's HTTP request (as ASGI scope fields plus a body) for these arguments."""
    unknown = [
        name for name in arguments
        if name not in tool.path_parameters and name not in tool.query_parameters
        and name not in tool.body_properties
    ]  # fmt: skip
    if unknown and tool.body_media_type is None:
        raise InvalidArguments(f"{tool.name} takes no argument {', '.join(map(repr, unknown))}.")
    path = tool.operation.path.replace("{" + SUBJECT + "}", quote(caller.subject, safe=""))
    for name in tool.path_parameters:
        if name not in arguments:
            raise InvalidArguments(f"'{name}' is required.")
        path = path.replace("{" + name + "}", quote(_scalar(tool, name, arguments[name]), safe=""))
    query = [
        (name, _scalar(tool, name, arguments[name]))
        for name in tool.query_parameters
        if arguments.get(name) is not None
    ]
    # Unknown names go into the body, where the contract's validation names them.
    fields = {
        k: v for k, v in arguments.items()
        if k not in tool.path_parameters and k not in tool.query_parameters
    }  # fmt: skip
    body = orjson.dumps(fields) if fields or tool.body_required else b""
    headers = [
        (b"authorization", b"Bearer " + caller.token.encode("latin-1")),
        (b"accept", b"application/json"),
        (b"host", b"mcp.internal"),
    ]
    if caller.request_id is not None:
        headers.append((b"x-request-id", caller.request_id.encode("latin-1")))
    if body:
        assert tool.body_media_type is not None  # noqa: S101 - fields imply a body schema
        headers += [
            (b"content-type", tool.body_media_type.encode("latin-1")),
            (b"content-length", str(len(body)).encode("latin-1")),
        ]
    raw_path = caller.root_path + path  # ASGI: `path` decoded, `raw_path` as sent
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": tool.method,
        "scheme": "http",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode("latin-1"),
        "root_path": caller.root_path,
        "query_string": urlencode(query).encode("latin-1"),
        "headers": headers,
        "client": None,
        "server": None,
        "state": dict(caller.state),
        "extensions": {COUNTED: True} if caller.counted else {},
        "body": body,
    }


async def dispatch(app: ASGIApp, request: dict[str, Any]) -> Answer:
    """The app's answer to one request, in process."""
    body = request.pop("body")
    sent = False
    status, headers, chunks = 500, {}, []

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                       for k, v in message.get("headers", [])}  # fmt: skip
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(request, receive, send)
    content = b"".join(chunks)
    if len(content) > MAX_ANSWER:
        raise ValueError("answer too large")
    return Answer(status, headers, orjson.loads(content) if content else None)


def envelope(tool: Tool, arguments: Mapping[str, Any], answer: Answer) -> dict[str, Any]:
    """The tool's answer: the operation's representation, and words for the agent."""
    if 200 <= answer.status < 300:
        return {
            "success": True,
            "message": messages.success(tool, arguments, answer.body),
            "data": answer.body,
        }
    return {
        "success": False,
        "message": messages.failure(answer.status, answer.body),
        "data": None,
        "suggestion": messages.suggestion(tool, answer.status, answer.headers),
    }


def result(content: dict[str, Any]) -> types.CallToolResult:
    text = orjson.dumps(content).decode()
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content=content,
        is_error=not content["success"],
    )


Resolve = Callable[[ServerRequestContext[Any, Any]], Awaitable[Caller]]


def create_server(contract: Document, app: ASGIApp, caller: Resolve) -> Server[Any]:
    """An MCP server with the contract's tools, named with its version, each call served by
    app for the caller resolve finds for the request (the HTTP request's token, or stdio's)."""
    tools = tools_of(contract)
    listed = types.ListToolsResult(
        tools=[
            types.Tool(
                name=tool.name,
                title=tool.operation.spec.get("summary"),
                description=tool.description,
                input_schema=tool.input_schema,
                output_schema=tool.output_schema,
                annotations=types.ToolAnnotations(
                    read_only_hint=tool.read_only,
                    destructive_hint=tool.method == "DELETE",
                    idempotent_hint=tool.method in ("GET", "PUT", "DELETE"),
                    open_world_hint=False,
                ),
            )
            for tool in tools.values()
        ]
    )

    async def list_tools(
        _ctx: ServerRequestContext[Any, Any], _params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return listed

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        tool = tools.get(params.name)
        if tool is None:
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name!r}")
        arguments = params.arguments or {}
        who = await caller(ctx)
        invalid = schema_errors(tool.validator, arguments, "body")
        try:
            if invalid:  # as the published input schema says, before anything is sent
                count = f"{len(invalid)} error{'s' if len(invalid) != 1 else ''}"
                problem = {"detail": f"The arguments are invalid ({count}).", "errors": invalid}
                raise InvalidArguments(messages.failure(400, problem))
            request = request_for(tool, arguments, who)
        except InvalidArguments as error:
            content = {
                "success": False,
                "message": str(error),
                "data": None,
                "suggestion": messages.suggestion(tool, 400, {}),
            }
        else:
            content = envelope(tool, arguments, await dispatch(app, request))
        state = who.state.get(STATE_KEY)
        metrics = state.metrics if isinstance(state, AppState) else None
        if metrics is not None:
            metrics.tool_called(tool.name, content["success"] is True)
        return result(content)

    return Server(
        NAME,
        version=str(contract["info"]["version"]),
        instructions=(
            "Manage the signed-in user's tasks. Every tool acts for that user only; ids come "
            "from list_tasks or add_task."
        ),
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )
