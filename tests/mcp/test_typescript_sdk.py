"""The official MCP TypeScript SDK 1.x client, which most agent hosts embed, against /mcp on a
live server: it speaks the handshake-era protocol, and must list and call the tools with the
user's bearer token. Compiled with the TypeScript client package's other sources."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from handlers.services.security import mint_token
from tests.client.typescript_package import BIN, run
from tests.live import serve_tasks_api

SECRET = "ts-agent-" + uuid.uuid4().hex + uuid.uuid4().hex


def test_the_typescript_sdk_client_lists_and_calls_the_tools(
    typescript_build: Path, tmp_path: Path
) -> None:
    agent = typescript_build / "agent.js"
    server = serve_tasks_api(tmp_path, SECRET)
    try:
        output = run(
            [BIN / "node", agent],
            TASKS_API_URL=server.url,
            TASKS_API_TOKEN=mint_token(SECRET, "ts-agent"),
        )
    finally:
        server.stop()
    seen = json.loads(output.strip().splitlines()[-1])
    assert seen["protocol"] == "2025-11-25"
    assert seen["tools"] == sorted(
        ["add_task", "complete_task", "delete_task", "get_task", "list_tasks", "update_task"]
    )
    assert seen["added"] == "Added 'From TypeScript' (high priority)."
    assert seen["missing"] == "The user has no task with this id."
    assert "Traceback" not in server.log
