"""`make run` from the README, for real: a live server on the embedded PostgreSQL, driven by the
README's own quickstart, then restarted with PORT and JWT_SECRET from the environment."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from handlers.services.security import mint_token
from tests.docs import quickstart
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


def run_quickstart(env: dict[str, str]) -> dict[str, object]:
    """The README's quickstart, verbatim, in bash; the task it created."""
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", quickstart()],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    created = json.loads(run.stderr)  # the created task is shown as it comes, on stderr
    listed, completed = (json.loads(line) for line in run.stdout.splitlines() if line)
    assert (created["title"], created["priority"], created["user_id"]) == (
        "Buy milk",
        "high",
        "alice",
    )
    assert created["id"] in [task["id"] for task in listed["items"]]
    assert (completed["id"], completed["completed"]) == (created["id"], True)
    task: dict[str, object] = created
    return task


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

    created = run_quickstart(environment(DATA_DIR=str(data), PORT=str(port)))

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


def test_the_quickstart_works_with_the_secret_in_dot_env_on_another_port(
    make_run: Callable[[dict[str, str]], LiveServer], tmp_path: Path, dot_env: Path
) -> None:
    """As the README suggests: JWT_SECRET in .env, and PORT=… make run."""
    data = tmp_path / "data"
    secret = secrets.token_urlsafe(48)
    dot_env.write_text(f"JWT_SECRET={secret}\n")
    port = free_port()
    assert port != 8000
    # uv reads .env for `make run`; the fixture environment switches that off for other tests.
    env = {k: v for k, v in environment(DATA_DIR=str(data), PORT=str(port)).items()
           if k != "UV_NO_ENV_FILE"}  # fmt: skip

    server = make_run(env)
    created = run_quickstart(env)

    assert not (data / "jwt-secret").exists(), "a development secret was made despite .env"
    mine = {"Authorization": f"Bearer {mint_token(secret, 'alice')}"}
    task = httpx.get(f"{server.url}/api/alice/tasks/{created['id']}", headers=mine)
    assert task.status_code == 200
