"""Domain errors: what went wrong, in the terms every door renders (an HTTP problem document,
an MCP tool failure, a line on the command line). Each maps to one HTTP status, as the contract
documents them."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from contracts.document import load

MAX_DETAIL = 300
MAX_ERRORS = 50
TYPE_PREFIX = "/problems/"

FieldError = dict[str, str]
# The problem types the contract declares (its Problem schema's x-problem-types), by status.
_TYPES: dict[int, str] = {
    int(declared["status"]): TYPE_PREFIX + name
    for name, declared in load()["components"]["schemas"]["Problem"]["x-problem-types"].items()
}


def problem_type(status: int) -> str:
    """The contract's problem type URI for status; about:blank for a status it has none for."""
    return _TYPES.get(status, "about:blank")


def type_name(type_uri: str) -> str:
    """`/problems/not-found` -> `not-found`."""
    return type_uri.removeprefix(TYPE_PREFIX)


def truncate(text: str, limit: int = MAX_DETAIL) -> str:
    """Text cut to limit characters, marked when cut, so no error echoes a huge value."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Problem(Exception):
    """A domain error that maps to one HTTP status."""

    status_code_default = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(
        self,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        ext: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = int(self.status_code_default)
        self.title = self.status_code_default.phrase
        self.detail = detail
        self.headers = dict(headers or {})
        self.ext = dict(ext or {})


class BadRequest(Problem):
    """The request broke the contract; `errors` names every offending field."""

    status_code_default = HTTPStatus.BAD_REQUEST

    def __init__(self, detail: str, errors: list[FieldError]) -> None:
        super().__init__(detail, ext={"errors": errors[:MAX_ERRORS]})


class Unauthorized(Problem):
    status_code_default = HTTPStatus.UNAUTHORIZED


class Forbidden(Problem):
    status_code_default = HTTPStatus.FORBIDDEN


class NotFound(Problem):
    status_code_default = HTTPStatus.NOT_FOUND


class MethodNotAllowed(Problem):
    status_code_default = HTTPStatus.METHOD_NOT_ALLOWED


class NotAcceptable(Problem):
    status_code_default = HTTPStatus.NOT_ACCEPTABLE


class Conflict(Problem):
    status_code_default = HTTPStatus.CONFLICT


class PreconditionFailed(Problem):
    status_code_default = HTTPStatus.PRECONDITION_FAILED


class PreconditionRequired(Problem):
    status_code_default = HTTPStatus.PRECONDITION_REQUIRED


class UnprocessableContent(Problem):
    status_code_default = HTTPStatus.UNPROCESSABLE_ENTITY


class PayloadTooLarge(Problem):
    status_code_default = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class UnsupportedMediaType(Problem):
    status_code_default = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class RequestHeadTooLarge(Problem):
    status_code_default = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE


class TooManyRequests(Problem):
    status_code_default = HTTPStatus.TOO_MANY_REQUESTS


class ServiceUnavailable(Problem):
    status_code_default = HTTPStatus.SERVICE_UNAVAILABLE


class NotImplementedYet(Problem):
    """What a stub written by `make stubs` answers until someone implements it."""

    status_code_default = HTTPStatus.NOT_IMPLEMENTED

    def __init__(self, operation_id: str) -> None:
        super().__init__(f"{operation_id} is in the contract but not implemented yet.")
