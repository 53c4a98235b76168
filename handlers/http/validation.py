"""Request validation that reports every error at once, never echoes long values, checks formats
strictly, refuses strings PostgreSQL cannot store, and fills in the contract's defaults."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from connexion import utils
from connexion.datastructures import MediaTypeDict
from connexion.exceptions import UnsupportedMediaTypeProblem
from connexion.json_schema import Draft4RequestValidator, Draft4ResponseValidator
from connexion.middleware.request_validation import (
    RequestValidationAPI,
    RequestValidationMiddleware,
)
from connexion.operations import AbstractOperation
from connexion.validators import VALIDATOR_MAP as CONNEXION_VALIDATORS
from connexion.validators import (
    AbstractRequestBodyValidator,
    JSONResponseBodyValidator,
    ParameterValidator,
)
from starlette.datastructures import Headers, QueryParams
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from handlers.asgi import read_body, replay
from handlers.core.errors import BadRequest, FieldError, UnsupportedMediaType, truncate
from handlers.core.schema_errors import MAX_NAME, schema_errors
from handlers.core.validation import (
    FORMAT_CHECKER,
    Check,
    body_errors,
    compiled,
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
        errors = body_errors(body, _check(self._schema), _body_validator(self._schema))
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
        self._known_query = {p["name"] for p in self.parameters.get("query", [])}
        self._known_query |= self.security_query_params

    def validate(self, scope: Scope) -> None:
        """Raises BadRequest naming every parameter of the request that the contract refuses.
        Read from the ASGI scope itself, as Connexion's request object would read it: the query
        string once, the header and cookie lines only when the operation has such parameters."""
        raw_query = QueryParams(scope.get("query_string", b""))
        query = (
            self.uri_parser.resolve_query({k: raw_query.getlist(k) for k in raw_query})
            if raw_query
            else {}
        )
        errors: list[FieldError] = []
        if self.strict_validation:
            unknown = set(query) - self._known_query
            errors.extend(
                {
                    "location": "query",
                    "name": truncate(n, MAX_NAME),
                    "detail": "is not a parameter of this operation",
                }
                for n in sorted(unknown)
            )
        unreadable = set()
        for param in self.parameters.get("query", []):
            found = _raw_query_errors(param, raw_query.getlist(param["name"]))
            if found:
                unreadable.add(param["name"])
                errors.extend(found)
        path = self.uri_parser.resolve_path(scope.get("path_params", {}))
        sources: dict[str, Callable[[str], Any]] = {
            "path": lambda name: path.get(name.replace("-", "_")),
            "query": query.get,
        }
        if "header" in self.parameters:
            sources["header"] = Headers(scope=scope).get
        if "cookie" in self.parameters:
            sources["cookie"] = HTTPConnection(scope).cookies.get
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


class ValidatedOperation:
    """One operation's request checks, in Connexion's order and with its answers: the
    parameters, the body's media type, then the body. What Connexion's own validation layer
    builds again for every request (the URI parser, the parameter validator, the accepted media
    types, a body validator) is built here once per operation, and once per media type a
    client sends (a few, bounded)."""

    MAX_MEDIA_TYPES = 16

    def __init__(
        self,
        next_app: ASGIApp,
        *,
        operation: AbstractOperation,
        strict_validation: bool = False,
        validator_map: dict[str, Any] | None = None,
    ) -> None:
        self.next_app = next_app
        self._operation = operation
        self._strict = strict_validation
        self._validators = {**CONNEXION_VALIDATORS, **(validator_map or {})}
        self._uri_parser = operation.uri_parser_class(
            operation.parameters, operation.body_definition()
        )
        self._parameters = self._validators["parameter"](
            operation.parameters,
            uri_parser=self._uri_parser,
            strict_validation=strict_validation,
            security_query_params=[
                scheme["name"]
                for requirement in operation.security or []
                for scheme in map(operation.security_schemes.__getitem__, requirement)
                if scheme["type"] == "apiKey" and scheme["in"] == "query"
            ],
        )
        consumes = operation.consumes
        self._default_media_type = consumes[0] if consumes else "application/octet-stream"
        self._consumes = MediaTypeDict([(c.lower(), None) for c in consumes]) if consumes else None
        # (media type, charset) as sent -> its body validator, or None when it has none
        self._bodies: dict[tuple[str, str], Any] = {}

    def _body_validator(self, mime_type: str, encoding: str) -> Any:
        key = (mime_type, encoding)
        if key in self._bodies:
            return self._bodies[key]
        if self._consumes is not None and mime_type.lower() not in self._consumes:
            raise UnsupportedMediaTypeProblem(
                detail=f"Invalid Content-type ({truncate(mime_type, MAX_NAME)}), "
                f"expected {self._operation.consumes}"
            )
        operation = self._operation
        validator = None
        schema = operation.body_schema(mime_type)
        body = self._validators["body"].get(mime_type) if schema else None
        if body is not None:
            validator = body(
                schema=schema,
                required=operation.request_body.get("required", False),
                nullable=utils.is_nullable(operation.body_definition(mime_type)),
                encoding=encoding,
                strict_validation=self._strict,
                uri_parser=self._uri_parser,
            )
        if len(self._bodies) < self.MAX_MEDIA_TYPES:
            self._bodies[key] = validator
        return validator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._parameters.validate(scope)
        content_type = None
        for name, value in scope["headers"]:
            if name.lower() == b"content-type":
                content_type = value.decode("latin-1")
        mime_type, encoding = utils.split_content_type(content_type)
        validator = self._body_validator(  # an empty Content-Type is a media type nobody takes
            self._default_media_type if mime_type is None else mime_type,
            "utf-8" if encoding is None else encoding,
        )
        if validator is not None:
            receive, scope = await validator.wrap_receive(receive, scope=scope)
        await self.next_app(scope, receive, send)


class _ValidationAPI(RequestValidationAPI):  # type: ignore[misc]
    def make_operation(self, operation: AbstractOperation) -> ValidatedOperation:
        return ValidatedOperation(
            self.next_app,
            operation=operation,
            strict_validation=self.strict_validation,
            validator_map=self.validator_map,
        )


class ContractValidation(RequestValidationMiddleware):  # type: ignore[misc]
    """Connexion's request validation layer, with its operations built once
    (ValidatedOperation). It takes RequestValidationMiddleware's place in the pipeline."""

    api_cls = _ValidationAPI
