"""The MCP adapter: tool calls become calls of the contract's operations, answered in the tool
envelope.

A call is the operation itself, called in process with a Context like any door's: the user is
the token's subject (verified once, by the door), the arguments are held to the tool's input
schema (made from the contract's own schemas, with its formats and defaults), the header
parameters of the operation (If-Match, Idempotency-Key, ...) are arguments too. This module only
translates: arguments into the operation's call, its Answer or domain error into
`{success, message, data, suggestion}`.
"""

from __future__ import annotations

import importlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import mcp_types as types
import orjson
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError

from contracts.document import Document
from handlers.core.answer import Answer
from handlers.core.context import Context, perform
from handlers.core.errors import Problem, problem_type, truncate
from handlers.core.validation import body_errors
from handlers.mcp import messages
from handlers.mcp.tools import SUBJECT, Tool
from handlers.mcp.tools import tools as tools_of
from handlers.services import jsonifier
from handlers.services.logs import MAX_LOGGED_USER, request_id, requests_logger
from handlers.services.state import STATE_KEY, AppState
from handlers.services.tracing import TRACE_CONTEXT, tool_span
from persistence.database import DatabaseUnavailable, InvalidValue, statement_count

NAME = "tasks-api"
Operation = Callable[..., Awaitable[Answer]]


@dataclass(frozen=True)
class Caller:
    """Who calls and where: the token's subject, the process's state (its AppState), the path
    prefix the API is served under, and whether the call was already counted against the
    user's quota (as its POST to /mcp)."""

    subject: str
    state: Mapping[str, Any]
    root_path: str = ""
    counted: bool = False


def operation_named(operation_id: str) -> Operation:
    """The operation an operationId names: `tasks.create_task` is handlers/tasks.py's."""
    module, function = operation_id.rsplit(".", 1)
    found: Operation = getattr(importlib.import_module(f"handlers.{module}"), function)
    return found


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


def _failure(status: int, detail: str, ext: Mapping[str, Any] | None = None) -> Problem:
    error = Problem(detail, ext=ext)
    error.status = status
    return error


def _as_problem(error: Exception) -> Problem | None:
    """A domain error, or what the database said in domain terms; None for anything else."""
    if isinstance(error, Problem):
        return error
    if isinstance(error, DatabaseUnavailable):
        failure = _failure(503, "The database is not answering; retry shortly.")
        failure.headers = {"Retry-After": "1"}
        return failure
    if isinstance(error, InvalidValue):
        return _failure(400, "The request holds a value that cannot be stored.")
    return None


def _plain(value: Any) -> Any:
    """A JSON Schema integer written as a fraction (5.0) as the integer it is."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


async def call(
    tool: Tool, operation: Operation, arguments: Mapping[str, Any], who: Caller
) -> Answer:
    """The operation's Answer to these arguments (already held to the input schema, defaults
    filled in), called for who."""
    state = who.state[STATE_KEY]
    path = tool.operation.path.replace("{" + SUBJECT + "}", quote(who.subject, safe=""))
    kwargs: dict[str, Any] = {SUBJECT: who.subject}
    for name in tool.path_parameters:
        kwargs[name] = arguments[name]
        path = path.replace("{" + name + "}", quote(str(arguments[name]), safe=""))
    for name in tool.query_parameters:
        if arguments.get(name) is not None:
            kwargs[name] = _plain(arguments[name])
    if tool.body_media_type is not None:
        fields = {k: v for k, v in arguments.items() if k in tool.body_properties}
        kwargs["body"] = fields if fields or tool.body_required else None
    conditions = {field: arguments.get(argument) for argument, field in tool.header_arguments}
    ctx = Context(
        services=state.services, user_id=who.subject, method=tool.method,
        target=who.root_path + path, **conditions,
    )  # fmt: skip
    return await perform(tool.operation.spec["operationId"], operation, ctx, **kwargs)


def envelope(tool: Tool, arguments: Mapping[str, Any], answer: Answer) -> dict[str, Any]:
    """The tool's answer: the operation's representation as REST sends it (with the task's
    ETag as `etag`, for if_match), and words for the agent."""
    data = orjson.loads(jsonifier.dumps(answer.body)) if answer.body is not None else None
    if isinstance(data, dict) and "ETag" in answer.headers:
        data["etag"] = answer.headers["ETag"]
    if isinstance(data, dict) and answer.etags:  # a page: each task with its own
        for item in data.get("items", []):
            item["etag"] = answer.etags[item["id"]]
    return {
        "success": True,
        "message": messages.success(tool, arguments, data),
        "data": data,
    }


def refusal(tool: Tool, error: Problem) -> dict[str, Any]:
    """A failed call: the problem's detail and the fields it names, and what to do next."""
    problem = {
        "type": problem_type(error.status), "status": error.status, "detail": error.detail,
        **error.ext,
    }  # fmt: skip
    headers = {k.lower(): v for k, v in error.headers.items()}
    return {
        "success": False,
        "message": messages.failure(tool, error.status, problem),
        "data": None,
        "suggestion": messages.suggestion(tool, error.status, headers, problem),
    }


def result(content: dict[str, Any]) -> types.CallToolResult:
    text = orjson.dumps(content).decode()
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content=content,
        is_error=not content["success"],
    )


Resolve = Callable[[ServerRequestContext[Any, Any]], Awaitable[Caller]]
Admit = Callable[[Caller], Awaitable[None]]


def create_server(
    contract: Document,
    caller: Resolve,
    *,
    operations: Callable[[str], Operation] = operation_named,
    admit: Admit | None = None,
    log_calls: bool = False,
) -> Server[Any]:
    """An MCP server with the contract's tools, named with its version. Each call is the
    operation that `operations` finds for its operationId, called for the caller resolve finds
    (the HTTP request's token, or stdio's); one not yet counted against the user's quota is
    admitted first. With log_calls (stdio, where no HTTP request line is written), each call
    gets a line of its own, with a request id."""
    tools = tools_of(contract)
    called = {name: operations(tool.operation.spec["operationId"]) for name, tool in tools.items()}
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
        arguments = dict(params.arguments or {})  # the validator fills in defaults
        who = await caller(ctx)
        state = who.state.get(STATE_KEY)
        tracer = state.services.tracer if isinstance(state, AppState) else None
        if tracer is None:
            return await logged(tool, arguments, who)
        # Over HTTP the SDK runs the call on a task of its own: its parent is the request's
        # span, which the HTTP door left in the request's scope.
        scope = getattr(ctx.request, "scope", None)
        parent = None if scope is None else scope.get("extensions", {}).get(TRACE_CONTEXT)
        if scope is not None and parent is None:  # a request the sampler left out
            return await logged(tool, arguments, who)
        with tool_span(tracer, tool.name, parent) as span:
            answered = await logged(tool, arguments, who)
            if span is not None:
                span.set_attribute("tasks_api.outcome", "error" if answered.is_error else "success")
                if answered.is_error:
                    span.set_attribute("error.type", "tool_error")
            return answered

    async def logged(tool: Tool, arguments: dict[str, Any], who: Caller) -> types.CallToolResult:
        if not log_calls:
            return await answer(tool, arguments, who)
        started, rid = time.perf_counter(), uuid.uuid4().hex
        id_token, count_token = request_id.set(rid), statement_count.set([0])
        try:
            answered = await answer(tool, arguments, who)
        finally:
            counted = statement_count.get()
            request_id.reset(id_token)
            statement_count.reset(count_token)
        requests_logger().info(
            "tool call",
            request_id=rid,
            tool=tool.name,
            operation=tool.operation.spec["operationId"],
            user=truncate(who.subject, MAX_LOGGED_USER),
            success=not answered.is_error,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            statements=counted[0] if counted else 0,
        )
        return answered

    async def answer(tool: Tool, arguments: dict[str, Any], who: Caller) -> types.CallToolResult:
        try:
            if admit is not None and not who.counted:
                await admit(who)
            invalid = body_errors(arguments, tool.check, tool.validator)
            if invalid:  # as the published input schema says, before anything is run
                count = f"{len(invalid)} error{'s' if len(invalid) != 1 else ''}"
                raise _failure(400, f"The arguments are invalid ({count}).", {"errors": invalid})
            content = envelope(tool, arguments, await call(tool, called[tool.name], arguments, who))
        except Exception as error:
            problem = _as_problem(error)
            if problem is None:
                raise
            content = refusal(tool, problem)
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
        # The SDK checks a call's Mcp-Param-* headers against the tool's input schema; without
        # this it lists every tool through the whole dispatch path to find it, on every call.
        get_tool_input_schema=lambda name: tools[name].input_schema if name in tools else None,
    )
