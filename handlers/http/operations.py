"""The HTTP door to the operations: the innermost app of Connexion's pipeline. By the time a
request gets here, Connexion's middlewares have routed it to an operationId, checked its token
and validated it against the contract; this app calls the operation in handlers/ with a Context
built from the request and the validated arguments, and writes its Answer.

It takes the place of Connexion's own innermost app, whose decorators rebuild themselves and
inspect the handler's signature on every request, wrap the request in two request objects and
parse the query string and the body again: everything per operation is worked out once here,
from the operation as Connexion read it from the contract (its resolved parameters, body and
responses), and a request costs a dictionary lookup, its arguments and one write."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from connexion.apps.asynchronous import AsyncApi, AsyncASGIApp
from connexion.decorators.parameter import sanitized
from connexion.operations import AbstractOperation
from connexion.resolver import RelativeResolver
from connexion.utils import boolean
from starlette.types import Receive, Scope, Send

from handlers.core.answer import Answer
from handlers.core.context import Context, perform
from handlers.services.jsonifier import encode
from handlers.services.state import app_state, full_path

Operation = Callable[..., Awaitable[Answer]]
ROOT = "handlers"  # where operationIds resolve: tasks.create_task is handlers.tasks.create_task
# Where the request validator leaves the body it parsed and checked (handlers/http/validation.py).
VALIDATED_BODY = "tasks_api.body"
_COERCE: dict[str, Callable[[str], Any]] = {"integer": int, "number": float, "boolean": boolean}


def header(scope: Scope, name: bytes) -> str | None:
    """A request header, its repeated lines joined with ", " (RFC 9110 §5.3); None when absent."""
    lines = [v.decode("latin-1") for k, v in scope["headers"] if k == name]
    return ", ".join(lines) if lines else None


def context_for(scope: Scope, user_id: str | None) -> Context:
    """The Context of the operation this request calls."""
    return Context(
        services=app_state(scope).services,
        user_id=user_id,
        method=scope["method"],
        target=full_path(scope),
        if_match=header(scope, b"if-match"),
        if_none_match=header(scope, b"if-none-match"),
        idempotency_key=header(scope, b"idempotency-key"),
        prefer=header(scope, b"prefer"),
    )


class Endpoint:
    """One operation of the contract, as this app calls it."""

    def __init__(self, operation: AbstractOperation) -> None:
        self.function: Operation = operation.function
        self.operation_id = str(operation.operation_id).removeprefix(f"{ROOT}.")
        accepts = set(inspect.signature(self.function).parameters)
        parameters = {(p["in"], p["name"]): p for p in operation.parameters}.values()
        # (name in the route, argument) of each path parameter the operation takes
        self.path = [
            (p["name"].replace("-", "_"), sanitized(p["name"]))
            for p in parameters
            if p["in"] == "path" and sanitized(p["name"]) in accepts
        ]
        # name -> (argument, conversion) of each query parameter it takes; defaults apart
        self.query: dict[str, tuple[str, Callable[[str], Any]]] = {}
        self.defaults: dict[str, Any] = {}
        for p in parameters:
            argument, schema = sanitized(p["name"]), p.get("schema", {})
            if p["in"] != "query" or argument not in accepts:
                continue
            if schema.get("type") in ("array", "object"):
                raise ValueError(f"query parameter {p['name']!r}: only single values are read")
            self.query[p["name"]] = (argument, _COERCE.get(schema.get("type", ""), str))
            if "default" in schema:
                self.defaults[argument] = schema["default"]
        body_name = sanitized(operation.body_name("application/json"))
        takes_body = operation.is_request_body_defined and body_name in accepts
        self.body = body_name if takes_body else None
        schema = operation.body_schema() if self.body else {}
        self.empty_body = schema.get("default", {})  # what an absent body is taken as
        # The media type of each status's body, where the contract declares exactly one.
        self.media = {
            str(status): next(iter(response["content"]))
            for status, response in operation.responses.items()
            if len(response.get("content", {})) == 1
        }

    def arguments(self, scope: Scope) -> dict[str, Any]:
        """The operation's arguments from the validated request."""
        found = dict(self.defaults)
        routed = scope.get("path_params", {})
        for name, argument in self.path:
            found[argument] = routed[name]
        if self.query and scope["query_string"]:
            for name, value in parse_qsl(scope["query_string"].decode("latin-1"), True):
                known = self.query.get(name)
                if known is not None:
                    found[known[0]] = known[1](value)
        if self.body is not None:
            extensions = scope.get("extensions", {})
            if VALIDATED_BODY in extensions:
                found[self.body] = extensions[VALIDATED_BODY]
            else:
                found[self.body] = copy.deepcopy(self.empty_body)
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = scope.get("extensions", {}).get("connexion_context", {}).get("user")
        ctx, arguments = context_for(scope, user), self.arguments(scope)
        answer = await perform(self.operation_id, self.function, ctx, **arguments)
        await self.write(answer, send)

    async def write(self, answer: Answer, send: Send) -> None:
        """The Answer as the response, with the media type the contract declares for its
        status (Connexion merges the media types of all of an operation's responses and cannot
        choose between application/json and application/problem+json: spec-first/connexion#1956)."""
        headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in answer.headers.items()
        ]
        body = b""
        if answer.body is not None:
            body = encode(answer.body)
            media = self.media.get(str(answer.status), "application/json")
            headers.append((b"content-length", str(len(body)).encode()))
            headers.append((b"content-type", media.encode()))
        elif answer.status >= 200 and answer.status not in (204, 304):
            headers.append((b"content-length", b"0"))  # an empty body, not a chunked one
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _Operations(AsyncApi):  # type: ignore[misc]
    def make_operation(self, operation: AbstractOperation) -> Endpoint:
        return Endpoint(operation)


class OperationsApp(AsyncASGIApp):  # type: ignore[misc]
    """Connexion's innermost app with our endpoints: each request goes to its operationId's
    Endpoint; what has none (no route) goes on to Connexion's router, which answers 404."""

    api_cls = _Operations


def resolver() -> RelativeResolver:
    """Connexion's resolver for the contract's operationIds: the operations themselves."""
    return RelativeResolver(ROOT)
