"""The Connexion internals this project still uses, one test each: a Connexion upgrade that
removes one fails here, naming the module that needs it, instead of somewhere far away."""

from __future__ import annotations

from typing import Any

import connexion
from connexion import AsyncApp
from connexion.lifecycle import ConnexionRequest
from connexion.middleware.request_validation import RequestValidationAPI
from connexion.middleware.routing import RoutingMiddleware, RoutingOperation
from connexion.middleware.swagger_ui import SwaggerUIMiddleware
from connexion.operations import OpenAPIOperation
from connexion.security import BearerSecurityHandler
from connexion.spec import Specification
from connexion.validators import AbstractRequestBodyValidator
from starlette.routing import Mount, Route, Router

from contracts.document import load
from handlers.http.operations import resolver

VERSION = connexion.__version__ if hasattr(connexion, "__version__") else "this version"


def gone(name: str, user: str) -> str:
    return f"Connexion {VERSION} no longer has {name}, which {user} relies on"


def test_body_validators_keep_their_schema_and_required_flag() -> None:
    validator = AbstractRequestBodyValidator(
        schema={"type": "object"}, required=True, encoding="utf-8", strict_validation=True
    )
    assert validator._schema == {"type": "object"}, gone("._schema", "handlers/http/validation.py")
    assert validator._required is True, gone("._required", "handlers/http/validation.py")


def test_the_token_claims_live_under_the_connexion_context_scope_key() -> None:
    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": "/", "query_string": b"",
                             "headers": []}  # fmt: skip
    ConnexionRequest(scope).context["user"] = "alice"
    assert scope["extensions"]["connexion_context"]["user"] == "alice", gone(
        "the connexion_context scope key", "handlers/http/ownership.py"
    )


def test_the_routers_keep_their_routes_where_the_short_way_reads_them() -> None:

    user = "handlers/http/routing.py"
    for middleware in (RoutingMiddleware, SwaggerUIMiddleware):
        app = middleware(None)
        app.add_api(Specification.load(load()), resolver=resolver())
        [mount] = app.router.routes
        assert type(mount) is Mount, gone(".router's mounts", user)
        assert type(mount.app) is Router, gone(".router's mounts", user)
        routes = [r for r in mount.app.routes if type(r) is Route]
        assert routes, gone(".router's routes", user)
        for route in routes:
            assert route.path_regex.pattern, gone("Route.path_regex", user)
            assert route.methods, gone("Route.methods", user)
            assert isinstance(route.param_convertors, dict), gone("Route convertors", user)
        if middleware is RoutingMiddleware:
            operation = routes[0].endpoint
            assert isinstance(operation, RoutingOperation), gone("RoutingOperation routes", user)
            assert operation.operation_id, gone("RoutingOperation.operation_id", user)
            assert operation.next_app is None, gone("RoutingOperation.next_app", user)


def test_the_validation_layer_builds_its_operations_through_make_operation() -> None:

    user = "handlers/http/validation.py"
    assert "make_operation" in vars(RequestValidationAPI), gone("make_operation", user)
    for name in ("uri_parser_class", "consumes", "body_schema", "body_definition",
                 "request_body", "security", "security_schemes", "parameters"):  # fmt: skip
        assert hasattr(OpenAPIOperation, name), gone(f"OpenAPIOperation.{name}", user)


def test_the_bearer_scheme_asks_the_hook_through_accepts_kwarg() -> None:

    accepts = BearerSecurityHandler._accepts_kwarg

    def hook(token: str, request: object) -> None: ...

    name = "AbstractSecurityHandler._accepts_kwarg"
    assert accepts(hook, "request"), gone(name, "handlers/http/security.py")
    assert not accepts(hook, "required_scopes"), gone(name, "handlers/http/security.py")


def test_the_pipeline_is_the_list_the_app_was_given() -> None:
    """root.py puts its layers in Connexion's places in that list after the positions are taken."""

    pipeline: list[Any] = []
    app = AsyncApp(__name__, middlewares=pipeline)
    assert app.middleware.middlewares is pipeline, gone("the middlewares list", "handlers/root.py")
