"""What an operation is given besides its validated arguments: who asks, the request's
conditions (If-Match, If-None-Match), its idempotency key and preferences, where the resource it
acts on lives, and the services it uses. Each door fills one in from its own request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from opentelemetry.trace import Tracer

from handlers.core.answer import Answer
from handlers.services.tracing import recording, step
from persistence.cursors import Cursors
from persistence.database import Connection, Database


@dataclass(frozen=True)
class Services:
    """Per-process resources and policies, made once at start and shared by every call."""

    database: Database
    cursors: Cursors
    require_if_match: bool = False
    require_idempotency_key: bool = False
    idempotency_key_ttl_seconds: int = 86400

    @property
    def tracer(self) -> Tracer | None:
        """The tracer, when tracing is on (handlers/services/tracing.py): the database's."""
        return self.database.tracer


@dataclass(frozen=True)
class Context:
    """One call of an operation.

    `method` and `target` name what it acts on as the contract does (`POST`,
    `/api/alice/tasks`, with any prefix the API is served under): an idempotency key is bound
    to them, and a created resource's Location is made from the target."""

    services: Services
    user_id: str | None
    method: str
    target: str
    if_match: str | None = None
    if_none_match: str | None = None
    idempotency_key: str | None = None
    prefer: str | None = None

    def connection(self) -> AbstractAsyncContextManager[Connection]:
        """A connection for one statement, which is atomic on its own."""
        return self.services.database.connection()

    def transaction(self) -> AbstractAsyncContextManager[Connection]:
        """A connection in a transaction, for work of several statements: committed when the
        block ends, rolled back when it raises."""
        return self.services.database.transaction()

    def child_location(self, child_id: object) -> str:
        """The URL path of a resource created under the target."""
        return quote(f"{self.target.rstrip('/')}/{child_id}", safe="/")


def perform(
    operation_id: str, operation: Callable[..., Awaitable[Answer]], ctx: Context, **arguments: Any
) -> Awaitable[Answer]:
    """operation's Answer to ctx and arguments, as every door calls it: under a span named by
    its operationId when the call is traced (untraced, the operation's own awaitable, with no
    layer between)."""
    tracer = ctx.services.tracer
    if tracer is None or not recording():
        return operation(ctx, **arguments)
    return _traced(tracer, operation_id, operation, ctx, arguments)


async def _traced(
    tracer: Tracer,
    operation_id: str,
    operation: Callable[..., Awaitable[Answer]],
    ctx: Context,
    arguments: dict[str, Any],
) -> Answer:
    with step(tracer, operation_id) as span:
        answer = await operation(ctx, **arguments)
        if span is not None:
            span.set_attribute("tasks_api.status", answer.status)
        return answer
