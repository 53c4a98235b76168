"""The OpenTelemetry SDK's side of tracing (handlers/services/tracing.py), imported only when
tracing is on: a tracer provider whose spans go through a bounded, counted queue to the OTLP/HTTP
exporter."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import PROCESS_PID, SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from handlers.services.tracing import (
    EXPORT_FAILED,
    QUEUE_FULL,
    SERVICE,
    SHUTDOWN_MILLIS,
    Dropped,
)


def _resource(version: str) -> Resource:
    """OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (the SDK reads them), the version, this
    process, and `tasks-api` for a service nobody named."""
    found = Resource.create({SERVICE_VERSION: version, PROCESS_PID: os.getpid()})
    if str(found.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        found = found.merge(Resource({SERVICE_NAME: SERVICE}))
    return found


class _CountedExporter(SpanExporter):
    """The OTLP exporter, telling how many spans it was handed and how many it could not
    deliver."""

    def __init__(self, exporter: SpanExporter, dropped: Dropped) -> None:
        self.exporter = exporter
        self.dropped = dropped
        self.taken = 0  # spans handed to export (written by the export thread only)
        self._stopped = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.taken += len(spans)
        try:
            outcome = self.exporter.export(spans)
        except Exception:
            outcome = SpanExportResult.FAILURE
        if outcome is not SpanExportResult.SUCCESS:
            self.dropped(EXPORT_FAILED, len(spans))
        return outcome

    def shutdown(self) -> None:
        if not self._stopped:
            self._stopped = True
            self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)


class _BoundedProcessor(SpanProcessor):
    """The SDK's batch processor, behind a count of the spans waiting in its queue: one that
    would overflow it is dropped here, and counted (the SDK's own processor drops it just the
    same, but tells no one)."""

    def __init__(self, exporter: _CountedExporter, limit: int, dropped: Dropped) -> None:
        self.exporter = exporter
        self.limit = limit
        self.dropped = dropped
        # A queue smaller than the SDK's default batch (512) is exported in batches of itself.
        batch = min(limit, int(os.environ.get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") or 512))
        self.batches = BatchSpanProcessor(
            exporter, max_queue_size=limit, max_export_batch_size=batch
        )
        self._handed = 0
        self._lock = threading.Lock()

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        pass  # the batch processor does nothing at a span's start either

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None or not context.trace_flags.sampled:
            return
        with self._lock:
            full = self._handed - self.exporter.taken >= self.limit
            if not full:
                self._handed += 1
        if full:
            self.dropped(QUEUE_FULL, 1)
            return
        self.batches.on_end(span)

    def shutdown(self) -> None:
        """Export what is queued, for at most SHUTDOWN_MILLIS; then stop the exporter, which
        ends any retry it is waiting to make."""
        stopping = threading.Thread(target=self.batches.shutdown, daemon=True)
        stopping.start()
        stopping.join(SHUTDOWN_MILLIS / 1000)
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.batches.force_flush(timeout_millis)


def provider(limit: int, dropped: Dropped, version: str) -> TracerProvider:
    """A tracer provider exporting with OTLP/HTTP (its endpoint, headers, timeout and
    compression from the OTEL_EXPORTER_OTLP_* variables, which the exporter reads), sampling as
    OTEL_TRACES_SAMPLER says, and queueing at most limit spans."""
    exporter = _CountedExporter(OTLPSpanExporter(), dropped)
    made = TracerProvider(resource=_resource(version), shutdown_on_exit=False)
    made.add_span_processor(_BoundedProcessor(exporter, limit, dropped))
    return made
