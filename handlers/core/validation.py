"""Arguments held to the contract's schemas, whichever door they came in by: strict formats,
strings PostgreSQL can store, and the contract's defaults filled in."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import fastjsonschema
import jsonschema
from jsonschema import Draft4Validator, FormatChecker, ValidationError

from handlers.core.errors import FieldError, truncate
from handlers.core.schema_errors import MAX_NAME, pointer, schema_errors
from persistence import timestamps

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# NUL cannot be stored in PostgreSQL text; a lone surrogate cannot be encoded as UTF-8.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

FORMAT_CHECKER = FormatChecker()
FORMAT_CHECKER.checkers.update(Draft4Validator.FORMAT_CHECKER.checkers)


@FORMAT_CHECKER.checks("uuid")
def is_uuid(value: object) -> bool:
    """The canonical 8-4-4-4-12 hex form only."""
    return not isinstance(value, str) or bool(_UUID.match(value))


@FORMAT_CHECKER.checks("date-time")
def is_date_time(value: object) -> bool:
    """RFC 3339 with an offset, and representable in UTC (so it can be stored)."""
    if not isinstance(value, str):
        return True
    try:
        timestamps.parse(value)
    except ValueError:
        return False
    return True


def with_defaults(validator_class: Any) -> Any:
    """A validator that fills in each property's `default` from the contract as it validates.

    Connexion's DefaultsJSONRequestBodyValidator.extend_with_set_default does the same but calls
    setdefault on whatever it meets, so a body that is a JSON array is a 500 there
    (tests/api/test_errors.py::test_body_must_be_an_object); this one skips non-objects."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def properties(
        validator: Any, props: dict[str, Any], instance: Any, schema: dict[str, Any]
    ) -> Iterator[ValidationError]:
        if isinstance(instance, dict):
            for name, subschema in props.items():
                if "default" in subschema:
                    instance.setdefault(name, subschema["default"])
        yield from validate_properties(validator, props, instance, schema)

    extend: Callable[..., Any] = jsonschema.validators.extend
    return extend(validator_class, {"properties": properties})


Check = Callable[[Any], bool]
_DRAFT4 = "http://json-schema.org/draft-04/schema#"


def _conforms(name: str) -> Callable[[Any], bool]:
    return lambda value: FORMAT_CHECKER.conforms(value, name)


# Every format exactly as the jsonschema validator checks it (the compiler's own differ).
_FORMATS = {name: _conforms(name) for name in FORMAT_CHECKER.checkers}


def _draft4(schema: Any, *, request: bool) -> Any:
    """An OpenAPI 3.0 schema as plain JSON Schema draft 4 that is never more lenient: `nullable`
    as a type union, and in a request a `readOnly` property allowed no value at all."""
    if isinstance(schema, list):
        return [_draft4(item, request=request) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        raise ValueError("unresolved $ref")
    if request and schema.get("readOnly"):
        return {"not": {}}
    converted = {
        key: value
        if key in ("enum", "default", "example", "const") or key.startswith("x-")
        else _draft4(value, request=request)
        for key, value in schema.items()
        if key != "nullable"
    }
    if schema.get("nullable"):
        default = converted.pop("default", None)
        union: dict[str, Any] = {"anyOf": [{"type": "null"}, converted]}
        if "default" in schema:
            union["default"] = default
        return union
    return converted


def compiled(schema: dict[str, Any], *, request: bool = True) -> Check | None:
    """A fast check for schema, compiled to Python once (fastjsonschema): True means the value
    is valid and has its defaults filled in, as the jsonschema validator would find and fill
    them (the same formats, Python's own regular expressions, every `$` an end of text); False
    means it may not be, and the jsonschema validator says why. None when the schema holds what
    the compiler does not read; then every value takes the jsonschema validator. A schema is
    compiled with the formats known when it is (all are defined above, at import).
    """
    try:
        check = fastjsonschema.compile(
            {**_draft4(schema, request=request), "$schema": _DRAFT4},
            formats=_FORMATS,
            use_default=True,
            detailed_exceptions=False,
        )
    except (ValueError, fastjsonschema.JsonSchemaDefinitionException):
        return None

    def valid(value: Any) -> bool:
        try:
            check(value)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return True

    return valid


def body_errors(value: Any, check: Check | None, validator: Any) -> list[FieldError]:
    """Every way a request body (or a tool call's arguments) is invalid: strings PostgreSQL
    cannot store, else what its schema refuses. The compiled check answers for a valid value and
    the validator explains the others; either fills in the schema's defaults."""
    errors = unstorable_strings(value)
    if not errors and not (check is not None and check(value)):
        errors = schema_errors(validator, value, "body")
    return errors


def unstorable_strings(value: Any, path: tuple[Any, ...] = ()) -> list[FieldError]:
    """Strings (values or keys) with NUL or unpaired surrogates, wherever they are in value."""
    found: list[FieldError] = []
    stack: list[tuple[tuple[Any, ...], Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str) and _UNSTORABLE.search(item):
            found.append(
                {
                    "location": "body",
                    "pointer": pointer(where),
                    "detail": "must not contain NUL characters or unpaired surrogates",
                }
            )
        elif isinstance(item, dict):
            for key, child in item.items():
                if _UNSTORABLE.search(key):
                    stack.append((where, key))
                else:
                    stack.append(((*where, truncate(key, MAX_NAME)), child))
        elif isinstance(item, list):
            stack.extend(((*where, i), child) for i, child in enumerate(item))
    return sorted(found, key=lambda e: e["pointer"])
