"""The path's `user_id` must be the token's subject: enforced here, once, for every operation."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from handlers.core.errors import Forbidden


class OwnershipMiddleware:
    """Runs after security and before validation; a foreign user_id is a 403 for every verb."""

    def __init__(self, next_app: ASGIApp) -> None:
        self.next_app = next_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            owner = scope.get("path_params", {}).get("user_id")
            context = scope.get("extensions", {}).get("connexion_context", {})
            if owner is not None and owner != context.get("user"):
                raise Forbidden("The token's subject does not own this path.")
        await self.next_app(scope, receive, send)
