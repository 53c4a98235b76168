"""Idempotency keys (draft-ietf-httpapi-idempotency-key-header): a write retried with the same
`Idempotency-Key` is done once, and every retry gets the first answer again.

The first request takes a transaction-scoped advisory lock on (user, key), does its write and
stores its answer in the same transaction, so the write and the record of it commit together or
not at all (a server killed mid-request leaves neither, and the retry simply runs). A request
that finds the lock taken answers 409 at once; one that finds a stored answer replays it with
`Idempotent-Replayed: true`, or answers 422 when the key was used for a different request. Keys
are per user, and expire after IDEMPOTENCY_KEY_TTL_SECONDS. Only successes are stored: a failed
write rolls back, and its retry runs again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from connexion.context import scope as request_scope

from handlers.context import Reply, connection, reply, request_header, state, transaction
from handlers.core.errors import BadRequest, Conflict, UnprocessableContent
from handlers.jsonifier import JSONIFIER
from persistence import idempotency
from persistence.database import Connection

HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class Answer:
    """A handler's answer before it becomes a reply, so that it can be stored and replayed."""

    body: Any
    status: int
    headers: dict[str, str] = field(default_factory=dict)

    def reply(self) -> Reply:
        return reply(self.body, self.status, self.headers)


def request_key(required: bool) -> str | None:
    """The request's idempotency key, bare or as the draft's sf-string (`"…"`, whose quotes are
    not part of the key). Its length and characters were checked against the contract's
    IdempotencyKey parameter before the handler ran."""
    value = request_header(HEADER)
    if value is None:
        if required:
            raise BadRequest(
                f"This server requires an {HEADER} on this request.",
                [{"location": "header", "name": HEADER, "detail": "is required on this server"}],
            )
        return None
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def _fingerprint(body: Any) -> bytes:
    """What makes two requests the same: method, path and the validated body."""
    request = (request_scope["method"], request_scope["path"], body)
    return hashlib.sha256(orjson.dumps(request, option=orjson.OPT_SORT_KEYS)).digest()


async def run(user_id: str, body: Any, write: Callable[[Connection], Awaitable[Answer]]) -> Reply:
    """write's answer, done at most once per idempotency key."""
    app = state()
    key = request_key(app.require_idempotency_key)
    if key is None:
        async with connection() as db:
            return (await write(db)).reply()
    fingerprint = _fingerprint(body)
    async with transaction() as db:
        if not await idempotency.lock(db, user_id, key):
            raise Conflict(
                f"A request with this {HEADER} is still in progress; retry it shortly.",
                headers={"Retry-After": "1"},
            )
        stored = await idempotency.find(db, user_id, key)
        if stored is not None:
            if stored.fingerprint != fingerprint:
                raise UnprocessableContent(
                    f"This {HEADER} was already used for a different request; use a new key."
                )
            headers = {**stored.headers, "Idempotent-Replayed": "true"}
            return Answer(orjson.loads(stored.body), stored.status, headers).reply()
        answer = await write(db)
        # Stored as the client got it: the same encoder as every response.
        body = JSONIFIER.dumps(answer.body)
        stored = idempotency.Stored(fingerprint, answer.status, body, answer.headers)
        await idempotency.remember(
            db, user_id, key, stored, ttl_seconds=app.idempotency_key_ttl_seconds
        )
    return answer.reply()
