"""`make run` from the README, for real: a live server on the embedded PostgreSQL, driven by the
README's own quickstart, then restarted with PORT and JWT_SECRET from the environment."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from handlers.security import mint_token
from tests.live import REPO, LiveServer, environment, free_port

START_TIMEOUT = 180  # a cold machine may still be installing the locked dependencies


@pytest.fixture
def make_run() -> Iterator[Callable[[dict[str, str]], LiveServer]]:
    """Start `make run`; whatever is still running when the test ends is stopped."""
    started: list[LiveServer] = []

    def start(env: dict[str, str]) -> LiveServer:
        started.append(LiveServer(["make", "--no-print-directory", "run"], env, START_TIMEOUT))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def quickstart() -> str:
    readme = (REPO / "README.md").read_text()
    match = re.search(r"<!-- quickstart.*?-->\n```bash\n(.*?)```", readme, re.DOTALL)
    assert match, "README.md has no quickstart block"
    return match.group(1)


def postgres_running(data_dir: Path) -> bool:
    return (data_dir / "postgres" / "postmaster.pid").exists()


def test_make_run_serves_the_readme_quickstart_then_honours_port_and_secret(
    make_run: Callable[[dict[str, str]], LiveServer], tmp_path: Path
) -> None:
    data = tmp_path / "data"

    # 1. A fresh machine: no settings at all.
    first = make_run(environment(DATA_DIR=str(data), PORT=str(port := free_port())))
    assert first.port == port
    assert postgres_running(data)

    script = quickstart().replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=REPO,
        env=environment(DATA_DIR=str(data)),
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

    assert httpx.get(f"{first.url}/openapi.json").status_code == 200
    assert httpx.get(f"{first.url}/ui/").status_code == 200

    first.stop()
    assert "Application shutdown complete" in first.log, first.log
    assert not postgres_running(data), "the embedded PostgreSQL outlived the server"
    dev_secret = (data / "jwt-secret").read_text().strip()

    # 2. The same data, another port and an explicit secret from the environment.
    secret = secrets.token_urlsafe(48)
    second = make_run(
        environment(DATA_DIR=str(data), PORT=str(port := free_port()), JWT_SECRET=secret)
    )
    assert second.port == port

    with_secret = {"Authorization": f"Bearer {mint_token(secret, 'alice')}"}
    tasks = httpx.get(f"{second.url}/api/alice/tasks", headers=with_secret)
    assert tasks.status_code == 200
    assert [t["id"] for t in tasks.json()["items"]] == [created["id"]], "data lost on restart"

    with_dev_secret = {"Authorization": f"Bearer {mint_token(dev_secret, 'alice')}"}
    assert httpx.get(f"{second.url}/api/alice/tasks", headers=with_dev_secret).status_code == 401

    second.stop()
    assert "Application shutdown complete" in second.log
    assert not postgres_running(data)
