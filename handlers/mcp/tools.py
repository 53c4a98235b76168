"""MCP tools derived from the contract: every operation with an `x-mcp-tool` extension is a tool.

A tool's input schema is its operation's parameters (path and query; not headers) and the
properties of its JSON body, side by side, minus `user_id`: the user is always the token's
subject, never an argument. Its output schema is the envelope every tool answers with,
`{success, message, data, suggestion}`, where `data` is the operation's success representation.
Schemas are the contract's own, turned from OpenAPI 3.0 (`nullable`, `$ref`, `example`) into the
JSON Schema 2020-12 that MCP speaks.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from jsonschema import Draft202012Validator

from contracts.document import Document, Operation, operations, resolve
from handlers.core.context import Context
from handlers.core.validation import FORMAT_CHECKER, Check, compiled, with_defaults

EXTENSION = "x-mcp-tool"
CONTEXT_FIELDS = {f.name for f in fields(Context)}
_Validator = with_defaults(Draft202012Validator)
SUBJECT = "user_id"  # the path parameter that is always the token's subject
_DROPPED = {"nullable", "example", "discriminator", "xml", "externalDocs"}
_SUBSCHEMAS = {"items", "not", "additionalProperties", "allOf", "anyOf", "oneOf"}


def json_schema(document: Document, node: Any) -> Any:
    """An OpenAPI 3.0 schema as JSON Schema 2020-12, with every $ref inlined."""
    node = resolve(document, node)
    if isinstance(node, list):
        return [json_schema(document, item) for item in node]
    if not isinstance(node, dict):
        return node
    parts = node.get("allOf")
    if isinstance(parts, list) and len(parts) == 1:
        # `allOf: [$ref]` beside a default or nullable is how 3.0 adds them to a reference.
        merged = {**resolve(document, parts[0]), **{k: v for k, v in node.items() if k != "allOf"}}
        return json_schema(document, merged)
    schema: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED or (key.startswith("x-") and key != "x-pattern-message"):
            continue  # the pattern's words stay: a refusal says them, not the pattern
        if key == "properties":
            schema[key] = {name: json_schema(document, sub) for name, sub in value.items()}
        elif key in _SUBSCHEMAS and isinstance(value, dict | list):
            schema[key] = json_schema(document, value)
        else:
            schema[key] = value
    if "example" in node:
        schema["examples"] = [node["example"]]
    if node.get("nullable"):
        if "type" in schema:
            schema["type"] = [schema["type"], "null"]
            if "enum" in schema:
                schema["enum"] = [*schema["enum"], None]
        else:
            schema = {"anyOf": [schema, {"type": "null"}]}
    return schema


@dataclass(frozen=True)
class Tool:
    """One tool: what an agent sees, and how a call becomes the operation's request."""

    name: str
    description: str
    operation: Operation
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    path_parameters: tuple[str, ...]
    query_parameters: tuple[str, ...]
    body_properties: tuple[str, ...]
    body_media_type: str | None
    body_required: bool
    # (argument, Context field) for the operation's header parameters: `if_match` is If-Match.
    header_arguments: tuple[tuple[str, str], ...] = ()
    # Checks a call's arguments against input_schema, as published, formats included, and fills
    # in the contract's defaults, as the HTTP door's request validation does.
    validator: Any = field(compare=False, repr=False, default=None)
    # The same, compiled once (handlers/core/validation.py: compiled): arguments it passes are
    # valid and have their defaults; the validator says what is wrong with the others.
    check: Check | None = field(compare=False, repr=False, default=None)

    @property
    def method(self) -> str:
        return self.operation.method.upper()

    @property
    def read_only(self) -> bool:
        return self.method in ("GET", "HEAD")


def _success(document: Document, operation: Operation) -> dict[str, Any]:
    """JSON Schema of the operation's success body; `null` when it answers with none."""
    responses = operation.spec.get("responses", {})
    status = min((s for s in map(str, responses) if s.startswith("2")), default=None)
    if status is None:
        raise ValueError(f"{operation.label} has no success response for its tool")
    response = resolve(document, responses[status])
    content = response.get("content") or {}
    if not content:
        return {"type": "null"}
    schema = json_schema(document, next(iter(content.values()))["schema"])
    if "ETag" in response.get("headers", {}):  # one task: it carries its ETag
        schema = _with_etag(schema)
    items = schema.get("properties", {}).get("items", {})
    if items.get("type") == "array" and "id" in items.get("items", {}).get("properties", {}):
        # a page of tasks: each carries its own (operations answer them as Answer.etags)
        items = {**items, "items": _with_etag(items["items"])}
        schema = {**schema, "properties": {**schema["properties"], "items": items}}
    return {"anyOf": [schema, {"type": "null"}]}


def _with_etag(schema: dict[str, Any]) -> dict[str, Any]:
    """An object schema with the task's ETag added as `etag`."""
    etag = {"type": "string", "description": "The task's ETag: send it as if_match."}
    return {
        **schema,
        "properties": {**schema.get("properties", {}), "etag": etag},
        "required": [*schema.get("required", []), "etag"],
    }


def envelope_schema(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["success", "message", "data"],
        "properties": {
            "success": {"type": "boolean", "description": "Whether the operation succeeded."},
            "message": {"type": "string", "description": "What happened, for a person to read."},
            "data": {**data, "description": "The result on success (null on failure)."},
            "suggestion": {
                "type": "string",
                "description": "On failure: what to do next.",
            },
        },
    }


def _tool(document: Document, operation: Operation, declared: dict[str, Any]) -> Tool:
    properties: dict[str, Any] = {}
    required: list[str] = []
    located: dict[str, list[str]] = {"path": [], "query": []}
    headers: list[tuple[str, str]] = []
    for parameter in operation.parameters:
        where, name = parameter.get("in"), parameter["name"]
        if where == "header":  # If-Match is the argument if_match, and so on
            name = name.lower().replace("-", "_")
            if name not in CONTEXT_FIELDS:
                continue
            headers.append((name, name))
        elif where not in located or (where == "path" and name == SUBJECT):
            continue  # cookies are HTTP's; the subject is the token's
        else:
            located[where].append(name)
        schema = json_schema(document, parameter.get("schema", {}))
        if "description" in parameter:
            schema = {**schema, "description": parameter["description"].strip()}
        properties[name] = schema
        if parameter.get("required"):
            required.append(name)
    body = resolve(document, operation.spec.get("requestBody")) or {}
    media_type, body_names, body_required = None, (), bool(body.get("required"))
    if body:
        media_type, media = next(iter(body["content"].items()))
        schema = json_schema(document, media["schema"])
        if schema.get("type") != "object":
            raise ValueError(f"{operation.label}: a tool's body must be an object")
        body_names = tuple(schema.get("properties", {}))
        clash: set[str] = set(body_names) & set(properties)
        if clash:
            raise ValueError(f"{operation.label}: {sorted(clash)} both parameter and body field")
        properties.update(schema.get("properties", {}))
        if body_required:
            required.extend(schema.get("required", []))
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        input_schema["required"] = required
    return Tool(
        name=declared["name"],
        description=" ".join(str(declared["description"]).split()),
        operation=operation,
        input_schema=input_schema,
        output_schema=envelope_schema(_success(document, operation)),
        path_parameters=tuple(located["path"]),
        query_parameters=tuple(located["query"]),
        body_properties=body_names,
        body_media_type=media_type,
        body_required=body_required,
        header_arguments=tuple(headers),
        validator=_Validator(input_schema, format_checker=FORMAT_CHECKER),
        check=compiled(input_schema, request=False),
    )


def tools(document: Document) -> dict[str, Tool]:
    """Every tool the contract declares, by name."""
    found: dict[str, Tool] = {}
    for operation in operations(document):
        declared = operation.spec.get(EXTENSION)
        if declared is None:
            continue
        tool = _tool(document, operation, declared)
        if tool.name in found:
            raise ValueError(f"two operations declare the MCP tool {tool.name!r}")
        found[tool.name] = tool
    return found
