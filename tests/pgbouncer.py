"""A real PgBouncer (Debian's package, which `make test` installs where it is missing) in front of
an embedded PostgreSQL, in transaction pool mode as Neon's pooled URLs, Supabase's pooler and RDS
Proxy run it. Its configuration is PgBouncer's stock one but for what any deployment must say
(where the database is, where to listen, who may connect) and the pool mode: in particular no
`ignore_startup_parameters` and no `track_extra_parameters`. Listens on 127.0.0.1 only."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from persistence.embedded import EmbeddedServer
from tests.live import free_port, read_until

USER = "tasks_app"
PASSWORD = "pooled-" + uuid.uuid4().hex
READY = re.compile(r"listening on 127\.0\.0\.1:\d+")


def executable() -> str:
    """Debian installs it in /usr/sbin, which is not on every user's PATH."""
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
    if found is None:
        pytest.fail("pgbouncer is not installed: `make test` installs Debian's package")
    return found


class PgBouncer:
    """PgBouncer serving every database of a PostgreSQL (the embedded one, or any other at
    `server`, a libpq connection string) as the role `postgres`, to clients that log in as USER
    with PASSWORD (SCRAM), one pool per database."""

    def __init__(
        self,
        postgres: EmbeddedServer | None = None,
        pool_mode: str = "transaction",
        *,
        server: str = "",
        system_user: str = "postgres",
    ) -> None:
        self.port = free_port()
        # Its own world-readable directory: run as root, PgBouncer drops to the PostgreSQL
        # server's user, who could not read pytest's private temporary directories.
        self.directory = Path(tempfile.mkdtemp(prefix="tasks-pgbouncer-"))
        self.directory.chmod(0o755)
        if postgres is not None:
            server = f"host={parse_qs(urlsplit(postgres.url()).query)['host'][0]}"
            system_user = postgres.handle.system_user
        config = self.directory / "pgbouncer.ini"
        userlist = self.directory / "userlist.txt"
        userlist.write_text(f'"{USER}" "{PASSWORD}"\n')
        config.write_text(
            f"[databases]\n* = {server} user=postgres\n\n"
            f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {self.port}\n"
            f"unix_socket_dir =\nauth_type = scram-sha-256\nauth_file = {userlist}\n"
            f"pool_mode = {pool_mode}\nadmin_users = {USER}\n"
        )
        for path in (config, userlist):
            path.chmod(0o644)
        command = [executable(), str(config)]
        if os.geteuid() == 0:  # PgBouncer refuses to run as root
            command[1:1] = ["-u", system_user]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.output: list[str] = []
        self._wait_until_listening(timeout=30)
        # Keep reading: it logs every connection, and a full pipe would stall it.
        self._drain = threading.Thread(target=self._read_rest, daemon=True)
        self._drain.start()

    def _wait_until_listening(self, timeout: float) -> None:
        assert self.process.stdout is not None
        listening = read_until(
            self.process.stdout, lambda lines: any(READY.search(line) for line in lines) or None,
            self.output, timeout,
        )  # fmt: skip
        if listening is None:
            self.stop()
            pytest.fail("pgbouncer did not start:\n" + "".join(self.output))

    def _read_rest(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line.decode(errors="replace"))

    def url(self, database: str, **options: str) -> str:
        query = "&".join(f"{name}={value}" for name, value in options.items())
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}" + (
            f"?{query}" if query else ""
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if hasattr(self, "_drain"):
            self._drain.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        shutil.rmtree(self.directory, ignore_errors=True)
