"""SQL for rate limits: a counter per bucket and minute, in one shared table, so every worker
and host counts together. Two ways to count: hit() adds one request with one upsert and reads
the exact total (RATE_LIMIT_MODE=exact); add() adds a process's hits of the last interval for
every bucket it saw with one statement and reads back their totals (the batched mode,
handlers/services/rate_counter.py). Windows older than the current one are removed a few at a
time (no job to run) by the write that opens a bucket's window, so almost every write is the
upsert alone."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import BigInteger, Integer, String, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY, insert

from persistence.database import Connection, Statement
from persistence.purging import purge
from persistence.tables import rate_limits as limits

PURGE_BATCH = 20  # stale windows removed per window opened: more than each leaves behind
WINDOW_SECONDS = 60  # a calendar minute, as date_trunc('minute', ...) cuts them

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
    (WINDOW_SECONDS - func.extract("epoch", func.now() - limits.c.window_start)).label("reset"),
)
# One row per (bucket, window) in three arrays; windows are Unix seconds of the minute's start.
_rows = (
    func.unnest(
        bindparam("buckets", type_=ARRAY(String)),
        bindparam("windows", type_=ARRAY(BigInteger)),
        bindparam("counts", type_=ARRAY(Integer)),
    )
    .table_valued("bucket", "window", "hits")
    .render_derived()
)
_adding = insert(limits).from_select(
    ["bucket", "window_start", "hits"],
    select(_rows.c.bucket, func.to_timestamp(_rows.c.window), _rows.c.hits),
)
_add = _adding.on_conflict_do_update(
    index_elements=[limits.c.bucket, limits.c.window_start],
    set_={"hits": limits.c.hits + _adding.excluded.hits},
).returning(
    limits.c.bucket,
    func.extract("epoch", limits.c.window_start).cast(BigInteger).label("window"),
    limits.c.hits,
    func.extract("epoch", func.now()).label("now"),
)
_HIT = Statement.compile(_hit, "rate_limits.hit")
_ADD = Statement.compile(_add, "rate_limits.add")
_PURGE = Statement.compile(select(func.count()).select_from(_purge), "rate_limits.purge")
_CLOCK = Statement.compile(
    select(func.extract("epoch", func.now()).label("now")), "rate_limits.clock"
)


@dataclass(frozen=True)
class Count:
    """Requests counted in bucket's current minute (this one included), and seconds left in it."""

    hits: int
    reset_seconds: float


@dataclass(frozen=True)
class Totals:
    """What add() found: each (bucket, window)'s total after the hits were added, and the
    database's clock (Unix seconds) when it added them."""

    hits: dict[tuple[str, int], int]
    now: float


async def hit(connection: Connection, bucket: str) -> Count:
    """Count one request against bucket in the current minute."""
    row = await connection.fetch_one(_HIT, bucket=bucket)
    assert row is not None  # noqa: S101 - an upsert always returns its row
    if row["hits"] == 1:  # this hit opened the bucket's window
        await connection.fetch_one(_PURGE)
    return Count(int(row["hits"]), float(row["reset"]))


async def clock(connection: Connection) -> float:
    """The database's clock, in Unix seconds."""
    row = await connection.fetch_one(_CLOCK)
    assert row is not None  # noqa: S101 - a SELECT without FROM returns its row
    return float(row["now"])


async def add(connection: Connection, hits: Mapping[tuple[str, int], int]) -> Totals:
    """Add hits (by bucket and window start, Unix seconds) in one statement. Rows are written
    in key order, so two processes adding the same buckets at once never deadlock."""
    keys = sorted(hits)
    rows = await connection.fetch_all(
        _ADD,
        buckets=[bucket for bucket, _ in keys],
        windows=[window for _, window in keys],
        counts=[hits[key] for key in keys],
    )
    totals = {(row["bucket"], int(row["window"])): int(row["hits"]) for row in rows}
    if any(totals[key] == hits[key] for key in keys):  # these hits opened a window
        await connection.fetch_one(_PURGE)
    now = float(rows[0]["now"]) if rows else 0.0
    return Totals(totals, now)
