"""Contract lint: openapi-spec-validator plus the rules our users rely on.

    python -m contracts.tools.lint [contracts/openapi.yaml]

Exits 1 and prints one line per violation (a JSON pointer and what is wrong) when any rule fails.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator
from openapi_spec_validator import validate as validate_spec
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from contracts.document import CONTRACT, Document, load, operations, resolve

PROBLEM = "#/components/schemas/Problem"
PROBLEM_JSON = "application/problem+json"
OPERATION_ID = re.compile(r"^[a-z][a-z0-9]*\.[a-z][a-z0-9]*(_[a-z0-9]+)+$")
COMPOSED = ("$ref", "allOf", "oneOf", "anyOf", "not")

Violation = tuple[str, str]


def lint(document: Document) -> list[Violation]:
    """Every rule the document breaks, as (JSON pointer, message)."""
    try:
        validate_spec(document)
    except OpenAPIValidationError as error:
        return [("/", f"not a valid OpenAPI document: {error.message}")]
    found = list(_version(document))
    found += [v for op in operations(document) for v in _operation(document, op)]
    found += list(_typed_properties(document.get("components", {}).get("schemas", {})))
    found += list(_examples(document, document, ""))
    return found


def _version(document: Document) -> Iterator[Violation]:
    if not str(document.get("openapi", "")).startswith("3.0."):
        yield "/openapi", "must be OpenAPI 3.0.x (Connexion 3 does not support 3.1)"


def _operation(document: Document, op: Any) -> Iterator[Violation]:
    spec = op.spec
    operation_id = spec.get("operationId")
    if not operation_id:
        yield op.pointer, "has no operationId"
    elif not OPERATION_ID.match(operation_id):
        yield op.pointer + "/operationId", "must read <resource>.<verb>_<noun>, e.g. tasks.get_task"
    if not spec.get("summary"):
        yield op.pointer, "has no summary"
    if not spec.get("tags"):
        yield op.pointer, "has no tag"

    responses = spec.get("responses", {})
    errors = [code for code in responses if code == "default" or str(code)[0] in "45"]
    if not any(str(code).startswith("4") for code in responses):
        yield op.pointer + "/responses", "documents no 4xx problem response"
    secured = spec.get("security", document.get("security", []))
    if any(requirement for requirement in secured) and "401" not in responses:
        yield op.pointer + "/responses", "is protected but does not document 401"
    for code in errors:
        content = resolve(document, responses[code]).get("content", {})
        schema = content.get(PROBLEM_JSON, {}).get("schema", {})
        if set(content) != {PROBLEM_JSON} or schema.get("$ref") != PROBLEM:
            yield (
                f"{op.pointer}/responses/{code}",
                f"must be {PROBLEM_JSON} with the Problem schema",
            )

    for code, response in responses.items():
        for media, body in resolve(document, response).get("content", {}).items():
            if _anonymous_object(body.get("schema", {})):
                yield (
                    f"{op.pointer}/responses/{code}/content/{media}",
                    "inline object schema; $ref a named one",
                )
    for media, body in resolve(document, spec.get("requestBody", {})).get("content", {}).items():
        if _anonymous_object(body.get("schema", {})):
            yield (
                f"{op.pointer}/requestBody/content/{media}",
                "inline object schema; $ref a named one",
            )


def _anonymous_object(schema: dict[str, Any]) -> bool:
    if "$ref" in schema:
        return False
    if schema.get("type") == "array":
        return _anonymous_object(schema.get("items", {}))
    return schema.get("type") == "object" or "properties" in schema


def _typed_properties(schemas: dict[str, Any]) -> Iterator[Violation]:
    stack = [(f"/components/schemas/{name}", schema) for name, schema in schemas.items()]
    while stack:
        pointer, schema = stack.pop()
        if not isinstance(schema, dict):
            continue
        for name, prop in (schema.get("properties") or {}).items():
            where = f"{pointer}/properties/{name}"
            if (
                isinstance(prop, dict)
                and "type" not in prop
                and not any(k in prop for k in COMPOSED)
            ):
                yield where, "property has no type"
            stack.append((where, prop))
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                stack.append((f"{pointer}/{key}", schema[key]))
        for key in ("allOf", "oneOf", "anyOf"):
            stack.extend((f"{pointer}/{key}/{i}", s) for i, s in enumerate(schema.get(key, [])))


def _examples(document: Document, node: Any, pointer: str) -> Iterator[Violation]:
    """Every `example` next to a `schema` (media types, parameters) or inside one validates."""
    if isinstance(node, dict):
        if "example" in node and pointer.startswith("/components/schemas"):
            yield from _check_example(document, node, node["example"], pointer)
        if "schema" in node and isinstance(node["schema"], dict):
            if "example" in node:
                yield from _check_example(document, node["schema"], node["example"], pointer)
            for name, example in (node.get("examples") or {}).items():
                value = resolve(document, example).get("value")
                yield from _check_example(
                    document, node["schema"], value, f"{pointer}/examples/{name}"
                )
        for key, child in node.items():
            yield from _examples(document, child, f"{pointer}/{key}")
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _examples(document, child, f"{pointer}/{i}")


def _check_example(
    document: Document, schema: Any, example: Any, pointer: str
) -> Iterator[Violation]:
    root = {**schema, "components": document.get("components", {})}
    validator = Draft4Validator(_openapi_to_jsonschema(root))
    for error in validator.iter_errors(example):
        yield f"{pointer}/example", f"does not match its schema: {error.message[:120]}"


def _openapi_to_jsonschema(node: Any) -> Any:
    """OpenAPI 3.0's `nullable` as JSON Schema types, so examples with null validate."""
    if isinstance(node, dict):
        converted = {k: _openapi_to_jsonschema(v) for k, v in node.items() if k != "nullable"}
        if node.get("nullable") and "type" in node:
            converted["type"] = [node["type"], "null"]
            if "enum" in converted:
                converted["enum"] = [*converted["enum"], None]
        return converted
    if isinstance(node, list):
        return [_openapi_to_jsonschema(item) for item in node]
    return node


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else CONTRACT
    violations = lint(load(path))
    for pointer, message in violations:
        print(f"{path}#{pointer}: {message}")
    if not violations:
        print(f"{path}: contract lint passed")
    return 1 if violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
