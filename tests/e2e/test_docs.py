"""The documentation's commands, verbatim: every block marked `<!-- run: ... -->` in README.md and
docs/ runs in bash after the README's Quickstart and the blocks before it, against a server
started as `make run` starts one, in a checkout whose `.env` names its own data directory.
The agent-host blocks are then used as their hosts would use them."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from tests.docs import DOCS, README, blocks, quickstart
from tests.live import REPO, TASKS_API, LiveServer, environment, free_port

SEPARATOR = "@@@ next block @@@"
CLIENT_VENV = REPO / ".venv-client"  # what docs/clients.md's Python block makes


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A developer's checkout serving with `make run`'s settings: the environment the blocks run
    in. Its .env names a data directory of its own (a developer's .env is put back after)."""
    dot_env = REPO / ".env"
    kept = dot_env.read_bytes() if dot_env.exists() else None
    data = f".data/docs-{uuid.uuid4().hex[:8]}"
    dot_env.write_text(f"DATA_DIR={data}\n")
    had_client_venv = CLIENT_VENV.exists()
    bin_dir = tmp_path_factory.mktemp("bin")
    calls = bin_dir / "claude-calls.jsonl"
    # A stand-in for Claude Code's CLI: it records what it was asked to add.
    claude = bin_dir / "claude"
    claude.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"with open({str(calls)!r}, 'a') as f: f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    claude.chmod(0o755)
    port = str(free_port())
    env = {k: v for k, v in environment(APP_ENV="development", PORT=port).items()
           if k != "UV_NO_ENV_FILE"}  # fmt: skip
    # The project's virtualenv first on PATH, as `python3` in one with openai-agents installed.
    env["PATH"] = os.pathsep.join([str(bin_dir), str(REPO / ".venv" / "bin"), env["PATH"]])
    server = LiveServer(
        [str(TASKS_API), "serve", "--migrate"], {**env, "VALIDATE_RESPONSES": "true"}, 120
    )
    try:
        yield {**env, "CLAUDE_CALLS": str(calls)}
    finally:
        server.stop()
        shutil.rmtree(REPO / data, ignore_errors=True)
        if not had_client_venv:
            shutil.rmtree(CLIENT_VENV, ignore_errors=True)
        if kept is None:
            dot_env.unlink(missing_ok=True)
        else:
            dot_env.write_bytes(kept)


def run_blocks(path: Path, env: dict[str, str]) -> tuple[list[str], str]:
    """The Quickstart, then path's blocks in one bash session; what each block printed."""
    script = [quickstart()]
    for block in blocks(path, "run"):
        script += [f"echo '{SEPARATOR}'", block]
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", "\n".join(script)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.split(SEPARATOR + "\n")[1:], done.stderr


def test_the_readmes_blocks_do_what_they_say(checkout: dict[str, str]) -> None:
    safe_writes, invalid = run_blocks(README, checkout)[0]
    patched, stale, *_ = safe_writes.splitlines()
    assert json.loads(patched)["title"] == "Buy oat milk"
    problem = json.loads(stale)
    assert (problem["status"], problem["title"]) == (412, "Precondition Failed")
    assert [line.strip().lower() for line in safe_writes.splitlines()[2:]] == [
        "idempotent-replayed: true"
    ]
    errors = json.loads(invalid)["errors"]
    assert {error["pointer"] for error in errors} == {"/title", "/priority"}


def test_the_client_and_agent_host_blocks_work_verbatim(
    checkout: dict[str, str], tmp_path: Path
) -> None:
    outputs, _ = run_blocks(DOCS / "clients.md", checkout)
    python, _types, token, claude, desktop, agents = outputs
    assert "created 'From Python'; alice has" in python
    assert (REPO / "build" / "client-ts" / "schema.d.ts").is_file()
    assert token == claude == ""
    assert "'add_task'" in agents
    assert "Added 'Plan the week' (medium priority)." in agents

    calls = Path(checkout["CLAUDE_CALLS"]).read_text().splitlines()
    over_http, over_stdio = (json.loads(call) for call in calls)
    assert over_http[:4] == ["mcp", "add", "--transport", "http"]
    url, header = over_http[5], over_http[over_http.index("--header") + 1]
    name, value = header.split(": ", 1)
    added = call_over_http(url, {name: value})
    assert added == "Added 'From Claude Code over HTTP' (medium priority)."

    command = over_stdio[over_stdio.index("--") + 1 :]
    host_env = dict(over_stdio[i + 1].split("=", 1) for i, arg in enumerate(over_stdio)
                    if arg == "--env")  # fmt: skip
    stdio = StdioServerParameters(command=command[0], args=command[1:], env=host_env, cwd=tmp_path)
    assert call_over_stdio(stdio, "From Claude Code over stdio").startswith("Added")

    entry = json.loads(desktop)["mcpServers"]["tasks"]
    stdio = StdioServerParameters(command=entry["command"], args=entry["args"], env=entry["env"],
                                  cwd=tmp_path)  # fmt: skip
    assert call_over_stdio(stdio, "From Claude Desktop").startswith("Added")
    assert list(tmp_path.iterdir()) == [], "a host's working directory was written to"


def add_task(client: Client, title: str) -> Any:
    async def call() -> Any:
        result = await client.call_tool("add_task", {"title": title})
        return result.structured_content["message"]

    return call()


def call_over_http(url: str, headers: dict[str, str]) -> str:
    async def work() -> str:
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            message: str = await add_task(client, "From Claude Code over HTTP")
            return message

    return asyncio.run(work())


def call_over_stdio(params: StdioServerParameters, title: str) -> str:
    async def work() -> str:
        async with Client(params, read_timeout_seconds=60) as client:
            message: str = await add_task(client, title)
            return message

    return asyncio.run(work())
