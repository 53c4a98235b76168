"""Logs: one line per request, JSON in production and readable text in development, through
structlog; every other library's log records (uvicorn, Connexion, Alembic) are rendered the same
way and carry the request id of the request they belong to. Nothing here ever logs a header."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any, BinaryIO, Literal, cast

import orjson
import structlog
from opentelemetry.trace import format_span_id, format_trace_id, get_current_span

LogFormat = Literal["json", "text"]
REQUESTS = "tasks_api.requests"

# Where the HTTP adapter keeps a request's id in its ASGI scope (under "extensions").
SCOPE_KEY = "tasks_api.request_id"
# Response headers a middleware adds to whatever answer the request gets, errors included
# (a list of (name, value) bytes pairs under "extensions"); handlers/http/observe.py adds them.
ANSWER_HEADERS = "tasks_api.answer_headers"
# A request line's path and user are capped: each can be as long as what a door lets in.
MAX_LOGGED_PATH = 1024
MAX_LOGGED_USER = 256
# The id of the request being served (X-Request-ID), for problem documents and log records.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def _add_request_id(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """The request's id, and its trace's id and span's when it is traced (W3C hex, as a
    tracing backend shows and searches them)."""
    current = request_id.get()
    if current is not None:
        event.setdefault("request_id", current)
    traced = get_current_span().get_span_context()
    if traced.is_valid:
        event.setdefault("trace_id", format_trace_id(traced.trace_id))
        event.setdefault("span_id", format_span_id(traced.span_id))
    return event


MAX_EVENT = 2048  # characters of a record's message: a library may quote a huge header


def _cap_event(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    message = event.get("event")
    if isinstance(message, str) and len(message) > MAX_EVENT:
        event["event"] = message[: MAX_EVENT - 1] + "…"
    return event


class _Stderr:
    """The process's stderr as it is when a line is written (never the one at configuration,
    which may since have been replaced), and a line that cannot be written is dropped: as with
    the standard library's handlers, logging never fails a request."""

    def write(self, data: bytes) -> None:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sys.stderr.buffer.write(data)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sys.stderr.flush()


# The per-request line's logger when it has a faster path than the standard library's.
_requests: Any = None


def _add_logger_name(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    event["logger"] = REQUESTS
    return event


def configure(level: str, log_format: LogFormat) -> None:
    """Route every log record to stderr through structlog's renderer, at level. In JSON, the
    line per request skips the standard library's logging machinery (it is the hot path: about
    half its cost) and goes straight to stderr, rendered with orjson, in the same shape."""
    global _requests
    stamped: list[Any] = [structlog.processors.TimeStamper(fmt="iso", utc=True), _add_request_id]
    shared: list[Any] = [
        structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name, _cap_event, *stamped,
    ]  # fmt: skip
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    # JSON lines carry a traceback as text; the console renderer prints exc_info itself.
    finish: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if log_format == "json":
        finish.append(structlog.processors.format_exc_info)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared, processors=[*finish, renderer]
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # The app's own line per request replaces uvicorn's access line.
    logging.getLogger("uvicorn.access").handlers[:] = []
    logging.getLogger("uvicorn.access").propagate = False
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    _requests = None
    if log_format == "json":
        # Bound once: a proxy from wrap_logger() would build a new bound logger on every call.
        _requests = structlog.wrap_logger(
            structlog.BytesLogger(cast(BinaryIO, _Stderr())),
            processors=[
                structlog.processors.add_log_level,
                _add_logger_name,
                *stamped,
                structlog.processors.JSONRenderer(serializer=orjson.dumps),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        ).bind()
        if not logging.getLogger(REQUESTS).isEnabledFor(logging.INFO):
            # LOG_LEVEL above info: no request lines
            _requests = structlog.wrap_logger(structlog.ReturnLogger(), processors=[])


def requests_logger() -> Any:
    return _requests if _requests is not None else structlog.get_logger(REQUESTS)
