"""Rate limits, counted in PostgreSQL so every worker and host shares them (exactly, or within
the bound of the batched mode: handlers/services/rate_counter.py).

Per user: at most RATE_LIMIT_PER_MINUTE authenticated requests per calendar minute (every
POST to /mcp and every stdio tool call included). Per client address (behind trusted
proxies, the client's own: handlers/http/forwarded.py): at most AUTH_FAILURE_LIMIT_PER_MINUTE
requests that fail authentication; past it, that address's failing requests get 429 for the
rest of the minute (from each worker as soon as that worker sees one more of its failures),
while its requests with a valid token are served as ever. Limited answers carry the
RateLimit-Policy and RateLimit fields of draft-ietf-httpapi-ratelimit-headers; a refused one is
429 with Retry-After.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from handlers.core.errors import TooManyRequests
from handlers.http.problems import problem_asgi
from handlers.services.logs import ANSWER_HEADERS
from handlers.services.state import app_state
from persistence.database import DatabaseUnavailable
from persistence.rate_limits import WINDOW_SECONDS

logger = logging.getLogger(__name__)


def bucket(kind: str, who: str) -> str:
    """The counter's name; a long subject (a token may carry one of kilobytes) by its hash."""
    if len(who) > 128:
        who = "sha256:" + hashlib.sha256(who.encode()).hexdigest()
    return f"{kind}:{who}"


def _headers(fields: list[tuple[bytes, bytes]], reset: int) -> dict[str, str]:
    """A refusal's headers: the fields, and when to retry."""
    return {"Retry-After": str(reset), **{k.decode(): v.decode() for k, v in fields}}


def _fields(policy: str, quota: int, hits: int, reset: int) -> list[tuple[bytes, bytes]]:
    return [
        (b"ratelimit-policy", f'"{policy}";q={quota};w={WINDOW_SECONDS}'.encode()),
        (b"ratelimit", f'"{policy}";r={max(0, quota - hits)};t={reset}'.encode()),
    ]


def _count_refusal(scope: Scope, limit: str) -> None:
    metrics = app_state(scope).metrics
    if metrics is not None:
        metrics.rate_limited.labels(limit).inc()


class UserQuota:
    """RATE_LIMIT_PER_MINUTE for each user, whichever door the request came in by: REST (through
    UserRateLimitMiddleware) and every POST to /mcp (handlers/mcp/http.py)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute

    async def admit(self, scope: Scope, user: str) -> None:
        """Count one request of user's; past the quota, TooManyRequests. The answer it gets,
        errors raised further in included, carries the RateLimit fields."""
        if not self.per_minute:
            return
        count = await app_state(scope).counter.hit(bucket("user", user))
        reset = max(1, math.ceil(count.reset_seconds))
        fields = _fields("per-user", self.per_minute, count.hits, reset)
        if count.hits > self.per_minute:
            _count_refusal(scope, "per-user")
            raise TooManyRequests(
                f"More than {self.per_minute} requests this minute; retry in {reset} s.",
                headers=_headers(fields, reset),
            )
        scope.setdefault("extensions", {})[ANSWER_HEADERS] = fields


class UserRateLimitMiddleware:
    """After security (it needs the token's subject); before anything else is done for it."""

    def __init__(self, app: ASGIApp, *, quota: UserQuota) -> None:
        self.app = app
        self.quota = quota

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        extensions = scope.get("extensions", {})
        user = extensions.get("connexion_context", {}).get("user")
        if scope["type"] == "http" and user is not None:
            await self.quota.admit(scope, str(user))
        await self.app(scope, receive, send)


class AuthFailureLimitMiddleware:
    """Outside the problem renderer, so it sees the 401 a request was answered with. Only a
    request that fails authentication is ever refused: a valid token from an address over the
    limit (an attacker behind the same NAT, proxy or load balancer) is served, and probes and
    public paths, which never fail authentication, are never limited."""

    def __init__(self, app: ASGIApp, *, per_minute: int) -> None:
        self.app = app
        self.per_minute = per_minute
        # Addresses this process knows are over the limit, until when (monotonic). Only a cache
        # of the shared count: a worker learns it from the counter on the address's next failure.
        self.blocked: dict[str, float] = {}

    def _blocked_for(self, address: str) -> int | None:
        """Seconds this address stays refused, by this process's cache of the shared count."""
        until = self.blocked.get(address)
        if until is None:
            return None
        left = until - time.monotonic()
        if left <= 0:
            del self.blocked[address]
            return None
        return math.ceil(left)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] != "http" or not self.per_minute or not client:
            await self.app(scope, receive, send)
            return
        address = str(client[0])
        replaced = False

        async def send_counting_failures(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return  # the 401's body, which the 429 replaced
            if message["type"] == "http.response.start" and message["status"] == 401:
                reset = self._blocked_for(address)
                if reset is None:  # not known to be over: count this failure in the shared store
                    try:
                        count = await app_state(scope).counter.hit(bucket("auth", address))
                    except DatabaseUnavailable:  # outside the problem renderer: fail open, 401
                        logger.warning("could not count a failed authentication: database down")
                        await send(message)
                        return
                    if count.hits > self.per_minute:
                        reset = max(1, math.ceil(count.reset_seconds))
                        if len(self.blocked) > 100_000:
                            self.blocked.clear()
                        self.blocked[address] = time.monotonic() + reset
                if reset is not None:
                    replaced = True
                    await self._refuse(scope, receive, send, reset)
                    return
            await send(message)

        await self.app(scope, receive, send_counting_failures)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, reset: int) -> None:
        _count_refusal(scope, "auth-failures")
        fields = _fields("auth-failures", self.per_minute, self.per_minute + 1, reset)
        headers = _headers(fields, reset)
        detail = f"Too many requests from this address failed authentication; retry in {reset} s."
        await problem_asgi(429, detail, headers)(scope, receive, send)
