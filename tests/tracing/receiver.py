"""A real OTLP/HTTP trace receiver for the tests: an HTTP server on 127.0.0.1 that takes
`POST /v1/traces`, decodes the protobuf payload with OpenTelemetry's own proto package (gzip or
not), and keeps every span it got. It can be stopped (connections refused) or made to hang (a
collector that accepts and never answers), as a collector in trouble does."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

PATH = "/v1/traces"


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


@dataclass(frozen=True)
class Span:
    """One received span, as plain values (ids in W3C hex)."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict[str, Any]
    status_code: int
    resource: dict[str, Any] = field(repr=False)
    scope: str = ""


class Receiver:
    """Spans received so far; wait_for() blocks until a condition on them holds."""

    def __init__(self, *, keep: bool = True) -> None:
        """keep=False: a sink that answers every export and only counts them (for benchmarks,
        where decoding would take the CPU the server is measured on)."""
        self.keep = keep
        self.exports = 0
        self.spans: list[Span] = []
        self.requests: list[dict[str, str]] = []  # the headers of each export request
        self._arrived = threading.Condition()
        self._hang = threading.Event()
        self._released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # connections kept alive, as a collector keeps them

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if receiver._hang.is_set():
                    receiver._released.wait(30)  # a collector that never answers in time
                    return
                if self.path != PATH:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                receiver.exports += 1
                if receiver.keep:
                    if self.headers.get("Content-Encoding") == "gzip":
                        body = gzip.decompress(body)
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(body)
                    receiver._take(request, dict(self.headers.items()))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _take(self, request: ExportTraceServiceRequest, headers: dict[str, str]) -> None:
        received = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        Span(
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            kind=span.kind,
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            status_code=span.status.code,
                            resource=resource,
                            scope=scope_spans.scope.name,
                        )
                    )
        with self._arrived:
            self.spans.extend(received)
            self.requests.append(headers)
            self._arrived.notify_all()

    def wait_for(
        self, found: Callable[[list[Span]], bool], timeout: float = 20, what: str = "spans"
    ) -> list[Span]:
        """The spans received, once found(spans) holds; fails after timeout seconds."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while not found(self.spans):
                left = deadline - time.monotonic()
                if left <= 0:
                    names = sorted({s.name for s in self.spans})
                    raise AssertionError(f"no {what} within {timeout} s; received {names}")
                self._arrived.wait(left)
            return list(self.spans)

    def trace(self, trace_id: str) -> list[Span]:
        with self._arrived:
            return [span for span in self.spans if span.trace_id == trace_id]

    def hang(self) -> None:
        """From now on, accept exports and never answer them (until stop())."""
        self._hang.set()

    def stop(self) -> None:
        """Stop listening: exports are refused from now on."""
        self._released.set()
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def receiving() -> Iterator[Receiver]:
    receiver = Receiver()
    try:
        yield receiver
    finally:
        receiver.stop()


def tracing_environment(receiver: Receiver, **more: str) -> dict[str, str]:
    """The OTEL_* settings that send a server's spans to receiver, exported every 50 ms."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        **more,
    }
