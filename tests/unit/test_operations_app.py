"""How the HTTP door writes an operation's Answer (handlers/http/operations.py): the contract's
media type for the status, JSON with a newline, and a length on every answer that may have a
body (never a chunked empty one)."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import pytest

from handlers.core.answer import Answer
from handlers.http.operations import Endpoint


def written(answer: Answer, media: dict[str, str]) -> list[dict[str, Any]]:
    endpoint = Endpoint.__new__(Endpoint)  # only what write() reads
    endpoint.media = media
    sent: list[dict[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    asyncio.run(endpoint.write(answer, send))
    return sent


def test_a_body_is_json_with_its_length_and_the_media_type_of_its_status() -> None:
    start, body = written(
        Answer({"id": 1}, 201, {"Location": "/api/a/tasks/1"}), {"201": "application/json"}
    )
    assert start["status"] == 201
    assert start["headers"] == [
        (b"location", b"/api/a/tasks/1"),
        (b"content-length", b"9"),
        (b"content-type", b"application/json"),
    ]
    assert body["body"] == b'{"id":1}\n'


@pytest.mark.parametrize(("status", "length"), [(204, None), (304, None), (200, b"0"), (202, b"0")])
def test_an_empty_answer_says_its_length_where_a_body_could_be(
    status: int, length: bytes | None
) -> None:
    start, body = written(Answer(None, status, {"ETag": '"3"'}), {})
    lengths = [v for k, v in start["headers"] if k == b"content-length"]
    assert lengths == ([] if length is None else [length])
    assert body["body"] == b""
