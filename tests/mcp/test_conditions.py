"""What REST carries in headers, agents carry in arguments: an idempotency key makes a retried
add_task safe, if_match guards a change with the etag every task result carries, and a server
that requires both serves every tool when they are given. A call is the operation itself: the
token is verified once, and nothing is counted as a second request."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mcp import Client

from handlers.services.security import TokenVerifier
from handlers.services.settings import Settings
from tests.helpers import MODES, bearer, call, serving, token_for, with_client


@pytest.fixture
def alice() -> str:
    return f"agent-{uuid.uuid4().hex[:8]}"


def test_a_retried_add_task_with_its_key_makes_one_task(live: str, alice: str) -> None:
    key = str(uuid.uuid4())
    arguments = {"title": "Pay rent", "idempotency_key": key}
    _, first = call(live, token_for(alice), "add_task", arguments)
    _, again = call(live, token_for(alice), "add_task", arguments)
    assert again["data"] == first["data"]
    listed = httpx.get(f"{live}/api/{alice}/tasks", headers=bearer(alice)).json()
    assert [task["id"] for task in listed["items"]] == [first["data"]["id"]]

    is_error, reused = call(live, token_for(alice), "add_task", {**arguments, "title": "Other"})
    assert is_error is True
    assert "different request" in reused["message"]


def test_a_stale_if_match_changes_nothing_and_says_to_read_the_task_again(
    live: str, alice: str
) -> None:
    _, made = call(live, token_for(alice), "add_task", {"title": "Draft"})
    task_id, etag = made["data"]["id"], made["data"]["etag"]
    _, changed = call(live, token_for(alice), "update_task",
                      {"task_id": task_id, "title": "Final", "if_match": etag})  # fmt: skip
    assert changed["data"]["etag"] != etag

    is_error, stale = call(live, token_for(alice), "update_task",
                           {"task_id": task_id, "title": "Lost", "if_match": etag})  # fmt: skip
    assert is_error is True
    assert "get_task" in stale["suggestion"]
    _, now = call(live, token_for(alice), "get_task", {"task_id": task_id})
    assert now["data"]["title"] == "Final"


@pytest.fixture
def strict(settings: Settings) -> Iterator[str]:
    """A server that requires If-Match on writes and an Idempotency-Key on creates."""
    with serving(settings, require_if_match=True, require_idempotency_key=True) as url:
        yield url


def test_a_strict_server_serves_every_tool_given_the_arguments_it_requires(
    strict: str, alice: str
) -> None:
    token = token_for(alice)
    is_error, refused = call(strict, token, "add_task", {"title": "No key"})
    assert is_error is True
    assert "idempotency_key" in refused["suggestion"]

    _, made = call(strict, token, "add_task", {"title": "Keyed", "idempotency_key": "k-1"})
    task_id, etag = made["data"]["id"], made["data"]["etag"]
    is_error, unguarded = call(strict, token, "update_task", {"task_id": task_id, "title": "x"})
    assert is_error is True
    assert "if_match" in unguarded["suggestion"]

    results: dict[str, Any] = {}
    for tool, arguments in [
        ("list_tasks", {}),
        ("get_task", {"task_id": task_id}),
        ("update_task", {"task_id": task_id, "title": "Guarded", "if_match": etag}),
    ]:
        results[tool] = call(strict, token, tool, arguments)
    etag = results["update_task"][1]["data"]["etag"]
    results["complete_task"] = call(
        strict, token, "complete_task",
        {"task_id": task_id, "if_match": etag, "idempotency_key": "k-2"},
    )  # fmt: skip
    etag = results["complete_task"][1]["data"]["etag"]
    results["delete_task"] = call(strict, token, "delete_task",
                                  {"task_id": task_id, "if_match": etag})  # fmt: skip
    assert {tool: is_error for tool, (is_error, _) in results.items()} == dict.fromkeys(
        results, False
    )


def test_a_tool_call_verifies_its_token_once(
    live: str, alice: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    verified: list[str] = []
    original = TokenVerifier.verify

    async def counting(self: TokenVerifier, token: str) -> dict[str, Any]:
        verified.append(token)
        return await original(self, token)

    monkeypatch.setattr(TokenVerifier, "verify", counting)

    async def work(client: Client) -> int:
        await client.list_tools()  # the client checks results against the tools' schemas
        verified.clear()  # every POST is checked at the door; count the call's alone
        result = await client.call_tool("add_task", {"title": "Once"})
        assert not result.is_error
        return len(verified)

    assert with_client(live, token_for(alice), MODES[0], work) == 1
