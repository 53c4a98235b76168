"""Liveness and readiness probes."""

from handlers.core import preconditions
from handlers.core.answer import Answer
from handlers.core.context import Context
from handlers.core.errors import ServiceUnavailable

OK = {"status": "ok"}


def _ok(ctx: Context) -> Answer:
    return Answer(None, 304) if preconditions.check_untagged(ctx, read=True) else Answer(OK, 200)


async def check_liveness(ctx: Context) -> Answer:
    return _ok(ctx)


async def check_readiness(ctx: Context) -> Answer:
    if not await ctx.services.database.ping():
        raise ServiceUnavailable("The database is not answering.", headers={"Retry-After": "1"})
    return _ok(ctx)
