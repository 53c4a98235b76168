"""Real servers for tests that need one: started on 127.0.0.1, bounded in time, always stopped."""

from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar

import pytest

from handlers.services.settings import METRICS_DIR_VARIABLE, variables

# uvicorn's line, or Granian's (SERVER=granian), which listens only once a worker has started
READY = re.compile(r"(?:Uvicorn running on|Listening at:) http://127\.0\.0\.1:(\d+)")
GRANIAN_WORKER_READY = re.compile(r"Started worker-")
REPO = Path(__file__).resolve().parent.parent
TASKS_API = REPO / ".venv" / "bin" / "tasks-api"

# Settings a developer's shell might carry that would change what a started server does: every
# variable Settings reads, and those read elsewhere (the stdio token, the metrics directory, and
# OpenTelemetry's OTEL_*).
SETTINGS = (*variables(), "TASKS_API_TOKEN", METRICS_DIR_VARIABLE)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def environment(**settings: str) -> dict[str, str]:
    """This process's environment without our settings, plus the given ones. Rate limits are
    off unless given: fuzzing and the client tests send far more than a minute's quota."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in SETTINGS and not k.startswith(("COV_", "OTEL_"))
    }
    off = {"RATE_LIMIT_PER_MINUTE": "0", "AUTH_FAILURE_LIMIT_PER_MINUTE": "0"}
    return {**env, "UV_NO_ENV_FILE": "1", **off, **settings}


T = TypeVar("T")


def read_until(
    stream: IO[Any], found: Callable[[list[str]], T | None], output: list[str], timeout: float
) -> T | None:
    """Lines of a process's output, added to output as they come, until found(output) says
    something (returned) or timeout seconds pass (None). Raw reads of the descriptor: a
    buffered readline() may take several lines at once, and the selector would then wait for
    output that has already arrived."""
    descriptor = stream.fileno()
    deadline = time.monotonic() + timeout
    pending = b""
    with selectors.DefaultSelector() as selector:
        selector.register(descriptor, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0 and selector.select(timeout=left):
            chunk = os.read(descriptor, 65536)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            output.extend(line.decode(errors="replace") + "\n" for line in lines)
            if lines and (result := found(output)) is not None:
                if pending:  # the start of a line whose rest the caller reads next
                    output.append(pending.decode(errors="replace"))
                return result
    return None


class LiveServer:
    """A server command in its own process group, stopped like Ctrl-C in a terminal."""

    def __init__(
        self,
        command: Sequence[str],
        env: dict[str, str],
        start_timeout: float,
        cwd: Path = REPO,
    ) -> None:
        self.env = env
        self.output: list[str] = []
        self._arrived = threading.Condition()
        self.process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.port = self._wait_until_serving(start_timeout)
        self.url = f"http://127.0.0.1:{self.port}"
        # Keep reading, so a chatty server never blocks on a full pipe.
        self._drain = threading.Thread(target=self._read_rest, daemon=True)
        self._drain.start()

    @property
    def log(self) -> str:
        return "".join(self.output)

    def _wait_until_serving(self, timeout: float) -> int:
        def serving(lines: list[str]) -> int | None:
            port = 0
            for line in lines:
                if match := READY.search(line):
                    port = int(match.group(1))
                    if "Listening at" not in line:
                        return port
                if GRANIAN_WORKER_READY.search(line) and port:
                    return port
            return None

        assert self.process.stdout is not None
        port = read_until(self.process.stdout, serving, self.output, timeout)
        if port is None:
            self.stop()
            pytest.fail(f"{self.process.args!r} did not start serving:\n{self.log}")
        return port

    def _read_rest(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._arrived:
                self.output.append(line)
                self._arrived.notify_all()

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 60) -> list[re.Match[str]]:
        """The first count matches of pattern in the output, waiting for lines as they come."""
        found = re.compile(pattern)

        def matches() -> list[re.Match[str]]:
            return [m for line in self.output if (m := found.search(line))]

        with self._arrived:
            if not self._arrived.wait_for(lambda: len(matches()) >= count, timeout=timeout):
                pytest.fail(f"{pattern!r} did not appear {count} times:\n{self.log}")
            return matches()[:count]

    def stop(self, timeout: float = 30) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            pytest.fail(f"{self.process.args!r} did not stop on SIGINT:\n{self.log}")
        if hasattr(self, "_drain"):
            self._drain.join(timeout=timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()


def tasks_api(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """A `tasks-api` command that ends by itself (migrate, distribute, token), with the given
    settings (production unless APP_ENV says otherwise), bounded in time."""
    env = environment(**{"APP_ENV": "production", "PORT": str(free_port()), **settings})
    return subprocess.run([str(TASKS_API), *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


@contextmanager
def serving_production(
    database_url: str, secret: str, data_dir: Path, *options: str, **settings: str
) -> Iterator[LiveServer]:
    """`tasks-api serve` (with options) as production runs it, JSON logs included, on
    database_url and a free port, validating every response against the contract; stopped
    after the block, whose server must never have logged a traceback."""
    env = environment(
        APP_ENV="production", DATABASE_URL=database_url, JWT_SECRET=secret,
        PORT=str(free_port()), DATA_DIR=str(data_dir), LOG_FORMAT="json",
        VALIDATE_RESPONSES="true", **settings,
    )  # fmt: skip
    live = LiveServer([str(TASKS_API), "serve", *options], env, start_timeout=60)
    try:
        yield live
    finally:
        live.stop()
    assert "Traceback" not in live.log


def serve_tasks_api(data_dir: Path, secret: str, **settings: str) -> LiveServer:
    """`tasks-api serve` on a free port and its own embedded PostgreSQL, validating every
    response against the contract."""
    env = environment(
        APP_ENV="development",
        DATA_DIR=str(data_dir),
        PORT=str(free_port()),
        JWT_SECRET=secret,
        VALIDATE_RESPONSES="true",
        **settings,
    )
    return LiveServer([str(TASKS_API), "serve", "--migrate"], env, start_timeout=60)
