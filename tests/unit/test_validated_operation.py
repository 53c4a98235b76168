"""The request validation layer (handlers/http/validation.py: ValidatedOperation) builds what it
needs once per operation and per media type a client sends, within a bound, and refuses what
Connexion's own layer refuses."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import pytest
from connexion.exceptions import UnsupportedMediaTypeProblem
from connexion.operations import OpenAPIOperation
from connexion.spec import Specification
from starlette.types import Receive, Scope, Send

from contracts.document import load
from handlers.core.errors import UnsupportedMediaType
from handlers.http.operations import VALIDATED_BODY, resolver
from handlers.http.validation import VALIDATOR_MAP, ValidatedOperation

USER = "u-1"


def create_task() -> tuple[ValidatedOperation, list[dict[str, Any]]]:
    operation = OpenAPIOperation.from_spec(
        Specification.load(load()), path="/api/{user_id}/tasks", method="post", resolver=resolver()
    )
    reached: list[dict[str, Any]] = []

    async def next_app(scope: Scope, _receive: Receive, _send: Send) -> None:
        reached.append(dict(scope))

    return ValidatedOperation(
        next_app, operation=operation, strict_validation=True, validator_map=VALIDATOR_MAP
    ), reached


def send(validated: ValidatedOperation, content_type: str, body: bytes) -> None:
    scope = {
        "type": "http",
        "method": "POST",
        "path": f"/api/{USER}/tasks",
        "query_string": b"",
        "path_params": {"user_id": USER},
        "headers": [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
        ],
    }

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    asyncio.run(validated(scope, receive, None))  # type: ignore[arg-type]


def test_a_valid_body_reaches_the_operation_checked_and_with_its_defaults() -> None:
    validated, reached = create_task()
    send(validated, "application/json", b'{"title": "x"}')
    send(validated, "application/json; charset=utf-8", b'{"title": "y"}')
    assert [s["extensions"][VALIDATED_BODY]["title"] for s in reached] == ["x", "y"]
    assert reached[0]["extensions"][VALIDATED_BODY]["priority"] == "medium"


def test_media_types_the_operation_does_not_take_are_refused_every_time() -> None:
    validated, reached = create_task()
    for _ in range(2):
        with pytest.raises(UnsupportedMediaTypeProblem):
            send(validated, "text/plain", b'{"title": "x"}')
    assert reached == []


def test_what_it_learns_per_media_type_is_bounded() -> None:
    validated, _ = create_task()
    for n in range(ValidatedOperation.MAX_MEDIA_TYPES * 4):
        with pytest.raises(UnsupportedMediaType):  # JSON is UTF-8
            send(validated, f"application/json;charset=x-{n}", b'{"title": "x"}')
    assert len(validated._bodies) == ValidatedOperation.MAX_MEDIA_TYPES
