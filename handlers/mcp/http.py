"""MCP over Streamable HTTP at /mcp, in the API's own process and pipeline.

Stateless (no session kept between requests), so any worker can answer any request, on the
current protocol revision and the handshake-era ones before it (the SDK serves both). Tokens go
through the SDK's bearer hook into the API's own verifier: a missing or bad token is 401 with a
`WWW-Authenticate` challenge that points at the RFC 9728 metadata published here.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import mcp_types as types
import orjson
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
from starlette.datastructures import Headers
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from handlers.asgi import MAX_BODY_BYTES, read_body, replay
from handlers.core.errors import MethodNotAllowed, Unauthorized
from handlers.core.problems import PROBLEM_JSON, problem_body, problem_json
from handlers.mcp.server import Caller, invalid_request_id
from handlers.services.security import TokenVerifier
from handlers.services.settings import Settings
from handlers.services.state import app_path, app_state

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
    return Caller(
        str(user.access_token.subject), scope["state"], scope.get("root_path", ""),
        counted=True,  # its POST to /mcp was (handlers/mcp/http.py: _Gate)
    )  # fmt: skip


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
    """DNS-rebinding protection for a server on loopback (the SDK's own default there): the
    Host and Origin of loopback, of PUBLIC_URL (a same-host reverse proxy passes the public
    name on), of ALLOWED_HOSTS and of CORS_ORIGINS (named ones)."""
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        return None
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", *settings.allowed_hosts]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    origins += [f"{scheme}://{host}" for host in settings.allowed_hosts
                for scheme in ("https", "http")]  # fmt: skip
    origins += [origin for origin in settings.cors_origins if origin != "*"]
    if settings.public_url is not None:
        public = urlsplit(settings.public_url)
        hosts.append(public.netloc.lower())
        origins.append(f"{public.scheme}://{public.netloc.lower()}")
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


Admit = Callable[[Scope, str], Awaitable[None]]


class _Gate:
    """What every authenticated POST to /mcp passes before the SDK reads it: its user's rate
    limit (initialize, ping and tools/list count as any request does; a tool call counts once),
    the request body limit REST has, and a JSON-RPC `id` of a type the protocol allows (the SDK
    takes a request with any other id for a notification: 202, and never an answer)."""

    def __init__(self, app: ASGIApp, admit: Admit) -> None:
        self.app = app
        self.admit = admit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = scope.get("user")
        if isinstance(user, AuthenticatedUser):  # RequireAuthMiddleware let nobody else in
            await self.admit(scope, str(user.access_token.subject))
        body = await read_body(receive, Headers(scope=scope))
        if invalid_request_id(body):
            detail = "Invalid Request: `id` must be a string or an integer"
            await JSONResponse(
                {"jsonrpc": "2.0", "id": None,
                 "error": {"code": types.INVALID_REQUEST, "message": detail}},
                status_code=400,
            )(scope, receive, send)  # fmt: skip
            return
        await self.app(scope, replay(receive, body), send)


@asynccontextmanager
async def serving(
    server: Server[Any], settings: Settings, verifier: TokenVerifier, admit: Admit
) -> AsyncIterator[ASGIApp]:
    """The /mcp endpoint (auth included) while the block runs."""
    manager = StreamableHTTPSessionManager(
        app=server,
        json_response=True,
        stateless=True,
        security_settings=_transport_security(settings),
        max_request_body_size=MAX_BODY_BYTES,
    )
    challenge = AnyHttpUrl(settings.base_url() + METADATA_PATH)
    gate = _Gate(StreamableHTTPASGIApp(manager), admit)
    endpoint = RequireAuthMiddleware(gate, [], challenge)
    app = AuthenticationMiddleware(
        AuthContextMiddleware(endpoint), backend=BearerAuthBackend(AccessTokens(verifier))
    )
    async with manager.run():
        yield app


def _problem_bodies(send: Send) -> Send:
    """The SDK's own refusals (text/plain "Invalid Host header", OAuth's {"error": ...}, an
    empty 406) as problem documents like every other of the API's, headers such as
    WWW-Authenticate kept. JSON-RPC errors stay as they are: MCP clients read those."""
    held: Message | None = None
    chunks: list[bytes] = []

    async def send_problems(message: Message) -> None:
        nonlocal held
        if message["type"] == "http.response.start" and message["status"] >= 400:
            held = message
            return
        if held is None:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        start, body = held, b"".join(chunks)
        problem = _as_problem(start["status"], body)
        if problem is None:
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return
        kept = [(k, v) for k, v in start.get("headers", [])
                if k.lower() not in (b"content-type", b"content-length")]  # fmt: skip
        kept += [(b"content-type", PROBLEM_JSON.encode()),
                 (b"content-length", str(len(problem)).encode())]  # fmt: skip
        await send({**start, "headers": kept})
        await send({"type": "http.response.body", "body": problem})

    return send_problems


def _as_problem(status: int, body: bytes) -> bytes | None:
    """The problem document for an SDK refusal, or None for a JSON-RPC error (kept)."""
    try:
        said = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        said = body.decode("utf-8", "replace").strip()
    if isinstance(said, dict):
        if "jsonrpc" in said:
            return None
        said = said.get("error_description") or said.get("error")
    detail = str(said) if said else None
    return problem_json(problem_body(status, detail)).encode()


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
                await endpoint(scope, receive, _problem_bodies(send))
                return
            if path == METADATA_PATH:
                if method not in ("GET", "HEAD"):
                    raise MethodNotAllowed(
                        "Read the metadata with GET.", headers={"Allow": "GET, HEAD"}
                    )
                await JSONResponse(self.metadata)(scope, receive, send)
                return
        await self.app(scope, receive, send)
