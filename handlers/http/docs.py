"""Serves the contract as written at /openapi.json and /openapi.yaml: with its $refs and named
schemas, and with `servers` as authored (or naming the prefix the app is mounted under).

Connexion 3.3 serves the spec with every $ref inlined, so clients generated from it get
anonymous types (spec-first/connexion#2127; the upstream fix, #2128, is unreleased). This
middleware sits before Connexion's Swagger UI middleware (MiddlewarePosition.BEFORE_SWAGGER) and
answers those two paths itself; /ui is still Connexion's. When the fix ships, drop it for
`SwaggerUIOptions(resolve_spec_refs=False)`.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from contracts.document import CONTRACT
from handlers.services.state import app_path


class AuthoredSpecMiddleware:
    """Answers GET /openapi.json and /openapi.yaml with the contract file's own content."""

    def __init__(self, next_app: ASGIApp, *, document: dict[str, Any]) -> None:
        self.next_app = next_app
        self._document = document
        self._yaml = CONTRACT.read_text(encoding="utf-8")

    def _served(self, root_path: str) -> tuple[str, str]:
        """The document as JSON and YAML text, for an app mounted at root_path."""
        if not root_path:
            return json.dumps(self._document, default=str), self._yaml
        mounted = copy.deepcopy(self._document)
        mounted["servers"] = [{"url": root_path}]
        return json.dumps(mounted, default=str), yaml.safe_dump(mounted, sort_keys=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            path = app_path(scope)
            if path in ("/openapi.json", "/openapi.yaml"):
                as_json, as_yaml = self._served(scope.get("root_path", "").rstrip("/"))
                response = (
                    Response(as_json, media_type="application/json")
                    if path.endswith(".json")
                    else Response(as_yaml, media_type="text/yaml")
                )
                await response(scope, receive, send)
                return
        await self.next_app(scope, receive, send)
