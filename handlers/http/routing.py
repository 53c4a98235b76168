"""Connexion's two routers, with a short way for the requests they route most.

Every request passes two Starlette routers in Connexion's pipeline: the docs' (/ui, which an
API request never matches) and the operations' (which finds the request's operationId). Each
walks its mounts and routes, building a scope for every route it tries. The same routes, with
the same patterns and conversions, are matched here without the scopes, and only two outcomes
are taken the short way, each with exactly the scope Connexion would pass on:

- the operations' router matches a route in full (path and method): the request goes on
  routed to that operation;
- the docs' router matches nothing at all, even with the trailing slash added or removed: the
  request goes on untouched.

Anything else (a path matched without its method, which is a 405; a redirect; a mount that is
not a router; an app mounted under a root path) goes through Starlette's router as before.
"""

from __future__ import annotations

from typing import Any

from connexion.middleware.abstract import ROUTING_CONTEXT
from connexion.middleware.routing import RoutingMiddleware, RoutingOperation
from connexion.middleware.swagger_ui import SwaggerUIMiddleware
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import Receive, Scope, Send

# What _match found: the route's operation, its path parameters (converted) and the path of
# its mounts.
Found = tuple[RoutingOperation, dict[str, Any], str]


class _Unsure:
    """Starlette's own router must decide."""


UNSURE = _Unsure()


def _match(routes: list[BaseRoute], method: str, path: str) -> Found | _Unsure | None:
    """The route Starlette's router would call for this request; None when no route matches it
    at all (Starlette would call its default); UNSURE for everything else."""
    partial = False
    for route in routes:
        if type(route) is Mount:
            found = route.path_regex.match(path)
            if found is None:
                continue
            if type(route.app) is not Router:
                return UNSURE
            params = found.groupdict()
            remaining = "/" + params.pop("path")
            inner = _match(route.app.routes, method, remaining)
            if inner is None or isinstance(inner, _Unsure):
                return inner
            leaf, leaf_params, prefix = inner
            converted = {k: route.param_convertors[k].convert(v) for k, v in params.items()}
            return leaf, {**converted, **leaf_params}, path[: -len(remaining)] + prefix
        if type(route) is Route:
            found = route.path_regex.match(path)
            if found is None:
                continue
            if route.methods and method not in route.methods:
                partial = True  # a later route may match in full; if none does, a 405
                continue
            if not isinstance(route.endpoint, RoutingOperation):
                return UNSURE
            params = {k: route.param_convertors[k].convert(v) for k, v in found.groupdict().items()}
            return route.endpoint, params, ""
        return UNSURE
    if partial:
        return UNSURE
    if path != "/":  # Starlette redirects to the other spelling when that one matches
        other = path.rstrip("/") if path.endswith("/") else path + "/"
        for route in routes:
            if isinstance(route, Mount | Route) and route.path_regex.match(other):
                return UNSURE
    return None


def _plain(scope: Scope) -> bool:
    return scope["type"] == "http" and not scope.get("root_path")


class DocsRouting(SwaggerUIMiddleware):  # type: ignore[misc]
    """Connexion's Swagger UI middleware; a request for none of its routes goes straight on."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if _plain(scope) and _match(self.router.routes, scope["method"], scope["path"]) is None:
            await self.app(dict(scope), receive, send)  # what its default passes on
            return
        await super().__call__(scope, receive, send)


class OperationRouting(RoutingMiddleware):  # type: ignore[misc]
    """Connexion's routing middleware; a request that matches an operation in full goes on
    with the routing context Connexion's RoutingOperation sets."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if _plain(scope):
            found = _match(self.router.routes, scope["method"], scope["path"])
            if isinstance(found, tuple):
                operation, params, base_path = found
                routed = dict(scope)
                routed.setdefault("path_params", {}).update(params)
                routed.setdefault("extensions", {}).setdefault(ROUTING_CONTEXT, {}).update(
                    {"api_base_path": base_path, "operation_id": operation.operation_id}
                )
                await operation.next_app(routed, receive, send)
                return
        await super().__call__(scope, receive, send)
