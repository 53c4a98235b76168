"""What the lifespan hands to each request, and the helper that gives it a connection."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from connexion.context import operation as current_operation
from connexion.context import scope as request_scope
from starlette.responses import Response

from persistence.database import Connection, Database

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from handlers.metrics import Metrics
    from handlers.security import TokenVerifier
    from persistence.cursors import Cursors

STATE_KEY = "tasks_api"
# Set (under the ASGI scope's "extensions") on a request already counted against its user's
# rate limit, so a tool call served in process is one request, not two.
COUNTED = "tasks_api.counted"


@dataclass(frozen=True)
class AppState:
    """Per-process resources, created by the lifespan and shared by all requests."""

    database: Database
    verifier: TokenVerifier
    cursors: Cursors
    require_if_match: bool = False
    require_idempotency_key: bool = False
    idempotency_key_ttl_seconds: int = 86400
    mcp: ASGIApp | None = None  # the /mcp endpoint (handlers/mcp/http.py)
    metrics: Metrics | None = None  # what GET /metrics reports (handlers/metrics.py)


def app_state(scope: Any) -> AppState:
    """The AppState of the app serving this ASGI scope."""
    state: AppState = scope["state"][STATE_KEY]
    return state


def state() -> AppState:
    """The AppState of the current request's app."""
    return app_state(request_scope)


def request_header(name: str) -> str | None:
    """A request header of the current request, its repeated lines joined with ", " (RFC 9110
    §5.3), or None when absent."""
    wanted = name.lower().encode("latin-1")
    lines = [v.decode("latin-1") for k, v in request_scope["headers"] if k == wanted]
    return ", ".join(lines) if lines else None


def database() -> Database:
    """The database of the current request's app."""
    return app_state(request_scope).database


def connection() -> AbstractAsyncContextManager[Connection]:
    """A connection for the current request's one statement, which is atomic on its own."""
    return database().connection()


def transaction() -> AbstractAsyncContextManager[Connection]:
    """A connection in a transaction, for work of several statements: committed when the block
    ends, rolled back when it raises."""
    return database().transaction()


Reply = tuple[Any, int, dict[str, str]] | Response


def reply(body: Any, status: int, headers: dict[str, str] | None = None) -> Reply:
    """A handler's answer, with the media type the contract declares for this status.

    Connexion merges the media types of all of an operation's responses and cannot choose
    between application/json and application/problem+json (spec-first/connexion#1956).
    """
    all_headers = dict(headers or {})
    if body is None:  # e.g. 204: no body, so no Content-Type either
        return Response(status_code=status, headers=all_headers)
    declared = current_operation.response_definition(str(status)).get("content", {})
    if len(declared) == 1:
        all_headers["Content-Type"] = next(iter(declared))
    return body, status, all_headers


def full_path(scope: Any) -> str:
    """The request's path as the client sent it. ASGI's `path` includes `root_path` (a server
    mounted under a prefix); servers that predate that rule send it without."""
    root: str = scope.get("root_path", "")
    path: str = scope["path"]
    return path if path.startswith(root) else root + path


def app_path(scope: Any) -> str:
    """The request's path within the app, without the prefix it is mounted under."""
    root: str = scope.get("root_path", "")
    path: str = scope["path"]
    return path.removeprefix(root) if root and path.startswith(root) else path


def child_location(child_id: object) -> str:
    """The URL path of a resource created under the current request's path."""
    return quote(f"{full_path(request_scope).rstrip('/')}/{child_id}", safe="/")
