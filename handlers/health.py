"""Liveness and readiness probes."""

from handlers.context import Reply, database, reply
from handlers.problems import ServiceUnavailable

OK = {"status": "ok"}


async def check_liveness() -> Reply:
    return reply(OK, 200)


async def check_readiness() -> Reply:
    if not await database().ping():
        raise ServiceUnavailable("The database is not answering.", headers={"Retry-After": "1"})
    return reply(OK, 200)
