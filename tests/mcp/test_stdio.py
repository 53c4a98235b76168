"""`tasks-api mcp`: the same tools over stdio, for the user whose token is in TASKS_API_TOKEN,
driven by the official Python SDK client, which starts it as a host would."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from starlette.testclient import TestClient

from contracts.document import load
from handlers.mcp.tools import tools
from tests.helpers import TEST_SECRET, bearer, token_for
from tests.live import TASKS_API, environment


def stdio_environment(database_url: str, token: str, log_level: str = "warning") -> dict[str, str]:
    return environment(
        APP_ENV="production",
        DATABASE_URL=database_url,
        JWT_SECRET=TEST_SECRET,
        TASKS_API_TOKEN=token,
        LOG_LEVEL=log_level,
    )


def test_the_tools_over_stdio_act_for_the_tokens_user(
    database_url: str, client: TestClient
) -> None:
    user = f"stdio-{uuid.uuid4().hex[:10]}"
    params = StdioServerParameters(
        command=str(TASKS_API), args=["mcp"], env=stdio_environment(database_url, token_for(user))
    )

    async def work() -> Any:
        async with Client(params, read_timeout_seconds=60) as mcp:
            listed = (await mcp.list_tools()).tools
            made = await mcp.call_tool("add_task", {"title": "over stdio", "priority": "low"})
            missing = await mcp.call_tool("get_task", {"task_id": str(uuid.uuid4())})
            return listed, made, missing

    listed, made, missing = asyncio.run(work())

    assert {tool.name: (tool.input_schema, tool.output_schema) for tool in listed} == {
        name: (tool.input_schema, tool.output_schema) for name, tool in tools(load()).items()
    }
    assert made.structured_content["message"] == "Added 'over stdio' (low priority)."
    task = made.structured_content["data"]
    read = client.get(f"/api/{user}/tasks/{task['id']}", headers=bearer(user))
    assert {**read.json(), "etag": read.headers["ETag"]} == task
    assert missing.is_error
    assert missing.structured_content["success"] is False


@pytest.mark.parametrize(
    ("token", "says"),
    [
        ("", "set TASKS_API_TOKEN to the bearer token of the user to act for"),
        (
            "garbage",
            "TASKS_API_TOKEN is not accepted: The token is malformed (checked against JWT_SECRET)",
        ),
        (token_for("eve", ttl=-120), "TASKS_API_TOKEN is not accepted: The token has expired"),
    ],
    ids=["missing", "garbage", "expired"],
)
def test_a_missing_or_bad_token_stops_it_with_the_reason(
    database_url: str, token: str, says: str
) -> None:
    run = subprocess.run(
        [str(TASKS_API), "mcp"], env=stdio_environment(database_url, token),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert run.returncode == 2, run.stderr
    assert f"tasks-api: {says}" in run.stderr
    assert run.stdout == ""  # nothing but protocol messages ever reaches stdout
    assert token == "" or token not in run.stderr


META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}}  # fmt: skip


def converse(
    database_url: str, user: str, lines: list[str], log_level: str = "warning"
) -> tuple[list[Any], str]:
    """Send lines to `tasks-api mcp` and close its stdin at once, as a host that quits does;
    what it answered on stdout (one JSON value per line) once it exited, and its stderr."""
    run = subprocess.run(
        [str(TASKS_API), "mcp"], env=stdio_environment(database_url, token_for(user), log_level),
        input="".join(f"{line}\n" for line in lines), capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return [json.loads(line) for line in run.stdout.splitlines()], run.stderr


def tool_call(number: int, name: str, arguments: dict[str, Any]) -> str:
    params = {"name": name, "arguments": arguments, "_meta": META}
    return json.dumps({"jsonrpc": "2.0", "id": number, "method": "tools/call", "params": params})


def test_lines_that_are_no_json_rpc_get_errors_and_the_rest_is_served(
    database_url: str, client: TestClient
) -> None:
    user = f"stdio-{uuid.uuid4().hex[:10]}"
    answers, _ = converse(database_url, user, [
        "this is not json",
        '{"jsonrpc": "2.0", "id": 3, "method": ',  # cut off
        "",  # a blank line is no message: skipped
        '{"hello": "world"}',
        json.dumps({"jsonrpc": "2.0", "id": 1.5, "method": "tools/list", "params": {}}),
        json.dumps({"jsonrpc": "2.0", "id": True, "method": "tools/list", "params": {}}),
        tool_call(7, "add_task", {"title": "still served"}),
    ])  # fmt: skip

    codes = [(a.get("id"), a.get("error", {}).get("code")) for a in answers]
    assert codes == [(None, -32700), (None, -32700), (None, -32600), (None, -32600),
                     (None, -32600), (7, None)]  # fmt: skip
    assert answers[-1]["result"]["structuredContent"]["success"] is True
    listed = client.get(f"/api/{user}/tasks", headers=bearer(user)).json()
    assert [t["title"] for t in listed["items"]] == ["still served"]


def test_calls_in_flight_when_stdin_closes_are_finished_and_answered(
    database_url: str, client: TestClient
) -> None:
    user = f"stdio-{uuid.uuid4().hex[:10]}"
    calls = [tool_call(n, "add_task", {"title": f"call {n}"}) for n in range(1, 21)]

    answers, errors = converse(database_url, user, calls)

    assert sorted(a["id"] for a in answers) == list(range(1, 21))
    assert all(a["result"]["structuredContent"]["success"] for a in answers)
    assert client.get(f"/api/{user}/tasks", headers=bearer(user)).json()["total"] == 20
    assert "Traceback" not in errors
    assert '"status": 500' not in errors


def test_a_megabyte_argument_is_refused_and_never_logged_whole(database_url: str) -> None:
    """Over stdio no body limit applies (over HTTP it is a 413): the argument is refused by the
    input schema, and the call's log line does not repeat it."""
    user = f"stdio-{uuid.uuid4().hex[:10]}"
    huge = "x" * 1_000_000
    answers, errors = converse(
        database_url, user, [tool_call(1, "get_task", {"task_id": huge})], log_level="info"
    )

    refused = answers[0]["result"]["structuredContent"]
    assert answers[0]["result"]["isError"] is True
    assert refused["message"] == (
        "The arguments are invalid (1 error). task_id: must be a valid uuid."
    )
    assert "Fix the arguments" in refused["suggestion"]
    logged = [line for line in errors.splitlines() if "tool call" in line]
    assert len(logged) == 1, errors[:2000]  # one line for the call ...
    assert max(len(line) for line in errors.splitlines()) < 4096  # ... and none repeats it
    assert huge not in errors
