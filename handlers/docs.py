"""Serves the contract as written: /openapi.json keeps its $refs and named schemas.

Connexion 3.3 serves the spec with every $ref inlined, so clients generated from it get
anonymous types (spec-first/connexion#2127; the upstream fix, #2128, is unreleased). When it
ships, replace this module with `SwaggerUIOptions(resolve_spec_refs=False)`.
"""

from __future__ import annotations

from typing import Any

from connexion.middleware.swagger_ui import SwaggerUIAPI, SwaggerUIMiddleware


class AuthoredSpecAPI(SwaggerUIAPI):  # type: ignore[misc]
    def _spec_for_prefix(self, request: Any) -> dict[str, Any]:
        base_path = self._base_path_for_prefix(request)
        if not base_path.strip("/"):  # served at the root: the file, `servers` included
            authored: dict[str, Any] = self.specification.raw
            return authored
        spec: dict[str, Any] = self.specification.with_base_path(base_path).raw
        return spec


class AuthoredSpecMiddleware(SwaggerUIMiddleware):  # type: ignore[misc]
    def add_api(self, specification: Any, base_path: str | None = None, **kwargs: Any) -> None:
        api = AuthoredSpecAPI(specification, base_path=base_path, default=self.default_fn, **kwargs)
        self.router.mount(api.base_path, app=api.router)
