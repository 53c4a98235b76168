"""Liveness and readiness probes."""

from handlers import preconditions
from handlers.context import Reply, database, reply
from handlers.core.errors import ServiceUnavailable

OK = {"status": "ok"}


def _ok() -> Reply:
    return reply(None, 304) if preconditions.check_untagged(read=True) else reply(OK, 200)


async def check_liveness() -> Reply:
    return _ok()


async def check_readiness() -> Reply:
    if not await database().ping():
        raise ServiceUnavailable("The database is not answering.", headers={"Retry-After": "1"})
    return _ok()
