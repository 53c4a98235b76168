"""SQL for idempotency keys: the per-key lock, the stored first answer, and the removal of
expired keys, done a few at a time by the writes that add keys (no separate job to run): each
user's expired keys by that user's next stored key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    Integer,
    String,
    bindparam,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import insert

from persistence.database import Connection, Statement
from persistence.purging import purge
from persistence.tables import idempotency_keys as keys

PURGE_BATCH = 100  # expired keys removed per stored key: far more than are added

_LOCK = Statement.compile(
    select(
        func.pg_try_advisory_xact_lock(
            func.hashtextextended(
                bindparam("user_id", type_=String) + "/" + bindparam("key", type_=String), 7412
            )
        ).label("locked")
    ),
    "idempotency.lock",
)
_FIND = Statement.compile(
    select(keys.c.fingerprint, keys.c.status, keys.c.body, keys.c.headers).where(
        keys.c.user_id == bindparam("user_id"),
        keys.c.key == bindparam("key"),
        keys.c.expires_at > func.now(),
    ),
    "idempotency.find",
)
# The same user's (so the statement stays on one shard of a distributed PostgreSQL), and not the
# key being stored: its expired row is overwritten by the upsert instead.
_purge = purge(
    keys,
    [keys.c.user_id, keys.c.key],
    (keys.c.expires_at <= func.now()) & (keys.c.key != bindparam("key")),
    PURGE_BATCH,
    within=keys.c.user_id == bindparam("user_id"),
)
_new = {
    "fingerprint": bindparam("fingerprint"),
    "status": bindparam("status"),
    "body": bindparam("body"),
    "headers": bindparam("headers"),
    "expires_at": func.now()
    + literal_column("interval '1 second'") * bindparam("ttl_seconds", type_=Integer),
}
_insert = insert(keys).values(user_id=bindparam("user_id"), key=bindparam("key"), **_new)
# The purge runs although nothing reads it (PostgreSQL runs every data-modifying WITH). What the
# statement leaves out, it leaves out for a distributed PostgreSQL (Citus), which refuses a
# subquery anywhere in an INSERT (the purge's count in RETURNING) and any function that is not
# immutable in DO UPDATE SET (now()): the new expiry is the proposed row's, `excluded`.
_REMEMBER = Statement.compile(
    _insert.on_conflict_do_update(
        index_elements=[keys.c.user_id, keys.c.key],
        set_={name: _insert.excluded[name] for name in _new},
    ).add_cte(_purge),
    "idempotency.remember",
)


@dataclass(frozen=True)
class Stored:
    """The first answer to a key, and the fingerprint of the request that got it."""

    fingerprint: bytes
    status: int
    body: str
    headers: dict[str, str]


async def lock(connection: Connection, user_id: str, key: str) -> bool:
    """Take the key for this transaction; False when another transaction holds it."""
    row = await connection.fetch_one(_LOCK, user_id=user_id, key=key)
    return bool(row and row["locked"])


async def find(connection: Connection, user_id: str, key: str) -> Stored | None:
    """The stored answer to user_id's key, unless there is none or it expired."""
    row = await connection.fetch_one(_FIND, user_id=user_id, key=key)
    if row is None:
        return None
    return Stored(row["fingerprint"], row["status"], row["body"], orjson.loads(row["headers"]))


async def remember(
    connection: Connection, user_id: str, key: str, stored: Stored, *, ttl_seconds: int
) -> None:
    """Store the answer to user_id's key (replacing an expired one), and remove a batch of the
    user's other expired answers."""
    headers = orjson.dumps(stored.headers).decode()
    values: dict[str, Any] = {
        "user_id": user_id, "key": key, "fingerprint": stored.fingerprint,
        "status": stored.status, "body": stored.body, "headers": headers,
        "ttl_seconds": ttl_seconds,
    }  # fmt: skip
    await connection.execute(_REMEMBER, **values)
