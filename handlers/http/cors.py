"""CORS for frontends on other origins (CORS_ORIGINS): Starlette's CORSMiddleware, told by the
contract what to allow.

- A preflight (OPTIONS with Origin and Access-Control-Request-Method) to a path of the contract
  is answered here, with the methods that path has, the request headers the operations read
  (Authorization, Content-Type, their header parameters, X-Request-ID) and
  Access-Control-Max-Age. One that asks for an origin, method or header not allowed is a 400
  problem with no Access-Control-* field, so the browser refuses the call. A preflight to any
  other path goes on to the API, which answers it as any OPTIONS request (404 or 405).
- Every answer to an allowed origin, errors included (this runs outside the API's error
  handling), names that origin and exposes the response headers the contract documents (ETag,
  Location, Idempotent-Replayed, Retry-After, RateLimit, ...) and X-Request-ID.
- A request from any other origin is served as if CORS were off: not one Access-Control-* field,
  so the browser withholds the answer from the page. Requests without Origin (servers, curl)
  pass straight through.

/mcp follows the same rules, for browser-based MCP clients.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from contracts.document import Document, operations, resolve
from handlers.http.observe import FIELD as REQUEST_ID
from handlers.http.problems import MethodsByPath, problem_asgi
from handlers.services.state import app_path

# The MCP endpoint (handlers/mcp/http.py): POST only, stateless Streamable HTTP, whose clients
# send the protocol version they speak and, where a server gave one, a session id.
MCP_PATHS: dict[str, dict[str, object]] = {"/mcp": {"post": {}}}
MCP_REQUEST_HEADERS = ("Mcp-Protocol-Version", "Mcp-Session-Id")
# Fields the server itself adds to answers, besides the ones the contract documents.
SERVER_HEADERS = (REQUEST_ID, "Allow")


def request_headers(contract: Document) -> list[str]:
    """The headers a browser must be allowed to send: the contract's header parameters,
    Authorization for its bearer scheme, Content-Type for its bodies, and X-Request-ID."""
    schemes = contract.get("components", {}).get("securitySchemes", {}).values()
    names = {REQUEST_ID}
    if any(scheme.get("scheme", "").lower() == "bearer" for scheme in schemes):
        names.add("Authorization")
    for operation in operations(contract):
        if "requestBody" in operation.spec:
            names.add("Content-Type")
        names.update(p["name"] for p in operation.parameters if p.get("in") == "header")
    return sorted(names)


def response_headers(contract: Document) -> list[str]:
    """The headers the contract documents on any answer, and the ones the server adds."""
    answers = [r for op in operations(contract) for r in op.spec.get("responses", {}).values()]
    answers = [resolve(contract, answer) for answer in answers]
    names = {name for answer in answers for name in answer.get("headers", {})}
    return sorted(names | set(SERVER_HEADERS))


class ContractCORS:
    """CORS by Starlette's CORSMiddleware, with the methods of each path of the contract."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        contract: Document,
        origins: tuple[str, ...],
        allow_credentials: bool,
        max_age: int,
        mcp: bool,
    ) -> None:
        self.app = app
        paths = {**contract["paths"], **(MCP_PATHS if mcp else {})}
        allowed = request_headers(contract) + (list(MCP_REQUEST_HEADERS) if mcp else [])
        exposed = response_headers(contract)

        def cors(methods: list[str]) -> CORSMiddleware:
            return CORSMiddleware(
                app, allow_origins=origins, allow_methods=methods, allow_headers=allowed,
                allow_credentials=allow_credentials, expose_headers=exposed, max_age=max_age,
            )  # fmt: skip

        self._methods = MethodsByPath(paths)
        # One of Starlette's per set of methods a path has; it judges that path's preflights.
        self._by_methods: dict[str, CORSMiddleware] = {}
        for item in paths.values():
            allow = self._methods.allow_for(item)
            self._by_methods.setdefault(allow, cors(allow.split(", ")))
        self._cors = cors([])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            allow = self._methods.allow(app_path(scope))
            if allow is not None:
                response = self._by_methods[allow].preflight_response(request_headers=headers)
                if response.status_code >= 400:
                    refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")
                    response = problem_asgi(
                        400, f"This cross-origin request is not allowed (its {refused}).", {}
                    )
                await response(scope, receive, send)
                return
        if self._cors.is_allowed_origin(origin):
            await self._cors.simple_response(scope, receive, send, request_headers=headers)
        else:
            await self.app(scope, receive, send)
