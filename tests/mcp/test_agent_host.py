"""`tasks-api mcp` as an agent host starts it (Claude Desktop, Claude Code): from the host's own
working directory, with nothing but the host's few inherited variables and the configuration's
`env`, while the developer's server runs from the checkout. It must find the same `.env`, data
directory and development secret as that server, and say the real cause when it cannot start."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client, StdioServerParameters

from handlers.services.security import mint_token
from tests.live import REPO, TASKS_API, LiveServer, environment, free_port

# A token another server signed, with its own secret.
ELSEWHERE = mint_token(secrets.token_urlsafe(48), "someone")


@pytest.fixture
def project_data(dot_env: Path) -> Iterator[str]:
    """A data directory of the checkout's own, named relative to it in the checkout's .env as a
    developer would (`DATA_DIR=.data/...`); removed afterwards."""
    relative = f".data/agent-host-{uuid.uuid4().hex[:8]}"
    dot_env.write_text(f"DATA_DIR={relative}\n")
    yield relative
    shutil.rmtree(REPO / relative, ignore_errors=True)


def developer(command: list[str], **settings: str) -> subprocess.CompletedProcess[str]:
    """A `tasks-api` command in the developer's terminal, in the checkout, reading its .env."""
    env = {k: v for k, v in environment(**settings).items() if k != "UV_NO_ENV_FILE"}
    return subprocess.run(
        [str(TASKS_API), *command], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def host(cwd: Path, **env: str) -> StdioServerParameters:
    """What the README's host configuration becomes: the SDK, as hosts do, passes only HOME,
    PATH, SHELL, TERM, USER and LOGNAME of its own environment, plus the configured env."""
    return StdioServerParameters(command=str(TASKS_API), args=["mcp"], env=env, cwd=cwd)


def test_a_host_started_elsewhere_shares_the_developers_server_data_and_secret(
    project_data: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in environment(APP_ENV="development", PORT=str(free_port())).items()
           if k != "UV_NO_ENV_FILE"}  # fmt: skip
    server = LiveServer([str(TASKS_API), "serve", "--migrate"], env, start_timeout=120)
    try:
        user = f"host-{uuid.uuid4().hex[:8]}"
        minted = developer(["token", "--sub", user], APP_ENV="development")
        assert minted.returncode == 0, minted.stderr
        token = minted.stdout.strip()

        async def work() -> Any:
            params = host(tmp_path, APP_ENV="development", TASKS_API_TOKEN=token)
            async with Client(params, read_timeout_seconds=60) as mcp:
                return await mcp.call_tool("add_task", {"title": "from the agent host"})

        made = asyncio.run(work())
        assert not made.is_error, made
        task = made.structured_content["data"]
        seen = httpx.get(
            f"{server.url}/api/{user}/tasks/{task['id']}",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert seen.status_code == 200
        assert seen.json()["title"] == "from the agent host"
    finally:
        server.stop()
    assert (REPO / project_data / "jwt-secret").is_file()
    assert list(tmp_path.iterdir()) == [], "the host's working directory was written to"


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"TASKS_API_TOKEN": "x"}, "DATABASE_URL is required when APP_ENV=production, the "
         "default outside `make` (for the embedded PostgreSQL of development, set "
         "APP_ENV=development)"),
        ({"APP_ENV": "development"}, "set TASKS_API_TOKEN to the bearer token"),
        ({"APP_ENV": "development", "TASKS_API_TOKEN": ELSEWHERE},
         "TASKS_API_TOKEN is not accepted: The token's signature is invalid (checked against the "
         "development secret in {data}/jwt-secret)"),
    ],
    ids=["production-by-default", "no-token", "another-secret"],
)  # fmt: skip
def test_a_host_that_cannot_start_it_is_told_the_real_cause(
    project_data: str, tmp_path: Path, env: dict[str, str], says: str
) -> None:
    inherited = {k: v for k, v in environment().items() if k in ("PATH", "HOME")}
    run = subprocess.run(
        [str(TASKS_API), "mcp"], cwd=tmp_path, env={**inherited, **env},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert says.format(data=REPO / project_data) in run.stderr
    assert run.stdout == ""
    assert list(tmp_path.iterdir()) == []
