"""Errors as RFC 9457 problem details, for the HTTP door: the one place that renders every error,
whatever raised it (an operation, a middleware, Connexion, the database)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

from connexion import AsyncApp
from connexion.exceptions import ProblemException
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import compile_path

from contracts.document import METHODS
from handlers.core.errors import Problem
from handlers.core.problems import PROBLEM_JSON, problem_body, problem_json
from handlers.services.metrics import CLIENT_CLOSED_STATUS
from handlers.services.state import app_path
from persistence.database import DatabaseUnavailable, InvalidValue

REALM = "tasks-api"

logger = logging.getLogger(__name__)


class ClientClosed(Exception):
    """The client closed its connection before it sent all of its request: nobody is left to
    answer, and it is not a client error the server reports (metrics count it on its own)."""


def problem_asgi(status: int, detail: str, headers: Mapping[str, str]) -> Response:
    """A problem answer for middleware outside Connexion's problem rendering."""
    body = problem_json(problem_body(status, detail))
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=dict(headers))


def problem_response(
    request: ConnexionRequest,
    status: int,
    detail: str | None,
    *,
    headers: Mapping[str, str] | None = None,
    ext: Mapping[str, Any] | None = None,
) -> ConnexionResponse:
    """The problem document for status, with the headers its status calls for."""
    body = problem_body(status, detail, ext)
    all_headers = dict(headers or {})
    if status == HTTPStatus.UNAUTHORIZED:
        all_headers["WWW-Authenticate"] = _bearer_challenge(request, body["detail"])
    return ConnexionResponse(
        status_code=status,
        mimetype=PROBLEM_JSON,
        content_type=PROBLEM_JSON,
        body=problem_json(body),
        headers=all_headers,
    )


def _bearer_challenge(request: ConnexionRequest, detail: str) -> str:
    """RFC 6750 challenge: error="invalid_token" only when a bearer token was presented."""
    presented = request.headers.get("authorization", "").lstrip()[:7].lower() == "bearer "
    if not presented:
        return f'Bearer realm="{REALM}"'
    reason = detail.replace("\\", "").replace('"', "'")
    return f'Bearer realm="{REALM}", error="invalid_token", error_description="{reason}"'


def _render_problem(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    # Ours (the domain's), or Connexion's own (its security and validation raise them).
    assert isinstance(exc, Problem | ProblemException)  # noqa: S101 - registered for these only
    if exc.status >= 500 and exc.status != HTTPStatus.SERVICE_UNAVAILABLE:  # an outage is
        # logged once by what saw it (persistence/database.py), not once per request
        logger.error("%s %s answered %s: %s", request.method, request.url.path, exc.status, exc)
    return problem_response(request, exc.status, exc.detail, headers=exc.headers, ext=exc.ext)


class MethodsByPath:
    """Which methods the contract defines for a request path, for the Allow header of a 405.

    Connexion registers one route per method, so Starlette's own 405 names only the methods of
    the first route that matched the path.
    """

    def __init__(self, paths: Mapping[str, Mapping[str, Any]]) -> None:
        self._routes = [
            (compile_path(template)[0], self.allow_for(item)) for template, item in paths.items()
        ]

    @staticmethod
    def allow_for(item: Mapping[str, Any]) -> str:
        """The Allow value of a path item: its methods, and HEAD where it has GET."""
        methods = {m.upper() for m in item if m in METHODS}
        return ", ".join(sorted({*methods, "HEAD"} if "GET" in methods else methods))

    def allow(self, path: str) -> str | None:
        for pattern, allow in self._routes:
            if pattern.match(path):
                return allow
        return None


def _http_exception_renderer(
    methods: MethodsByPath,
) -> Callable[[ConnexionRequest, Exception], ConnexionResponse]:
    def render(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        assert isinstance(exc, HTTPException)  # noqa: S101 - registered for this class only
        headers = dict(exc.headers or {})
        if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
            allow = methods.allow(app_path(request.scope))
            if allow:
                headers["Allow"] = allow
        return problem_response(request, exc.status_code, exc.detail, headers=headers)

    return render


def _render_unavailable(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    # Not logged here: the database logs each outage's cause once, and the request's own line
    # has its 503.
    return problem_response(
        request,
        HTTPStatus.SERVICE_UNAVAILABLE,
        "The database is not answering; retry shortly.",
        headers={"Retry-After": "1"},
    )


def _render_invalid_value(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    # The contract should have refused the value first; the database is the last line.
    logger.warning("database refused a value in %s %s: %s", request.method, request.url.path, exc)
    return problem_response(
        request, HTTPStatus.BAD_REQUEST, "The request holds a value that cannot be stored."
    )


def _render_client_closed(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    # Nobody will read it; the status is what the log line and metrics record.
    return ConnexionResponse(status_code=CLIENT_CLOSED_STATUS)


def _render_unexpected(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    logger.exception("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        request, HTTPStatus.INTERNAL_SERVER_ERROR, "The server failed to handle this request."
    )


def register_problem_handlers(app: AsyncApp, paths: Mapping[str, Mapping[str, Any]]) -> None:
    """Render every error the app can raise as application/problem+json; paths are the
    contract's, for the Allow header of a 405."""
    app.add_error_handler(Problem, _render_problem)
    app.add_error_handler(ProblemException, _render_problem)
    app.add_error_handler(HTTPException, _http_exception_renderer(MethodsByPath(paths)))
    app.add_error_handler(DatabaseUnavailable, _render_unavailable)
    app.add_error_handler(InvalidValue, _render_invalid_value)
    app.add_error_handler(ClientClosed, _render_client_closed)
    app.add_error_handler(Exception, _render_unexpected)
