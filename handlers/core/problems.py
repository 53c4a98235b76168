"""Problem documents (RFC 9457): the one shape every door gives an error, built in one place
from a status, a detail and the contract's problem type."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from handlers.core.errors import problem_type, truncate
from handlers.services import jsonifier
from handlers.services.logs import request_id

PROBLEM_JSON = "application/problem+json"


def problem_body(
    status: int, detail: str | None, ext: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The RFC 9457 document for status, with the current request's id."""
    known = status in HTTPStatus._value2member_map_
    body: dict[str, Any] = {
        "type": problem_type(status),
        "title": HTTPStatus(status).phrase if known else "Error",
        "status": status,
        "detail": truncate(detail or (HTTPStatus(status).description if known else "Error")),
    }
    body.update(ext or {})
    if (current := request_id.get()) is not None:
        body["request_id"] = current
    return body


def problem_json(body: Mapping[str, Any]) -> str:
    """A problem document as sent: JSON ending in a newline, like every other JSON answer (which
    Connexion's Jsonifier ends so), so a terminal shows it on a line of its own."""
    return jsonifier.dumps(body)
