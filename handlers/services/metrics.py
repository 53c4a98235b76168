"""Prometheus metrics of one app: requests by operation and status class, their latency, the
database pool, statement timeouts, JWKS fetches, rate-limit refusals and MCP tool calls.

With several worker processes (`tasks-api serve --workers N`, or any server that forks workers),
prometheus-client's multiprocess mode keeps each process's values in files under
PROMETHEUS_MULTIPROC_DIR, and whichever worker answers GET /metrics adds up all of them: counts
and histograms summed over every process that ever ran (a restarted worker's counts stay),
gauges over the live ones. Without that directory each app counts in its own registry.
"""

from __future__ import annotations

import contextlib
import glob
import os
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client import multiprocess as multiprocess_mode
from prometheus_client.exposition import choose_encoder

from handlers.services.settings import METRICS_DIR_VARIABLE
from handlers.services.tracing import REASONS

# Latency buckets (seconds): a list answers in milliseconds, the database budget is 1.5 s.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}

# What a request whose client left mid-request is recorded as (nginx's 499, "client closed").
CLIENT_CLOSED_STATUS = 499


def shared_directory() -> str | None:
    """Where this process's values live when several processes serve (else None)."""
    return os.environ.get(METRICS_DIR_VARIABLE) or None


def clear(directory: str) -> None:
    """Forget the values of an earlier run (before the workers start; prometheus-client's
    files only, whatever else the directory holds)."""
    for kind in ("counter", "gauge", "histogram", "summary"):
        for path in glob.glob(os.path.join(directory, f"{kind}_*.db")):
            os.remove(path)


def _forget_dead_processes(directory: str) -> None:
    """Drop the gauges of workers that died without saying so (a crash, SIGKILL): the server
    that restarts them is uvicorn's or Granian's, and tells nobody."""
    for path in glob.glob(os.path.join(directory, "gauge_live*_*.db")):
        pid = os.path.basename(path).rsplit("_", 1)[-1].removesuffix(".db")
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            multiprocess_mode.mark_process_dead(int(pid), directory)  # type: ignore[no-untyped-call]
        except PermissionError:
            continue  # alive, under another user


class Metrics:
    """The metrics one app records; render() is what GET /metrics answers."""

    def __init__(self) -> None:
        # No `_created` series: multiprocess mode has none, so neither has one process.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry = CollectorRegistry(auto_describe=True)
        by_request = ["operation", "status_class"]
        self.requests = Counter(
            "tasks_api_requests", "Requests answered, by operationId and status class.",
            by_request, registry=registry,
        )  # fmt: skip
        self.duration = Histogram(
            "tasks_api_request_duration_seconds",
            "Time from a request's arrival to its answer, by operationId and status class.",
            by_request, buckets=BUCKETS, registry=registry,
        )  # fmt: skip

        def live(name: str, documentation: str) -> Gauge:
            """A gauge summed over the live worker processes."""
            return Gauge(name, documentation, registry=registry, multiprocess_mode="livesum")

        self.in_flight = live("tasks_api_requests_in_flight", "Requests being served now.")
        self.pool_size = live("tasks_api_db_pool_size", "Open database connections.")
        self.pool_in_use = live(
            "tasks_api_db_pool_in_use", "Database connections serving a request now."
        )
        self.pool_waiting = live(
            "tasks_api_db_pool_waiting", "Requests waiting for a database connection now."
        )
        self.pool_max = live(
            "tasks_api_db_pool_max", "The most database connections the pools may open."
        )
        self.timeouts = Counter(
            "tasks_api_db_statement_timeouts",
            "Statements cancelled by statement_timeout or given up on after their time budget"
            " (waiting for a connection included); each request gets 503.",
            registry=registry,
        )
        self.jwks_fetches = Counter(
            "tasks_api_jwks_fetches", "Downloads of the JWKS (JWT_JWKS_URL) attempted.",
            registry=registry,
        )  # fmt: skip
        self.jwks_failures = Counter(
            "tasks_api_jwks_fetch_failures",
            "JWKS downloads that failed or timed out (the cached keys stayed in use).",
            registry=registry,
        )
        self.rate_limited = Counter(
            "tasks_api_rate_limit_rejections",
            "Requests refused with 429, by limit (per-user or auth-failures).",
            ["limit"], registry=registry,
        )  # fmt: skip
        self.tool_calls = Counter(
            "tasks_api_mcp_tool_calls", "MCP tool calls, by tool and outcome (success or error).",
            ["tool", "outcome"], registry=registry,
        )  # fmt: skip
        self.spans_dropped_total = Counter(
            "tasks_api_trace_spans_dropped",
            "Trace spans dropped (tracing on): the export queue was full (queue_full), or the"
            " collector could not be reached or refused them (export_failed).",
            ["reason"], registry=registry,
        )  # fmt: skip
        for reason in REASONS:  # both at 0 from the start, so a rate() sees the first drop
            self.spans_dropped_total.labels(reason)
        # label children, looked up once each (labels() takes a lock every time)
        self._children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}

    def observe(self, operation: str, status: int, seconds: float) -> None:
        key = (operation, status if status == CLIENT_CLOSED_STATUS else status // 100)
        children = self._children.get(key)
        if children is None:
            kind = _STATUS_CLASSES.get(status // 100, "other")
            # a client that left mid-request: its own outcome, never a 4xx the server sent
            labels = (operation, "client_closed" if status == CLIENT_CLOSED_STATUS else kind)
            children = (self.requests.labels(*labels), self.duration.labels(*labels))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        self.in_flight.inc()
        try:
            yield
        finally:
            self.in_flight.dec()

    # persistence.database.Watcher
    def pool_changed(self, size: int, in_use: int, waiting: int) -> None:
        self.pool_size.set(size)
        self.pool_in_use.set(in_use)
        self.pool_waiting.set(waiting)

    def timed_out(self) -> None:
        self.timeouts.inc()

    def jwks_fetched(self, ok: bool) -> None:
        self.jwks_fetches.inc()
        if not ok:
            self.jwks_failures.inc()

    def spans_dropped(self, reason: str, count: int) -> None:
        """handlers/services/tracing.py: Dropped (called from the export thread too)."""
        self.spans_dropped_total.labels(reason).inc(count)

    def tool_called(self, tool: str, success: bool) -> None:
        self.tool_calls.labels(tool, "success" if success else "error").inc()

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition (Prometheus text, or OpenMetrics when accept asks for it) and its
        media type, summed over every process when there are several."""
        registry = self.registry
        directory = shared_directory()
        if directory is not None:
            _forget_dead_processes(directory)
            registry = CollectorRegistry()
            multiprocess_mode.MultiProcessCollector(registry, directory)  # type: ignore[no-untyped-call]
        encoder, media_type = choose_encoder(accept or "")
        return encoder(registry), media_type
