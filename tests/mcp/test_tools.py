"""Tools come from the contract alone: a new operation with `x-mcp-tool` is a new tool, its
schemas are the contract's own, and a call becomes that operation's request."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import orjson
from mcp import Client
from starlette.types import Message, Receive, Scope, Send

from contracts.tools.document import Document, load
from handlers.mcp.http import metadata
from handlers.mcp.server import Caller, create_server
from handlers.mcp.tools import json_schema, tools
from handlers.settings import Settings

NOTE = {
    "type": "object",
    "required": ["text"],
    "properties": {"text": {"type": "string"}, "pinned": {"type": "boolean", "nullable": True}},
}


def with_throwaway_operation() -> Document:
    """The contract plus an operation no handler implements, declared as a tool."""
    document = copy.deepcopy(load())
    document["paths"]["/api/{user_id}/notes/{note_id}"] = {
        "parameters": [
            {"$ref": "#/components/parameters/UserId"},
            {"name": "note_id", "in": "path", "required": True, "schema": {"type": "string"}},
        ],
        "put": {
            "operationId": "notes.write_note",
            "x-mcp-tool": {"name": "write_note", "description": "Write a note.\n  Any note."},
            "parameters": [
                {"name": "draft", "in": "query", "schema": {"type": "boolean", "default": False}},
                {"$ref": "#/components/parameters/IfMatch"},
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": NOTE}},
            },
            "responses": {
                "200": {
                    "description": "The note.",
                    "content": {"application/json": {"schema": NOTE}},
                },
                "503": {"$ref": "#/components/responses/ServiceUnavailable"},
            },
        },
    }
    return document


def test_a_new_operation_with_the_extension_is_a_new_tool() -> None:
    tool = tools(with_throwaway_operation())["write_note"]

    assert tool.description == "Write a note. Any note."
    assert (tool.method, tool.path_parameters, tool.query_parameters) == ("PUT", ("note_id",),
                                                                         ("draft",))  # fmt: skip
    assert tool.input_schema == {
        "type": "object",
        "additionalProperties": False,
        "required": ["note_id", "text"],
        "properties": {
            "note_id": {"type": "string"},
            "draft": {"type": "boolean", "default": False},
            "text": {"type": "string"},
            "pinned": {"type": ["boolean", "null"]},
        },
    }
    data = tool.output_schema["properties"]["data"]
    assert data["anyOf"] == [json_schema({}, NOTE), {"type": "null"}]
    assert set(tools(load())) < set(tools(with_throwaway_operation()))


class RecordingApp:
    """An ASGI app that records the request a tool call became, and answers as told."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}
        self.requests: list[tuple[Scope, bytes]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message: Message = await receive()
        self.requests.append((scope, message["body"]))
        headers = [(k.encode(), v.encode()) for k, v in self.headers.items()]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": orjson.dumps(self.body)})


def call_through(app: RecordingApp, arguments: dict[str, Any]) -> Any:
    caller = Caller("the-token", "ann", {"answer": 42}, root_path="/v1", request_id="rid-7")

    async def resolve(_ctx: Any) -> Caller:
        return caller

    server = create_server(with_throwaway_operation(), app, resolve)

    async def run() -> Any:
        async with Client(server) as client:
            listed = [tool.name for tool in (await client.list_tools()).tools]
            assert "write_note" in listed
            result = await client.call_tool("write_note", arguments)
            return result.is_error, result.structured_content

    return asyncio.run(run())


def test_a_call_becomes_the_operations_request_for_the_tokens_user() -> None:
    app = RecordingApp(200, {"text": "hi", "pinned": None})

    is_error, answer = call_through(app, {"note_id": "n 1", "draft": True, "text": "hi"})

    assert (is_error, answer) == (
        False,
        {
            "success": True,
            "message": "write_note succeeded.",
            "data": {"text": "hi", "pinned": None},
        },
    )
    ((scope, body),) = app.requests
    assert (scope["method"], scope["path"], scope["raw_path"], scope["query_string"]) == (
        "PUT", "/v1/api/ann/notes/n 1", b"/v1/api/ann/notes/n%201", b"draft=true",
    )  # fmt: skip
    headers = dict(scope["headers"])
    assert headers[b"authorization"] == b"Bearer the-token"
    assert headers[b"x-request-id"] == b"rid-7"  # the MCP request's id, on its tool call's line
    assert headers[b"content-type"] == b"application/json"
    assert (scope["state"], scope["root_path"]) == ({"answer": 42}, "/v1")
    assert orjson.loads(body) == {"text": "hi"}


def test_a_failure_says_what_to_do_next() -> None:
    problem = {"type": "about:blank", "title": "Service Unavailable", "status": 503,
               "detail": "The database is not answering."}  # fmt: skip
    app = RecordingApp(503, problem, {"Retry-After": "2"})

    is_error, answer = call_through(app, {"note_id": "n1", "text": "hi"})

    assert is_error is True
    assert answer == {
        "success": False,
        "message": "The database is not answering.",
        "data": None,
        "suggestion": "Wait 2 seconds, then call write_note again with the same arguments.",
    }


def test_openapi_nullable_and_references_become_json_schema() -> None:
    document = load()
    assert json_schema(document, {"$ref": "#/components/schemas/Priority"}) == {
        "type": "string",
        "enum": ["low", "medium", "high"],
        "description": "How urgent the task is; sorts low < medium < high.",
    }
    nullable_enum = {"type": "string", "enum": ["a"], "nullable": True, "example": "a"}
    assert json_schema(document, nullable_enum) == {
        "type": ["string", "null"], "enum": ["a", None], "examples": ["a"],
    }  # fmt: skip
    untyped = {"anyOf": [{"type": "string"}, {"type": "integer"}], "nullable": True}
    assert json_schema(document, untyped) == {
        "anyOf": [{"anyOf": [{"type": "string"}, {"type": "integer"}]}, {"type": "null"}]
    }


def test_the_metadata_names_the_configured_issuer_and_public_url() -> None:
    settings = Settings(
        public_url="https://tasks.example.com",
        jwt_issuer="https://clerk.example.com",
        jwt_jwks_url="https://clerk.example.com/.well-known/jwks.json",
    )
    assert metadata(settings) == {
        "resource": "https://tasks.example.com/mcp",
        "authorization_servers": ["https://clerk.example.com"],
        "bearer_methods_supported": ["header"],
        "resource_name": "Tasks API",
        "resource_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
    }
