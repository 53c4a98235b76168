"""SQL for rate limits: a counter per bucket and minute, counted atomically by one upsert, so
every worker and host shares it exactly. Windows older than the current one are removed a few
at a time (no job to run) by the hit that opens a bucket's window, so the hits after it in that
minute, almost all of them, are the upsert alone."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import String, bindparam, func, select
from sqlalchemy.dialects.postgresql import insert

from persistence.database import Connection, Statement
from persistence.purging import purge
from persistence.tables import rate_limits as limits

PURGE_BATCH = 20  # stale windows removed per window opened: more than each leaves behind

_window = func.date_trunc("minute", func.now())
_purge = purge(
    limits, [limits.c.bucket, limits.c.window_start], limits.c.window_start < _window, PURGE_BATCH
)
_upsert = insert(limits).values(bucket=bindparam("bucket", type_=String), window_start=_window,
                                hits=1)  # fmt: skip
_hit = _upsert.on_conflict_do_update(
    index_elements=[limits.c.bucket, limits.c.window_start],
    set_={"hits": limits.c.hits + 1},
).returning(
    limits.c.hits,
    (60 - func.extract("epoch", func.now() - limits.c.window_start)).label("reset"),
)
_HIT = Statement.compile(_hit)
_PURGE = Statement.compile(select(func.count()).select_from(_purge))


@dataclass(frozen=True)
class Count:
    """Requests counted in bucket's current minute (this one included), and seconds left in it."""

    hits: int
    reset_seconds: float


async def hit(connection: Connection, bucket: str) -> Count:
    """Count one request against bucket in the current minute."""
    row = await connection.fetch_one(_HIT, bucket=bucket)
    assert row is not None  # noqa: S101 - an upsert always returns its row
    if row["hits"] == 1:  # this hit opened the bucket's window
        await connection.fetch_one(_PURGE)
    return Count(int(row["hits"]), float(row["reset"]))
