"""Request validation that reports every error at once, never echoes long values, checks formats
strictly, refuses strings PostgreSQL cannot store, and fills in the contract's defaults."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from connexion.datastructures import MediaTypeDict
from connexion.json_schema import Draft4RequestValidator, Draft4ResponseValidator
from connexion.lifecycle import ConnexionRequest
from connexion.validators import (
    AbstractRequestBodyValidator,
    JSONResponseBodyValidator,
    ParameterValidator,
)
from starlette.datastructures import Headers, QueryParams
from starlette.types import Receive, Scope

from handlers.asgi import read_body, replay
from handlers.core.errors import BadRequest, FieldError, UnsupportedMediaType, truncate
from handlers.core.schema_errors import MAX_NAME, schema_errors
from handlers.core.validation import (
    FORMAT_CHECKER,
    Check,
    compiled,
    unstorable_strings,
    with_defaults,
)
from handlers.http.operations import VALIDATED_BODY

_DefaultsValidator = with_defaults(Draft4RequestValidator)


class _PerSchema:
    """What build makes of a schema, made once per schema object. Connexion creates the request
    validators for every request; the schemas they are given live as long as the app, so what
    is built from them is reused."""

    def __init__(self, build: Callable[[dict[str, Any]], Any]) -> None:
        self._build = build
        self._built: dict[int, tuple[Any, Any]] = {}

    def __call__(self, schema: dict[str, Any]) -> Any:
        found = self._built.get(id(schema))
        if found is None or found[0] is not schema:
            found = (schema, self._build(schema))
            self._built[id(schema)] = found
        return found[1]


_body_validator = _PerSchema(lambda s: _DefaultsValidator(s, format_checker=FORMAT_CHECKER))
_parameter_validator = _PerSchema(
    lambda s: Draft4RequestValidator(s, format_checker=FORMAT_CHECKER)
)
# A compiled check (handlers/core/validation.py: compiled): a request it passes is valid, and
# the jsonschema validator only says what is wrong with the others.
_check = _PerSchema(compiled)


def _valid(schema: dict[str, Any], value: Any) -> bool:
    """Whether the compiled check finds value valid (filling in the schema's defaults)."""
    check: Check | None = _check(schema)
    return check is not None and check(value)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {truncate(key, MAX_NAME)!r}")
        result[key] = value
    return result


def parse_json(raw: bytes) -> Any:
    """Strict RFC 8259 JSON from UTF-8 bytes, or BadRequest saying why not."""

    def bad(detail: str) -> BadRequest:
        return BadRequest(detail, [{"location": "body", "pointer": "", "detail": detail}])

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad("The request body is not valid UTF-8.") from None
    try:
        return json.loads(
            text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_keys
        )
    except json.JSONDecodeError as error:
        raise bad(
            f"The request body is not valid JSON: {error.msg} at position {error.pos}."
        ) from None
    except ValueError as error:
        raise bad(f"The request body is not valid JSON: {error}.") from None
    except RecursionError:
        raise bad("The request body is nested too deeply.") from None


class JSONBodyValidator(AbstractRequestBodyValidator):  # type: ignore[misc]
    """Validates a JSON body in full and hands the handler the body with defaults filled in."""

    async def wrap_receive(self, receive: Receive, *, scope: Scope) -> tuple[Receive, Scope]:
        headers = Headers(scope=scope)
        raw = await read_body(receive, headers)
        if not raw:
            if self._required:
                raise BadRequest(
                    "A request body is required.",
                    [{"location": "body", "pointer": "", "detail": "is required"}],
                )
            return replay(receive, b""), scope
        if "content-type" not in headers:
            raise UnsupportedMediaType("Send the body with Content-Type: application/json.")
        if _charset(headers["content-type"]) not in (None, "utf-8", "utf8"):
            raise UnsupportedMediaType("JSON bodies must be UTF-8 (charset=utf-8).")

        body = parse_json(raw)
        errors = unstorable_strings(body)
        if not errors and not _valid(self._schema, body):
            errors = schema_errors(_body_validator(self._schema), body, "body")
        if errors:
            count = f"{len(errors)} error{'s' if len(errors) != 1 else ''}"
            raise BadRequest(f"The request body is invalid ({count}).", errors)

        # The operation is called with this very object (handlers/http/operations.py): the
        # body is neither serialized nor parsed again.
        scope.setdefault("extensions", {})[VALIDATED_BODY] = body
        return replay(receive, raw), scope


def _charset(content_type: str) -> str | None:
    """The charset parameter of a Content-Type, lower-cased (Connexion misses "; charset=")."""
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return None


class StrictParameterValidator(ParameterValidator):  # type: ignore[misc]
    """Checks every path, query and header parameter and reports all failures together.

    Stricter than Connexion's: a number is ASCII digits only (Python's int() also reads `1_0`,
    Arabic-Indic or full-width digits and ` 1 `), and a parameter that is not an array comes
    at most once.
    """

    def __init__(self, parameters: list[dict[str, Any]], **kwargs: Any) -> None:
        # Connexion appends path-level parameters to the operation's own list each time it
        # builds the operation (once per middleware), so the same parameter can appear repeatedly.
        unique = {(p["in"], p["name"]): p for p in parameters}
        super().__init__(list(unique.values()), **kwargs)

    def validate_request(self, request: ConnexionRequest) -> None:
        errors: list[FieldError] = []
        if self.strict_validation:
            unknown = self.validate_query_parameter_list(
                request, security_params=self.security_query_params
            )
            errors.extend(
                {
                    "location": "query",
                    "name": truncate(n, MAX_NAME),
                    "detail": "is not a parameter of this operation",
                }
                for n in sorted(unknown)
            )
        raw_query = QueryParams(request.scope.get("query_string", b""))
        unreadable = set()
        for param in self.parameters.get("query", []):
            found = _raw_query_errors(param, raw_query.getlist(param["name"]))
            if found:
                unreadable.add(param["name"])
                errors.extend(found)
        sources: dict[str, Callable[[str], Any]] = {
            "path": lambda name: request.path_params.get(name.replace("-", "_")),
            "query": lambda name: request.query_params.get(name),
            "header": lambda name: request.headers.get(name),
            "cookie": lambda name: request.cookies.get(name),
        }
        for location, value_of in sources.items():
            for param in self.parameters.get(location, []):
                if location != "query" or param["name"] not in unreadable:
                    errors.extend(_parameter_errors(param, value_of(param["name"]), location))
        if errors:
            count = f"{len(errors)} error{'s' if len(errors) != 1 else ''}"
            raise BadRequest(f"The request parameters are invalid ({count}).", errors)


_INTEGER = re.compile(r"-?[0-9]+", re.ASCII)
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?", re.ASCII)


def _raw_query_errors(param: dict[str, Any], values: list[str]) -> list[FieldError]:
    """What is wrong with a query parameter's text before Connexion converts it."""
    schema = param.get("schema", param)
    name = param["name"]
    if schema.get("type") != "array" and len(values) > 1:
        return [{"location": "query", "name": name, "detail": "must be given at most once"}]
    syntax = {"integer": _INTEGER, "number": _NUMBER}.get(schema.get("type", ""))
    if syntax is not None and values and not syntax.fullmatch(values[0]):
        noun = "an integer" if schema["type"] == "integer" else "a number"
        return [{"location": "query", "name": name, "detail": f"must be {noun} in ASCII digits"}]
    return []


def _parameter_errors(param: dict[str, Any], value: Any, location: str) -> list[FieldError]:
    name = param["name"]
    if value is None:
        if param.get("required"):
            return [{"location": location, "name": name, "detail": "is required"}]
        return []
    schema = param.get("schema", param)
    if _valid(schema, value):
        return []
    # A parameter is one value: its first problem says enough (an empty value is both too
    # short and unlike the pattern).
    found = schema_errors(_parameter_validator(schema), value, location, name)
    return found[:1]


class StrictResponseValidator(JSONResponseBodyValidator):  # type: ignore[misc]
    """Response validation with the same strict formats as requests."""

    @property
    def validator(self) -> Any:
        return Draft4ResponseValidator(self._schema, format_checker=FORMAT_CHECKER)


VALIDATOR_MAP = {
    "parameter": StrictParameterValidator,
    "body": MediaTypeDict({"*/*json": JSONBodyValidator}),
    "response": MediaTypeDict({"*/*json": StrictResponseValidator}),
}
