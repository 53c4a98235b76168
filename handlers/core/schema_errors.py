"""JSON Schema errors as the API reports them, whichever door the input came through: one
entry per offending field, in document order, in words that never repeat the offending value
(REST's 400 `errors`, and what an MCP tool call with bad arguments is told)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jsonschema import ValidationError

from handlers.core.errors import FieldError, truncate

MAX_NAME = 64


def pointer(path: Iterable[Any]) -> str:
    """RFC 6901 JSON pointer for a jsonschema error path."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def describe(error: ValidationError) -> str:
    """A short message for one error that never repeats the offending value."""
    expected: Any = error.validator_value
    match error.validator:
        case "type":
            nullable = isinstance(error.schema, dict) and error.schema.get("nullable")
            message = f"must be of type {expected}{' or null' if nullable else ''}"
        case "enum":
            message = "must be one of: " + ", ".join(str(v) for v in expected if v is not None)
        case "minLength":
            message = f"must be at least {expected} character{'s' if expected != 1 else ''}"
        case "maxLength":
            message = f"must be at most {expected} characters"
        case "minimum":
            message = f"must be greater than or equal to {expected}"
        case "maximum":
            message = f"must be less than or equal to {expected}"
        case "pattern":
            # The contract says in words what each pattern means, where it can.
            schema = error.schema if isinstance(error.schema, dict) else {}
            message = schema.get("x-pattern-message") or f"must match {expected}"
        case "format" if expected == "date-time":
            message = "must be a valid date-time (RFC 3339, with a time zone offset)"
        case "format":
            message = f"must be a valid {expected}"
        case _:
            message = error.message
    return truncate(message, 200)


def schema_errors(validator: Any, instance: Any, location: str, name: str = "") -> list[FieldError]:
    """Every way instance breaks the schema, one entry per field, in document order."""
    found: list[FieldError] = []

    def add(path: Iterable[Any], detail: str) -> None:
        entry = {"location": location}
        if location == "body":
            entry["pointer"] = pointer(path)
        else:
            entry["name"] = truncate(name, MAX_NAME)
        entry["detail"] = detail
        found.append(entry)

    reported_required: set[tuple[Any, ...]] = set()
    errors = sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.path])
    for error in errors:
        path = list(error.absolute_path)
        if error.validator == "required" and isinstance(error.instance, dict):
            # jsonschema yields one error per missing property; report each property once.
            if tuple(path) not in reported_required:
                reported_required.add(tuple(path))
                for prop in error.validator_value:
                    if prop not in error.instance:
                        add([*path, prop], "is required")
        elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = set(error.schema.get("properties", {}))
            for extra in sorted(k for k in error.instance if k not in known):
                add([*path, truncate(extra, MAX_NAME)], "is not a field of this schema")
        else:
            add(path, describe(error))
    return found
