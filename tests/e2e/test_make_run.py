"""`make run` from the README, for real: a live server on the embedded PostgreSQL, driven by the
README's own quickstart, then restarted with PORT and JWT_SECRET from the environment."""

from __future__ import annotations

import json
import os
import re
import secrets
import selectors
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from handlers.security import mint_token

START_TIMEOUT = 180  # a cold machine may still be installing the locked dependencies
STOP_TIMEOUT = 30
READY = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")

# Settings a developer's shell might carry that would change what `make run` does.
_OURS = ("APP_ENV", "DATABASE_URL", "JWT_SECRET", "JWT_ISSUER", "JWT_AUDIENCE", "PORT", "HOST")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def environment(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _OURS and not k.startswith("COV_")}
    return {**env, "DATA_DIR": str(data_dir), "UV_NO_ENV_FILE": "1", **extra}


class MakeRun:
    """`make run` in its own process group, stopped like Ctrl-C in a terminal."""

    def __init__(self, repo: Path, env: dict[str, str]) -> None:
        self.output: list[str] = []
        self.process = subprocess.Popen(
            ["make", "--no-print-directory", "run"],
            cwd=repo,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def wait_until_serving(self) -> int:
        """The port the server announced, reading its output until it does."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while (left := deadline - time.monotonic()) > 0:
                if not selector.select(timeout=left):
                    break
                line = self.process.stdout.readline()
                if not line:
                    break
                self.output.append(line)
                if match := READY.search(line):
                    return int(match.group(1))
        pytest.fail("make run did not start serving:\n" + "".join(self.output))

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            rest, _ = self.process.communicate(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.communicate()
            pytest.fail("make run did not stop on SIGINT:\n" + "".join(self.output))
        self.output.append(rest or "")


@pytest.fixture
def serve(repo_root: Path) -> Iterator[Callable[[dict[str, str]], MakeRun]]:
    """Start `make run`; whatever is still running when the test ends is stopped."""
    started: list[MakeRun] = []

    def start(env: dict[str, str]) -> MakeRun:
        started.append(MakeRun(repo_root, env))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def quickstart(repo_root: Path) -> str:
    readme = (repo_root / "README.md").read_text()
    match = re.search(r"<!-- quickstart.*?-->\n```bash\n(.*?)```", readme, re.DOTALL)
    assert match, "README.md has no quickstart block"
    return match.group(1)


def postgres_running(data_dir: Path) -> bool:
    return (data_dir / "postgres" / "postmaster.pid").exists()


def test_make_run_serves_the_readme_quickstart_then_honours_port_and_secret(
    serve: Callable[[dict[str, str]], MakeRun], repo_root: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"

    # 1. A fresh machine: no settings at all.
    first = serve(environment(data_dir, PORT=str(port := free_port())))
    assert first.wait_until_serving() == port
    assert postgres_running(data_dir)

    script = quickstart(repo_root).replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=repo_root,
        env=environment(data_dir),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    created, listed, completed = (json.loads(line) for line in run.stdout.splitlines() if line)
    assert (created["title"], created["priority"], created["user_id"]) == (
        "Buy milk",
        "high",
        "alice",
    )
    assert [task["id"] for task in listed["items"]] == [created["id"]]
    assert (completed["id"], completed["completed"]) == (created["id"], True)

    base = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{base}/openapi.json").status_code == 200
    assert httpx.get(f"{base}/ui/").status_code == 200

    first.stop()
    assert "Application shutdown complete" in "".join(first.output), "".join(first.output)
    assert not postgres_running(data_dir), "the embedded PostgreSQL outlived the server"
    dev_secret = (data_dir / "jwt-secret").read_text().strip()

    # 2. The same data, another port and an explicit secret from the environment.
    secret = secrets.token_urlsafe(48)
    second = serve(environment(data_dir, PORT=str(port := free_port()), JWT_SECRET=secret))
    assert second.wait_until_serving() == port
    base = f"http://127.0.0.1:{port}"

    with_secret = {"Authorization": f"Bearer {mint_token(secret, 'alice')}"}
    tasks = httpx.get(f"{base}/api/alice/tasks", headers=with_secret)
    assert tasks.status_code == 200
    assert [t["id"] for t in tasks.json()["items"]] == [created["id"]], "data lost on restart"

    with_dev_secret = {"Authorization": f"Bearer {mint_token(dev_secret, 'alice')}"}
    assert httpx.get(f"{base}/api/alice/tasks", headers=with_dev_secret).status_code == 401

    second.stop()
    assert "Application shutdown complete" in "".join(second.output)
    assert not postgres_running(data_dir)
