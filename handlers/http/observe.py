"""Every request gets an id (X-Request-ID: the client's when it sends a sane one, else a new
one) on its answer, in its problem documents and in its log line: one line per request with
the operation, the user, the status, the duration and the number of SQL statements. Headers and
tokens are never logged. Each request is also counted and timed for GET /metrics (Prometheus),
which MetricsMiddleware serves."""

from __future__ import annotations

import hmac
import logging
import os
import re
import time
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from handlers.core.errors import truncate
from handlers.http.problems import problem_asgi
from handlers.services.logs import (
    ANSWER_HEADERS,
    MAX_LOGGED_PATH,
    MAX_LOGGED_USER,
    SCOPE_KEY,
    request_id,
    requests_logger,
)
from handlers.services.metrics import Metrics
from handlers.services.state import app_path
from persistence.database import statement_count

FIELD = "X-Request-ID"
HEADER = FIELD.lower().encode()
logger = logging.getLogger(__name__)
SANE = re.compile(r"[\x21-\x7e]{1,128}")


def incoming_id(scope: Scope) -> str:
    """The client's request id when it sent exactly one sane value; else a new one."""
    sent = [value for name, value in scope.get("headers", []) if name == HEADER]
    if len(sent) == 1:
        value: str = sent[0].decode("latin-1")
        if SANE.fullmatch(value):
            return value
    return os.urandom(16).hex()  # 128 random bits, as uuid4().hex wrote them, in a fifth the time


def _operation(scope: Scope) -> str | None:
    """The contract's operationId (Connexion reports it with the resolver's package prefix)."""
    routed = scope.get("extensions", {}).get("connexion_routing", {})
    operation: str | None = routed.get("operation_id")
    return operation.removeprefix("handlers.") if operation else None


# What requests that are no operation of the contract are counted as.
_NOT_OPERATIONS = {"/mcp": "mcp", "/metrics": "metrics"}


def _label(scope: Scope, path: str) -> str:
    """The operationId, else `mcp` or `metrics`, else `other` (docs, unknown paths)."""
    return _operation(scope) or _NOT_OPERATIONS.get(path, "other")


def _user(scope: Scope) -> str | None:
    user = scope.get("extensions", {}).get("connexion_context", {}).get("user")
    if user is None:  # /mcp: the SDK's authenticated user
        token = getattr(scope.get("user"), "access_token", None)
        user = getattr(token, "subject", None)
    return str(user) if user is not None else None


class RequestLogMiddleware:
    """Outermost of ours: sees every request and the status it was answered with."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, log_requests: bool = True) -> None:
        self.app = app
        self.log_requests = log_requests
        self.log = requests_logger()
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Every request gets an `extensions` dict of its own: Granian 2.8 hands all requests
        # one shared dict, and Connexion keeps each request's route and security context (the
        # token's user) in it, so without this one request could act as another's user.
        rid = incoming_id(scope)
        scope["extensions"] = {**scope.get("extensions", {}), SCOPE_KEY: rid}
        id_token, count_token = request_id.set(rid), statement_count.set([0])
        status = 500
        started = time.perf_counter()
        observed = False

        def observe() -> None:
            """Count and time the request, once: as its answer's last part leaves, so a client
            that has its answer finds it counted (a scrape right after sees it)."""
            nonlocal observed
            if not observed:
                observed = True
                seconds = time.perf_counter() - started
                self.metrics.observe(_label(scope, app_path(scope)), status, seconds)

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER]
                extra = scope["extensions"].get(ANSWER_HEADERS, [])
                headers += [*extra, (HEADER, rid.encode("latin-1"))]
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                try:
                    observe()
                except Exception:  # a metric never fails the request it describes
                    logger.exception("could not count a request")
            await send(message)

        try:
            with self.metrics.serving():
                await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            path = app_path(scope)
            counted = statement_count.get()
            try:
                observe()  # a request that ended without a whole answer
                if self.log_requests:
                    self._line(scope, path, status, seconds, counted)
            except Exception:  # a log line or metric never fails the request it describes
                logger.exception("could not log or count a request")
            request_id.reset(id_token)
            statement_count.reset(count_token)

    def _line(
        self, scope: Scope, path: str, status: int, seconds: float, counted: list[int] | None
    ) -> None:
        user = _user(scope)
        fields: dict[str, Any] = {
            "method": scope["method"],
            # Capped: a path or a subject can be as long as what the server lets in (a head of
            # 64 KiB; over MCP's stdio, a tool argument of any length).
            "path": truncate(path, MAX_LOGGED_PATH),
            "operation": _operation(scope) or _NOT_OPERATIONS.get(path),
            "user": None if user is None else truncate(user, MAX_LOGGED_USER),
            "client": client[0] if (client := scope.get("client")) else None,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "statements": counted[0] if counted else 0,
            "pid": os.getpid(),  # which worker
        }
        if status >= 500:
            self.log.error("request", **fields)
        else:
            self.log.info("request", **fields)


class MetricsMiddleware:
    """GET /metrics: the Prometheus exposition (OpenMetrics when the scraper asks for it). Not
    an operation of the contract; open unless METRICS_TOKEN is set, then only for that bearer
    token (a wrong one is a failed authentication, limited per address like any other)."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, token: str | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.expected = None if token is None else token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or app_path(scope) != "/metrics":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", [])
        if scope["method"] not in ("GET", "HEAD"):
            detail = "GET /metrics; it takes no other method."
            answer = problem_asgi(405, detail, {"Allow": "GET, HEAD"})
        elif self.expected is not None and not self._authorized(headers):
            detail = "GET /metrics needs the bearer token the operator configured."
            answer = problem_asgi(401, detail, {"WWW-Authenticate": 'Bearer realm="metrics"'})
        else:
            accept = b", ".join(v for k, v in headers if k == b"accept").decode("latin-1")
            body, media_type = self.metrics.render(accept)
            answer = Response(body, media_type=media_type, headers={"Cache-Control": "no-store"})
        await answer(scope, receive, send)

    def _authorized(self, headers: list[tuple[bytes, bytes]]) -> bool:
        sent = [value for name, value in headers if name == b"authorization"]
        if len(sent) != 1:
            return False
        scheme, _, token = sent[0].partition(b" ")
        assert self.expected is not None  # noqa: S101 - only called when a token is set
        matches = hmac.compare_digest(token.strip(b" "), self.expected)
        return scheme.lower() == b"bearer" and matches
