"""The HTTP door to the operations: Connexion resolves each operationId to the operation in
handlers/, wrapped here so that it gets a Context built once from the request, and its Answer
becomes Connexion's reply."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from connexion.context import operation as current_operation
from connexion.context import scope as request_scope
from connexion.resolver import RelativeResolver
from connexion.utils import get_function_from_name
from starlette.responses import Response
from starlette.types import Scope

from handlers.core.answer import Answer
from handlers.core.context import Context
from handlers.services.state import app_state, full_path

Operation = Callable[..., Awaitable[Answer]]
Reply = tuple[Any, int, dict[str, str]] | Response
ROOT = "handlers"  # where operationIds resolve: tasks.create_task is handlers.tasks.create_task


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


def reply(answer: Answer) -> Reply:
    """The Answer as Connexion's reply, with the media type the contract declares for its
    status: Connexion merges the media types of all of an operation's responses and cannot
    choose between application/json and application/problem+json (spec-first/connexion#1956)."""
    headers = dict(answer.headers)
    if answer.body is None:  # e.g. 204: no body, so no Content-Type either
        return Response(status_code=answer.status, headers=headers)
    declared = current_operation.response_definition(str(answer.status)).get("content", {})
    if len(declared) == 1:
        headers["Content-Type"] = next(iter(declared))
    return answer.body, answer.status, headers


def handler(operation: Operation) -> Callable[..., Awaitable[Reply]]:
    """operation as Connexion calls a handler: with the request's arguments by name (the
    signature Connexion inspects is the operation's without its Context)."""
    signature = inspect.signature(operation)
    arguments = [p for name, p in signature.parameters.items() if name != "ctx"]

    async def call(**kwargs: Any) -> Reply:
        user = request_scope.get("extensions", {}).get("connexion_context", {}).get("user")
        return reply(await operation(context_for(request_scope, user), **kwargs))

    call.__signature__ = signature.replace(parameters=arguments)  # type: ignore[attr-defined]
    call.__name__ = call.__qualname__ = operation.__name__
    call.__doc__ = operation.__doc__
    return call


def resolver() -> RelativeResolver:
    """Connexion's resolver for the contract's operationIds, each one's operation wrapped."""
    return RelativeResolver(
        ROOT, function_resolver=lambda name: handler(get_function_from_name(name))
    )
