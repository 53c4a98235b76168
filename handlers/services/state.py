"""What the lifespan hands to every request (AppState), and where a request is (its path)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from handlers.core.context import Services
from persistence.database import Database

if TYPE_CHECKING:
    from handlers.services.metrics import Metrics
    from handlers.services.rate_counter import RateCounter
    from handlers.services.security import TokenVerifier

STATE_KEY = "tasks_api"


@dataclass(frozen=True)
class AppState:
    """Per-process resources, created by the lifespan and shared by all requests: what the
    operations use (services), and what the doors use besides."""

    services: Services
    verifier: TokenVerifier
    counter: RateCounter  # counts requests against the rate limits (services/rate_counter.py)
    mcp: Callable[..., Awaitable[None]] | None = None  # the /mcp endpoint (an ASGI app)
    metrics: Metrics | None = None  # what GET /metrics reports (handlers/services/metrics.py)

    @property
    def database(self) -> Database:
        return self.services.database


def app_state(scope: Any) -> AppState:
    """The AppState of the app serving this ASGI scope."""
    state: AppState = scope["state"][STATE_KEY]
    return state


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
