"""A real Citus cluster for tests: a coordinator and workers, each a PostgreSQL 15 with Citus
preloaded, on 127.0.0.1 only, in a temporary directory, always stopped.

Its nodes are set up by the lines of the README's "When one PostgreSQL is not enough" (the
`citus-nodes` block), read from the README and run as they stand, with each node's address for
the example's: the setting in every node's postgresql.conf, the extension in every node's
database, then `citus_set_coordinator_host` and `citus_add_node` on the coordinator. PostgreSQL's
own binaries come from CITUS_PG_BIN (`make test-citus` sets it from what
../shared/citus/install.sh prints), else from `pg_config --bindir`."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.docs import README, blocks
from tests.live import free_port

DATABASE = "tasks"
# The README's example addresses, which each node's stand in for.
_ADDRESS = re.compile(r"'(coordinator|worker-(\d+))\.internal', 5432")


def readme_lines(mark: str) -> list[tuple[str, str]]:
    """The README block's lines, each with whom it is for: "every node" or "coordinator" (from
    the comment before it), or "postgresql.conf" for the setting a comment names there."""
    (block,) = blocks(README, mark)
    found, target = [], "coordinator"
    for line in block.splitlines():
        if line.startswith("--"):
            target = "every node" if "every node" in line else "coordinator"
            if "postgresql.conf:" in line:
                found.append(("postgresql.conf", line.split("postgresql.conf:", 1)[1].strip()))
        elif line.strip():
            found.append((target, line))
    return found


# What a node needs beyond PostgreSQL's defaults and the README's setting: loopback only, and
# room for the connections Citus opens between nodes. Nothing is flushed to disk (the data is
# thrown away), but a commit is written before it is answered, so a node that crashes (as one
# test makes a worker do) keeps what it committed, as on a real disk.
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "300",
    "fsync": "off",
    "full_page_writes": "off",
    "citus.enable_stat_counters": "on",  # query_execution_single_shard / _multi_shard
}
SYSTEM_USER = "postgres"  # PostgreSQL refuses to run as root


def bin_directory() -> Path:
    """The bin directory of a PostgreSQL with Citus: CITUS_PG_BIN, else pg_config's."""
    given = os.environ.get("CITUS_PG_BIN")
    pg_config = str(Path(given) / "pg_config") if given else shutil.which("pg_config")
    if pg_config is None or not Path(pg_config).exists():
        raise RuntimeError("no PostgreSQL found: set CITUS_PG_BIN to the bin directory of one"
                           " with Citus (README: When one PostgreSQL is not enough)")  # fmt: skip
    asked = [pg_config, "--bindir", "--pkglibdir"]
    found = subprocess.run(asked, capture_output=True, text=True, check=True)
    bindir, libdir = found.stdout.split()
    if not (Path(libdir) / "citus.so").exists():
        raise RuntimeError(f"the PostgreSQL in {bindir} has no Citus (no citus.so in {libdir}):"
                           " install it, or set CITUS_PG_BIN to one that has it (README: When"
                           " one PostgreSQL is not enough)")  # fmt: skip
    return Path(bindir)


@dataclass(frozen=True)
class Node:
    name: str
    port: int
    data: Path

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


class Cluster:
    """Started by start(), stopped by stop(); every node is stopped even if another fails."""

    def __init__(self, workers: int = 2, *, citus: bool = True) -> None:
        """citus=False: one plain PostgreSQL of the same build and settings, no Citus (what
        the cluster is measured against)."""
        self.citus = citus
        self.bin = bin_directory()
        self.root = Path(tempfile.mkdtemp(prefix="tasks-citus-"))
        self.root.chmod(0o755)
        names = ["coordinator", *(f"worker{n}" for n in range(1, workers + 1))]
        self.nodes = [Node(name, free_port(), self.root / name) for name in names]
        self.started: list[Node] = []

    @property
    def coordinator(self) -> Node:
        return self.nodes[0]

    @property
    def workers(self) -> list[Node]:
        return self.nodes[1:]

    def _run(self, command: Sequence[str]) -> str:
        def as_postgres() -> None:
            if os.geteuid() == 0:
                entry = pwd.getpwnam(SYSTEM_USER)
                os.setgid(entry.pw_gid)
                os.setuid(entry.pw_uid)

        # The nodes' own HOME: libpq, connecting node to node, looks there for client keys.
        env = {**os.environ, "HOME": str(self.root)}
        done = subprocess.run(
            list(command), capture_output=True, text=True, preexec_fn=as_postgres,
            env=env, timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def addressed(self, sql: str) -> str:
        """sql with the README's example addresses replaced by the nodes' own."""

        def node_for(match: re.Match[str]) -> str:
            node = self.coordinator if match[2] is None else self.workers[int(match[2]) - 1]
            return f"'127.0.0.1', {node.port}"

        return _ADDRESS.sub(node_for, sql)

    def psql(self, node: Node, sql: str, database: str = DATABASE) -> str:
        return self._run(
            [str(self.bin / "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
             "-h", "127.0.0.1", "-p", str(node.port), "-U", "postgres", "-d", database,
             "-c", sql]
        )  # fmt: skip

    def start(self, workers: int | None = None) -> Cluster:
        """Start every node and make DATABASE with the first `workers` workers (all when
        None): the others are spare, for a test to add."""
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SYSTEM_USER)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        for node in self.nodes:
            self._run(
                [str(self.bin / "initdb"), "-D", str(node.data), "-U", "postgres",
                 "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"]
            )  # fmt: skip
            with (node.data / "postgresql.conf").open("a") as conf:
                if self.citus:
                    for target, line in readme_lines("citus-nodes"):
                        if target == "postgresql.conf":
                            conf.write(f"{line}\n")
                for name, value in {**SETTINGS, "port": str(node.port)}.items():
                    if self.citus or not name.startswith("citus."):
                        conf.write(f"{name} = {value}\n")
                conf.write(f"unix_socket_directories = '{node.data}'\n")
        for node in self.nodes:
            self.start_node(node)
        self.create_database(DATABASE, workers)
        return self

    def create_database(self, database: str, workers: int | None = None) -> str:
        """A database of the cluster on every node, with the README's lines run in it (only
        the first `workers` workers added, when given); its URL on the coordinator."""
        for node in self.nodes:
            self.psql(node, f"CREATE DATABASE {database}", database="postgres")
        if not self.citus:
            return self.coordinator.url(database)
        added = self.workers[:workers] if workers is not None else self.workers
        for target, line in readme_lines("citus-nodes"):
            if target == "every node":
                for node in self.nodes:
                    self.psql(node, line, database=database)
            elif target == "coordinator":
                worker = _ADDRESS.search(line)
                if worker and worker[2] and self.workers[int(worker[2]) - 1] not in added:
                    continue
                self.psql(self.coordinator, self.addressed(line), database=database)
        return self.coordinator.url(database)

    def start_node(self, node: Node) -> None:
        self._run(
            [str(self.bin / "pg_ctl"), "-D", str(node.data), "-l", str(node.data / "log"),
             "-w", "-t", "60", "start"]
        )  # fmt: skip
        self.started.append(node)

    def stop_node(self, node: Node) -> None:
        """Stop node as a crash would (no shutdown checkpoint, connections cut)."""
        self._run([str(self.bin / "pg_ctl"), "-D", str(node.data), "-m", "immediate", "-w", "stop"])
        self.started.remove(node)

    def stop(self) -> None:
        for node in reversed(self.started):
            try:
                self._run(
                    [str(self.bin / "pg_ctl"), "-D", str(node.data), "-m", "fast", "-w", "stop"]
                )
            except (RuntimeError, subprocess.TimeoutExpired):
                continue
        self.started.clear()
        shutil.rmtree(self.root, ignore_errors=True)
