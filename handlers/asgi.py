"""Request bodies, read once and bounded: at most MAX_BODY_BYTES (refused before it is all read),
and a client that closes its connection mid-body is told apart from one that sent a bad body.
Used by the JSON request validator and by /mcp, which take the same limit."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import Message, Receive

from handlers.core.errors import PayloadTooLarge
from handlers.http.problems import ClientClosed

MAX_BODY_BYTES = 128 * 1024


async def read_body(receive: Receive, headers: Headers) -> bytes:
    """The whole request body, refusing one over MAX_BODY_BYTES before reading it all;
    ClientClosed when the client went away before sending all of it."""
    too_large = PayloadTooLarge(f"The request body must be at most {MAX_BODY_BYTES} bytes.")
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientClosed
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def replay(receive: Receive, body: bytes) -> Receive:
    """A receive channel that yields body once, then whatever the client sends next."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
