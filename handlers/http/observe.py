"""Every request gets an id (X-Request-ID: the client's when it sends a sane one, else a new
one) on its answer, in its problem documents and in its log line: one line per request with
the operation, the user, the status, the duration and the number of SQL statements. Headers and
tokens are never logged."""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from handlers.context import app_path
from handlers.logs import ANSWER_HEADERS, SCOPE_KEY, request_id, requests_logger
from persistence.database import statement_count

HEADER = b"x-request-id"
logger = logging.getLogger(__name__)
SANE = re.compile(r"[\x21-\x7e]{1,128}")


def incoming_id(scope: Scope) -> str:
    """The client's request id when it sent exactly one sane value; else a new one."""
    sent = [value for name, value in scope.get("headers", []) if name == HEADER]
    if len(sent) == 1:
        value: str = sent[0].decode("latin-1")
        if SANE.fullmatch(value):
            return value
    return uuid.uuid4().hex


def _operation(scope: Scope) -> str | None:
    """The contract's operationId (Connexion reports it with the resolver's package prefix)."""
    routed = scope.get("extensions", {}).get("connexion_routing", {})
    operation: str | None = routed.get("operation_id")
    return operation.removeprefix("handlers.") if operation else None


def _user(scope: Scope) -> str | None:
    user = scope.get("extensions", {}).get("connexion_context", {}).get("user")
    if user is None:  # /mcp: the SDK's authenticated user
        token = getattr(scope.get("user"), "access_token", None)
        user = getattr(token, "subject", None)
    return str(user) if user is not None else None


class RequestLogMiddleware:
    """Outermost of ours: sees every request and the status it was answered with."""

    def __init__(self, app: ASGIApp, *, log_requests: bool = True) -> None:
        self.app = app
        self.log_requests = log_requests
        self.log = requests_logger()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = incoming_id(scope)
        scope.setdefault("extensions", {})[SCOPE_KEY] = rid
        id_token, count_token = request_id.set(rid), statement_count.set([0])
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER]
                extra = scope["extensions"].get(ANSWER_HEADERS, [])
                headers += [*extra, (HEADER, rid.encode("latin-1"))]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            counted = statement_count.get()
            if self.log_requests:
                try:
                    self._line(scope, status, time.perf_counter() - started, counted)
                except Exception:  # a log line never fails the request it describes
                    logger.exception("could not write the log line of a request")
            request_id.reset(id_token)
            statement_count.reset(count_token)

    def _line(self, scope: Scope, status: int, seconds: float, counted: list[int] | None) -> None:
        path = app_path(scope)
        fields: dict[str, Any] = {
            "method": scope["method"],
            "path": path,
            "operation": _operation(scope) or ("mcp" if path == "/mcp" else None),
            "user": _user(scope),
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "statements": counted[0] if counted else 0,
            "pid": os.getpid(),  # which worker
        }
        if status >= 500:
            self.log.error("request", **fields)
        else:
            self.log.info("request", **fields)
