"""The HTTP door's traces (only when tracing is on: handlers/services/tracing.py).

Every request gets a server span: it continues the trace of a `traceparent`/`tracestate` the
client sent (read by OpenTelemetry's propagators, OTEL_PROPAGATORS; the sampler decides whether
to trust the client's sampling decision), and a recorded one carries the stable HTTP
conventions' attributes. The span is named once the request is routed: by the contract's
operation (`tasks.create_task`, with `http.route` the contract's path template, so no user id
is ever in a name), `POST /mcp` or `GET /metrics`, and the bare method for anything else. Its
context is left in the request's scope for the doors that run the request's work on tasks of
their own (MCP's tool calls).

Not OpenTelemetry's ASGI instrumentation package: it computes every attribute and its metrics'
attributes for every request, sampled or not, which measured 47 µs a request (9% of a create);
a request the sampler leaves out costs a few µs here."""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract, get_global_textmap
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts.document import Document, operations
from handlers.core.errors import truncate
from handlers.services.logs import MAX_LOGGED_PATH
from handlers.services.state import app_path
from handlers.services.tracing import TRACE_CONTEXT, Tracing

# What requests that are no operation of the contract are named by (with the method before).
_NOT_OPERATIONS = ("/mcp", "/metrics")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE",
                      "CONNECT"})  # fmt: skip


class _Headers(Getter[list[tuple[bytes, bytes]]]):
    """The propagators' view of an ASGI scope's headers (lower-case names, as ASGI gives)."""

    def get(self, carrier: list[tuple[bytes, bytes]], key: str) -> list[str] | None:
        name = key.lower().encode("latin-1")
        found = [value.decode("latin-1") for header, value in carrier if header == name]
        return found or None

    def keys(self, carrier: list[tuple[bytes, bytes]]) -> list[str]:
        return [header.decode("latin-1") for header, _ in carrier]


_GETTER = _Headers()


def _method(scope: Scope) -> str:
    method: str = scope.get("method", "")
    return method if method in _METHODS else "_OTHER"


def _request_attributes(scope: Scope, method: str) -> dict[str, Any]:
    """The stable HTTP server conventions' required attributes of a request (with `http.route`
    and `http.response.status_code`, set as they are known). Each attribute costs a traced
    request about 3 µs (recorded, then encoded for export), so only these: who sent it (address,
    user agent) is in the request's log line, which has the trace id."""
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "url.scheme": scope.get("scheme", "http"),
        # Capped as in the log line: a path or query can be as long as the head (64 KiB).
        "url.path": truncate(scope.get("path", ""), MAX_LOGGED_PATH),
    }
    if method == "_OTHER":
        attributes["http.request.method_original"] = truncate(str(scope.get("method")), 32)
    if scope.get("query_string"):
        query = scope["query_string"].decode("latin-1")
        attributes["url.query"] = truncate(query, MAX_LOGGED_PATH)
    return attributes


class TraceMiddleware:
    """The request's server span (outside our logging, so every log line has its trace id)."""

    def __init__(self, app: ASGIApp, *, tracing: Tracing) -> None:
        self.app = app
        self.tracer = tracing.tracer
        # The headers the propagators read (traceparent, tracestate, baggage by default): a
        # request with none of them starts a trace without asking them.
        self.fields = frozenset(name.lower().encode() for name in get_global_textmap().fields)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", [])
        fields = self.fields
        carried = any(name in fields for name, _ in headers)
        parent = extract(headers, getter=_GETTER) if carried else None
        method = _method(scope)
        span = self.tracer.start_span(
            "HTTP" if method == "_OTHER" else method, context=parent, kind=SpanKind.SERVER
        )
        if not span.is_recording():
            if not carried:  # nothing to continue and nothing recorded: nothing to attach
                await self.app(scope, receive, send)
                return
            # The client's trace, not recorded here: its id is still in the request's log lines.
            token = otel_context.attach(trace.set_span_in_context(span, parent))
            try:
                await self.app(scope, receive, send)
            finally:
                otel_context.detach(token)
            return
        span.set_attributes(_request_attributes(scope, method))

        async def answered(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_attribute("error.type", str(status))
                    span.set_status(StatusCode.ERROR)
            await send(message)

        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            await self.app(scope, receive, answered)
        except BaseException as error:
            span.set_attribute("error.type", type(error).__qualname__)
            span.set_status(StatusCode.ERROR, type(error).__qualname__)
            raise
        finally:
            otel_context.detach(token)
            span.end()


class TraceNaming:
    """Names the server span once the request is routed (inside RequestLogMiddleware, whose
    scope the routing fills in), and leaves its context for the doors."""

    def __init__(self, app: ASGIApp, *, contract: Document) -> None:
        self.app = app
        self.routes = {op.spec["operationId"]: op.path for op in operations(contract)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        span = trace.get_current_span()
        if scope["type"] != "http" or not span.is_recording():
            await self.app(scope, receive, send)
            return
        scope.setdefault("extensions", {})[TRACE_CONTEXT] = otel_context.get_current()

        async def named(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._name(span, scope)
            await send(message)

        await self.app(scope, receive, named)

    def _name(self, span: trace.Span, scope: Scope) -> None:
        routed = scope.get("extensions", {}).get("connexion_routing", {})
        operation = routed.get("operation_id")
        if operation:
            operation = operation.removeprefix("handlers.")
            span.update_name(operation)
            route = self.routes.get(operation)
            if route is not None:
                span.set_attribute("http.route", routed.get("api_base_path", "") + route)
            return
        path = app_path(scope)
        if path in _NOT_OPERATIONS:
            span.update_name(f"{scope['method']} {path}")
            span.set_attribute("http.route", path)
