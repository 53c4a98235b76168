"""The short ways through Connexion's routers (handlers/http/routing.py) pass on exactly what
Connexion's own routers would: for any method and path, the next layer gets the same routing
context and path parameters, or the same answer (404, 405, a redirect) is sent."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

from connexion.middleware.abstract import ROUTING_CONTEXT
from connexion.middleware.routing import RoutingMiddleware
from connexion.middleware.swagger_ui import SwaggerUIMiddleware
from connexion.spec import Specification
from hypothesis import example, given, settings
from hypothesis import strategies as st
from starlette.types import ASGIApp, Receive, Scope, Send

from contracts.document import load
from handlers.http.operations import resolver
from handlers.http.routing import DocsRouting, OperationRouting

SEGMENTS = ["api", "u-1", "tasks", "complete", "ui", "openapi.json", "healthz", "readyz", "mcp",
            "3fa85f64-5717-4562-b3fc-2c963f66afa6", "", "%20", "a b", "..", "ü"]  # fmt: skip
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]


class NextLayer:
    """The layer after the router: records what reaches it."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def __call__(self, scope: Scope, _receive: Receive, _send: Send) -> None:
        context = scope.get("extensions", {}).get(ROUTING_CONTEXT)
        self.seen.append(("next", context, scope.get("path_params")))


NEXT = NextLayer()
BUILT: dict[type[Any], ASGIApp] = {}


def built(middleware: type[Any]) -> ASGIApp:
    """The middleware in front of NEXT, with the contract added (once)."""
    if middleware not in BUILT:
        BUILT[middleware] = middleware(NEXT)
        BUILT[middleware].add_api(Specification.load(load()), resolver=resolver())  # type: ignore[attr-defined]
    return BUILT[middleware]


def routed(middleware: type[Any], method: str, path: str) -> list[Any]:
    """What reaches the next layer, and what is sent, for one request."""
    NEXT.seen = seen = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        seen.append(("sent", message.get("status"), message.get("body")))

    async def call() -> None:
        scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
                 "root_path": "", "query_string": b"", "headers": [], "scheme": "http",
                 "server": ("127.0.0.1", 8000)}  # fmt: skip
        try:
            await built(middleware)(scope, receive, send)
        except Exception as error:  # for the exception layer above, in the app
            seen.append(("raised", repr(error), None))

    asyncio.run(call())
    return seen


@settings(max_examples=300, deadline=None)
@example(method="GET", segments=["openapi.json", ""])  # a redirect to the other spelling
@example(method="GET", segments=["ui"])
@example(method="POST", segments=["ui", "index.html"])
@example(method="PATCH", segments=["api", "u-1", "tasks", "3fa85f64-5717-4562-b3fc-2c963f66afa6"])
@example(method="DELETE", segments=["api", "u-1", "tasks"])  # a 405
@example(method="GET", segments=["api", "u-1", "tasks", ""])
@given(
    method=st.sampled_from(METHODS),
    segments=st.lists(st.sampled_from(SEGMENTS), min_size=0, max_size=6),
)
def test_the_short_ways_pass_on_what_connexion_would(method: str, segments: list[str]) -> None:
    path = "/" + "/".join(segments)
    assert routed(OperationRouting, method, path) == routed(RoutingMiddleware, method, path)
    assert routed(DocsRouting, method, path) == routed(SwaggerUIMiddleware, method, path)


def test_an_operation_is_found_with_its_path_parameters() -> None:
    task = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
    [(_, context, params)] = routed(OperationRouting, "PATCH", f"/api/u-1/tasks/{task}/complete")
    assert context == {"api_base_path": "", "operation_id": "handlers.tasks.complete_task"}
    assert params == {"user_id": "u-1", "task_id": task}
