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
from typing import Any

import orjson

from handlers.core.answer import Answer
from handlers.core.context import Context
from handlers.core.errors import BadRequest, Conflict, UnprocessableContent
from handlers.services import jsonifier
from handlers.services.tracing import step
from persistence import idempotency
from persistence.database import Connection

HEADER = "Idempotency-Key"


def request_key(ctx: Context) -> str | None:
    """The call's idempotency key, bare or as the draft's sf-string (`"…"`, whose quotes are
    not part of the key). Its length and characters were checked against the contract's
    IdempotencyKey parameter before the operation ran."""
    value = ctx.idempotency_key
    if value is None:
        if ctx.services.require_idempotency_key:
            raise BadRequest(
                f"This server requires an {HEADER} on this request.",
                [{"location": "header", "name": HEADER, "detail": "is required on this server"}],
            )
        return None
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def _fingerprint(ctx: Context, body: Any) -> bytes:
    """What makes two requests the same: method, target and the validated body."""
    request = (ctx.method, ctx.target, body)
    return hashlib.sha256(orjson.dumps(request, option=orjson.OPT_SORT_KEYS)).digest()


async def run(
    ctx: Context, user_id: str, body: Any, write: Callable[[Connection], Awaitable[Answer]]
) -> Answer:
    """write's answer, done at most once per idempotency key."""
    key = request_key(ctx)
    if key is None:
        async with ctx.connection() as db:
            return await write(db)
    fingerprint = _fingerprint(ctx, body)
    tracer = ctx.services.tracer
    async with ctx.transaction() as db:
        with step(tracer, "idempotency.claim") as span:
            if not await idempotency.lock(db, user_id, key):
                raise Conflict(
                    f"A request with this {HEADER} is still in progress; retry it shortly.",
                    headers={"Retry-After": "1"},
                )
            stored = await idempotency.find(db, user_id, key)
            if span is not None:
                span.set_attribute("tasks_api.replay", stored is not None)
        if stored is not None:
            if stored.fingerprint != fingerprint:
                raise UnprocessableContent(
                    f"This {HEADER} was already used for a different request; use a new key."
                )
            headers = {**stored.headers, "Idempotent-Replayed": "true"}
            return Answer(orjson.loads(stored.body), stored.status, headers)
        answer = await write(db)
        # Stored as the client got it: the same encoder as every response.
        body = jsonifier.dumps(answer.body)
        stored = idempotency.Stored(fingerprint, answer.status, body, answer.headers)
        with step(tracer, "idempotency.store"):
            await idempotency.remember(
                db, user_id, key, stored, ttl_seconds=ctx.services.idempotency_key_ttl_seconds
            )
    return answer
