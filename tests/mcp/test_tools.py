"""Tools come from the contract alone: a new operation with `x-mcp-tool` is a new tool, its
schemas are the contract's own, and a call becomes a call of that operation."""

from __future__ import annotations

import asyncio
import copy
from types import SimpleNamespace
from typing import Any

from mcp import Client

from contracts.document import Document, load
from handlers.core.answer import Answer
from handlers.core.context import Context
from handlers.core.errors import ServiceUnavailable
from handlers.mcp.http import metadata
from handlers.mcp.server import Caller, create_server
from handlers.mcp.tools import json_schema, tools
from handlers.services.settings import Settings
from handlers.services.state import STATE_KEY

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
    # The operation's header parameters are arguments, named as Python would: If-Match is
    # if_match, with the contract's own schema and description.
    assert tool.header_arguments == (("if_match", "if_match"),)
    if_match = tool.input_schema["properties"]["if_match"]
    assert if_match["type"] == "string"
    assert "If-Match" not in tool.input_schema["properties"]
    assert tool.input_schema == {
        "type": "object",
        "additionalProperties": False,
        "required": ["note_id", "text"],
        "properties": {
            "note_id": {"type": "string"},
            "draft": {"type": "boolean", "default": False},
            "if_match": if_match,
            "text": {"type": "string"},
            "pinned": {"type": ["boolean", "null"]},
        },
    }
    data = tool.output_schema["properties"]["data"]
    assert data["anyOf"] == [json_schema({}, NOTE), {"type": "null"}]
    assert set(tools(load())) < set(tools(with_throwaway_operation()))


class RecordingOperation:
    """An operation that records the Context and arguments a tool call became, and answers as
    told (an Answer, or a domain error to raise)."""

    def __init__(self, outcome: Answer | Exception) -> None:
        self.outcome = outcome
        self.calls: list[tuple[Context, dict[str, Any]]] = []

    async def __call__(self, ctx: Context, **arguments: Any) -> Answer:
        self.calls.append((ctx, arguments))
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


def call_through(operation: RecordingOperation, arguments: dict[str, Any]) -> Any:
    services = SimpleNamespace(tracer=None)  # no tracing: the operation is called as is
    state = {STATE_KEY: SimpleNamespace(services=services, metrics=None)}
    caller = Caller("ann", state, root_path="/v1")

    async def resolve(_ctx: Any) -> Caller:
        return caller

    server = create_server(with_throwaway_operation(), resolve, operations=lambda _: operation)

    async def run() -> Any:
        async with Client(server) as client:
            listed = [tool.name for tool in (await client.list_tools()).tools]
            assert "write_note" in listed
            result = await client.call_tool("write_note", arguments)
            return result.is_error, result.structured_content

    return asyncio.run(run())


def test_a_call_becomes_the_operation_called_for_the_tokens_user() -> None:
    operation = RecordingOperation(Answer({"text": "hi", "pinned": None}, 200))

    is_error, answer = call_through(
        operation, {"note_id": "n 1", "draft": True, "text": "hi", "if_match": '"3"'}
    )

    assert (is_error, answer) == (
        False,
        {
            "success": True,
            "message": "write_note succeeded.",
            "data": {"text": "hi", "pinned": None},
        },
    )
    ((ctx, called),) = operation.calls
    assert called == {"user_id": "ann", "note_id": "n 1", "draft": True, "body": {"text": "hi"}}
    assert (ctx.user_id, ctx.method, ctx.target) == ("ann", "PUT", "/v1/api/ann/notes/n%201")
    assert (ctx.if_match, ctx.idempotency_key) == ('"3"', None)


def test_a_failure_says_what_to_do_next() -> None:
    unavailable = ServiceUnavailable("The database is not answering.", headers={"Retry-After": "2"})
    operation = RecordingOperation(unavailable)

    is_error, answer = call_through(operation, {"note_id": "n1", "text": "hi"})

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
