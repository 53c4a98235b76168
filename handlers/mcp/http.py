"""MCP over Streamable HTTP at /mcp, in the API's own process and pipeline.

Stateless (no session kept between requests), so any worker can answer any request, on the
current protocol revision and the handshake-era ones before it (the SDK serves both). Tokens go
through the SDK's bearer hook into the API's own verifier: a missing or bad token is 401 with a
`WWW-Authenticate` challenge that points at the RFC 9728 metadata published here.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import (
    AuthenticatedUser,
    BearerAuthBackend,
    RequireAuthMiddleware,
)
from mcp.server.auth.provider import AccessToken
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import AnyHttpUrl
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from handlers.context import app_path, app_state
from handlers.logs import SCOPE_KEY
from handlers.mcp.server import Caller
from handlers.problems import MethodNotAllowed, Unauthorized
from handlers.security import TokenVerifier
from handlers.settings import Settings

PATH = "/mcp"
METADATA_PATH = "/.well-known/oauth-protected-resource" + PATH

logger = logging.getLogger(__name__)


class AccessTokens:
    """The SDK's TokenVerifier hook, answered by the API's own verifier (one source of truth:
    the same algorithms, keys, issuer, audience, leeway and claim checks as REST)."""

    def __init__(self, verifier: TokenVerifier) -> None:
        self.verifier = verifier

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            claims = await self.verifier.verify(token)
        except Unauthorized:
            return None
        except Exception:  # e.g. the JWKS cannot be fetched: as REST, the token is refused
            logger.warning("a bearer token could not be verified", exc_info=True)
            return None
        return AccessToken(
            token=token,
            client_id=str(claims.get("azp") or claims.get("client_id") or "tasks-api"),
            scopes=[],
            subject=claims["sub"],
            claims=claims,
        )


async def caller(ctx: ServerRequestContext[Any, Any]) -> Caller:
    """The HTTP request's verified token and app state, for the tool call it carries."""
    request = ctx.request
    scope: Scope = getattr(request, "scope", {})
    user = scope.get("user")
    if not isinstance(user, AuthenticatedUser):  # the SDK answered 401 before; never reached
        raise PermissionError("no verified token on this request")
    token = user.access_token
    request_id = scope.get("extensions", {}).get(SCOPE_KEY)
    return Caller(
        token.token, str(token.subject), scope["state"], scope.get("root_path", ""), request_id
    )


def metadata(settings: Settings) -> dict[str, Any]:
    """RFC 9728 protected-resource metadata: this resource, and who issues its tokens."""
    document: dict[str, Any] = {
        "resource": settings.base_url() + PATH,
        "bearer_methods_supported": ["header"],
        "resource_name": "Tasks API",
    }
    if settings.jwt_issuer is not None:
        document["authorization_servers"] = [settings.jwt_issuer]
    if settings.jwt_jwks_url is not None:
        document["resource_signing_alg_values_supported"] = list(settings.jwks_algorithms())
    return document


def _transport_security(settings: Settings) -> TransportSecuritySettings | None:
    """DNS-rebinding protection for a server on loopback (the SDK's own default there)."""
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        return None
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
    )


@asynccontextmanager
async def serving(
    server: Server[Any], settings: Settings, verifier: TokenVerifier
) -> AsyncIterator[ASGIApp]:
    """The /mcp endpoint (auth included) while the block runs."""
    manager = StreamableHTTPSessionManager(
        app=server,
        json_response=True,
        stateless=True,
        security_settings=_transport_security(settings),
    )
    challenge = AnyHttpUrl(settings.base_url() + METADATA_PATH)
    endpoint = RequireAuthMiddleware(StreamableHTTPASGIApp(manager), [], challenge)
    app = AuthenticationMiddleware(
        AuthContextMiddleware(endpoint), backend=BearerAuthBackend(AccessTokens(verifier))
    )
    async with manager.run():
        yield app


class McpMiddleware:
    """Routes /mcp and its metadata to MCP; everything else goes on down the API's pipeline."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.metadata = metadata(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path, method = app_path(scope), scope["method"]
            endpoint = app_state(scope).mcp if path == PATH else None
            if endpoint is not None:
                if method != "POST":  # stateless: no GET stream to hold open, no session to end
                    raise MethodNotAllowed(
                        "The MCP endpoint answers POST only (stateless Streamable HTTP).",
                        headers={"Allow": "POST"},
                    )
                await endpoint(scope, receive, send)
                return
            if path == METADATA_PATH:
                if method not in ("GET", "HEAD"):
                    raise MethodNotAllowed(
                        "Read the metadata with GET.", headers={"Allow": "GET, HEAD"}
                    )
                await JSONResponse(self.metadata)(scope, receive, send)
                return
        await self.app(scope, receive, send)
