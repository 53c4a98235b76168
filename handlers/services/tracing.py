"""Traces: OpenTelemetry's SDK, exporting over OTLP/HTTP, configured by the standard variables.

Off unless an OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT, or the traces-only
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) and OTEL_SDK_DISABLED is not true: then nothing here is
built and every door runs its untraced path. On, each app (each worker process, and `tasks-api
mcp`) has its own tracer provider, batch processor and exporter, made after the process forked.

The sampler is the SDK's, from OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG; it is also the
setting that decides whether a client's `traceparent` sampling decision is trusted: the
`parentbased_*` samplers follow it, `traceidratio` (and `always_*`) decide for themselves while
still continuing the client's trace. Spans wait in a bounded queue (OTEL_BSP_MAX_QUEUE_SIZE)
for a thread that exports them; no request ever waits for the collector. A span that finds the
queue full, or whose export failed (the collector down, slow past OTEL_EXPORTER_OTLP_TIMEOUT, or
refusing it), is dropped and counted (tasks_api_trace_spans_dropped_total in /metrics).

Spans below the request (operation, statements, idempotency and rate-limit steps) are made only
inside a span that is recorded: a request the sampler left out costs one decision, not six.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider

from handlers.services.settings import SettingsError

SERVICE = "tasks-api"  # service.name unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say
ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
PROTOCOLS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
SAMPLERS = (
    "always_on", "always_off", "traceidratio",
    "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio",
)  # fmt: skip
# The batch processor's numbers, each a positive integer when set (the SDK would log a warning
# and use its default; a server refuses to start instead).
_POSITIVE = (
    "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
)  # fmt: skip
DEFAULT_QUEUE = 2048  # OTEL_BSP_MAX_QUEUE_SIZE's default, the specification's
# At most this long to export what is queued when a process stops (a collector that is down
# must not hold up a graceful shutdown).
SHUTDOWN_MILLIS = 2000
# Why a span was dropped, as /metrics labels it.
QUEUE_FULL, EXPORT_FAILED = "queue_full", "export_failed"
REASONS = (QUEUE_FULL, EXPORT_FAILED)
# Where a door leaves a request's trace context (under its ASGI scope's "extensions") for work
# it runs on tasks of their own (MCP's tool calls over HTTP).
TRACE_CONTEXT = "tasks_api.trace_context"

Dropped = Callable[[str, int], None]  # told the reason and how many spans


def _on(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "").strip().lower() == "true"


def enabled(environ: Mapping[str, str]) -> bool:
    """Whether these variables turn tracing on."""
    if _on(environ, "OTEL_SDK_DISABLED"):
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in ENDPOINTS)


def check(environ: Mapping[str, str]) -> None:
    """Refuse (SettingsError) values the SDK would quietly replace with its defaults, and what
    this server cannot export with; only when tracing is on."""
    if not enabled(environ):
        return
    for name in ENDPOINTS:
        endpoint = environ.get(name, "").strip()
        if endpoint and (urlsplit(endpoint).scheme not in ("http", "https")
                         or not urlsplit(endpoint).hostname):  # fmt: skip
            raise SettingsError(f"{name} must be an http:// or https:// URL (OTLP over HTTP)")
    for name in PROTOCOLS:
        protocol = environ.get(name, "").strip()
        if protocol and protocol != "http/protobuf":
            raise SettingsError(
                f"{name}={protocol[:40]!r}: this server exports OTLP over HTTP (http/protobuf);"
                " a collector's OTLP/HTTP port is usually 4318"
            )
    sampler = environ.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    if sampler and sampler not in SAMPLERS:
        raise SettingsError(f"OTEL_TRACES_SAMPLER must be one of {', '.join(SAMPLERS)}")
    argument = environ.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    if argument and sampler.endswith("traceidratio"):
        try:
            ratio = float(argument)
        except ValueError:
            ratio = -1.0
        if not 0.0 <= ratio <= 1.0:
            raise SettingsError("OTEL_TRACES_SAMPLER_ARG must be a ratio from 0 to 1, as 0.1")
    for name in _POSITIVE:
        value = environ.get(name, "").strip()
        if value and not (value.isdigit() and int(value) > 0):
            raise SettingsError(f"{name} must be a positive whole number")
    queue = environ.get("OTEL_BSP_MAX_QUEUE_SIZE", "").strip()
    batch = environ.get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "").strip()
    if queue and batch and int(batch) > int(queue):
        raise SettingsError(
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE must not be more than OTEL_BSP_MAX_QUEUE_SIZE"
        )


@dataclass(frozen=True)
class Tracing:
    """One app's traces: its tracer provider, the tracer our own spans come from, and how to
    stop them (export what is queued, for at most SHUTDOWN_MILLIS)."""

    provider: TracerProvider
    tracer: Tracer
    shutdown: Callable[[], None]


def from_environment(
    environ: Mapping[str, str], dropped: Dropped, version: str = "unknown"
) -> Tracing | None:
    """The app's tracing as the OTEL_* variables describe it, for the service at version (the
    contract's); None when they leave it off (the SDK is then never imported)."""
    if not enabled(environ):
        return None
    check(environ)
    from handlers.services.exporting import provider

    queue = int(environ.get("OTEL_BSP_MAX_QUEUE_SIZE", "").strip() or DEFAULT_QUEUE)
    made = provider(queue, dropped, version)
    return Tracing(made, made.get_tracer("tasks-api"), made.shutdown)


def recording() -> bool:
    """Whether the current span is recorded (so spans under it are worth making)."""
    return trace.get_current_span().is_recording()


class Current:
    """A span, current for the block (`with Current(...) as span`); None when it would not be
    recorded (no tracer; or, under=True, no recorded span to be under; or the sampler left it
    out). An exception that leaves the block marks it failed, but a domain error below 500 (a
    404, a 412) is an answer, not a failure. A class, not a generator: it is on the path of
    every traced statement, where each layer costs."""

    __slots__ = ("_span", "_token")

    def __init__(
        self,
        tracer: Tracer | None,
        name: str,
        attributes: Mapping[str, Any] | None = None,
        *,
        under: bool = True,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
    ) -> None:
        self._span: Span | None = None
        self._token: object = None
        if tracer is None or (under and context is None and not recording()):
            return
        span = tracer.start_span(name, context=context, kind=kind, attributes=attributes,
                                 record_exception=False, set_status_on_exception=False)  # fmt: skip
        if span.is_recording():
            self._span = span

    def __enter__(self) -> Span | None:
        if self._span is not None:
            self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(self, kind: Any, error: BaseException | None, _trace: Any) -> None:
        span = self._span
        if span is None:
            return
        if error is not None:
            failed(span, error)
        otel_context.detach(self._token)  # type: ignore[arg-type]
        span.end()


def step(tracer: Tracer | None, name: str, attributes: Mapping[str, Any] | None = None) -> Current:
    """A span for the block under the current one, when that one is recorded; else None."""
    return Current(tracer, name, attributes)


def background(
    tracer: Tracer | None, name: str, attributes: Mapping[str, Any] | None = None
) -> Current:
    """A span for work no request asked for (a rate-limit sync): the root of a trace of its
    own, which the sampler decides on; None when it is not recorded."""
    return Current(tracer, name, attributes, context=Context())


def tool_span(tracer: Tracer, tool: str, parent: Context | None) -> Current:
    """An MCP tool call's span (the conventions' `tools/call {tool}`): under parent, the HTTP
    request that carried it, when there is one; else the root of its own trace (stdio), which
    the sampler decides on."""
    attributes = {"mcp.method.name": "tools/call", "gen_ai.tool.name": tool,
                  "gen_ai.operation.name": "execute_tool"}  # fmt: skip
    if parent is None:
        return Current(tracer, f"tools/call {tool}", attributes, under=False,
                       context=Context(), kind=SpanKind.SERVER)  # fmt: skip
    return Current(tracer, f"tools/call {tool}", attributes, context=parent)


def failed(span: Span, error: BaseException) -> None:
    """Mark span failed by error, unless error is a domain error below 500."""
    status = getattr(error, "status", None)
    if isinstance(status, int):
        span.set_attribute("tasks_api.status", status)
        if status < 500:
            return
    span.set_attribute("error.type", type(error).__qualname__)
    span.set_status(Status(StatusCode.ERROR, type(error).__qualname__))
