"""The MCP tools over Streamable HTTP at /mcp, driven by the official Python SDK client against a
live server, in the current protocol revision and the handshake era before it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from contracts.document import load
from handlers.mcp.tools import tools
from tests.helpers import MODES, Samples, bearer, call, parse, token_for, value, with_client

CONTRACT_TOOLS = tools(load())


@pytest.fixture
def alice() -> str:
    return f"alice-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def bob() -> str:
    return f"bob-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def api(live: str, alice: str) -> Iterator[httpx.Client]:
    """alice's REST API on the same server."""
    with httpx.Client(base_url=f"{live}/api/{alice}", headers=bearer(alice), timeout=30) as http:
        yield http


@pytest.mark.parametrize("mode", MODES)
def test_the_tool_list_is_what_the_contract_declares(live: str, alice: str, mode: str) -> None:
    async def work(client: Client) -> Any:
        return (await client.list_tools()).tools, client.server_info

    listed, server = with_client(live, token_for(alice), mode, work)
    if server is not None:  # the 2026-07-28 era may leave the server unnamed
        assert (server.name, server.version) == ("tasks-api", load()["info"]["version"])

    assert {tool.name: (tool.input_schema, tool.output_schema) for tool in listed} == {
        name: (tool.input_schema, tool.output_schema) for name, tool in CONTRACT_TOOLS.items()
    }
    assert set(CONTRACT_TOOLS) == {
        "add_task", "list_tasks", "get_task", "update_task", "complete_task", "delete_task",
    }  # fmt: skip
    for tool in listed:
        assert "user_id" not in tool.input_schema["properties"]  # the user is the token's
        assert tool.description
    readonly = {
        tool.name for tool in listed if tool.annotations and tool.annotations.read_only_hint
    }
    assert readonly == {"list_tasks", "get_task"}


@pytest.mark.parametrize("mode", MODES)
def test_every_tool_answers_what_rest_answers(live: str, alice: str, mode: str) -> None:
    async def work(client: Client) -> dict[str, Any]:
        results: dict[str, Any] = {}
        api = httpx.AsyncClient(base_url=f"{live}/api/{alice}", headers=bearer(alice))

        async def run(name: str, **arguments: Any) -> Any:
            result = await client.call_tool(name, arguments)
            assert not result.is_error, result.structured_content
            assert result.structured_content["success"] is True
            results[name] = result.structured_content
            return result.structured_content["data"]

        async def by_rest(task_id: str) -> Any:
            """The task as REST answers it, and its ETag, which a tool's task carries."""
            answer = await api.get(f"/tasks/{task_id}")
            return {**answer.json(), "etag": answer.headers["ETag"]}

        task = await run("add_task", title="Buy milk", priority="high",
                         due_date="2026-12-01T00:00:00Z")  # fmt: skip
        results["after_add"] = await by_rest(task["id"])
        await run("get_task", task_id=task["id"])
        results["after_get"] = await by_rest(task["id"])
        await run("update_task", task_id=task["id"], description="2 litres", due_date=None)
        results["after_update"] = await by_rest(task["id"])
        await run("complete_task", task_id=task["id"])
        results["after_complete"] = await by_rest(task["id"])
        await run("list_tasks", limit=5)
        results["listed_by_rest"] = (await api.get("/tasks", params={"limit": 5})).json()
        await run("delete_task", task_id=task["id"])
        results["after_delete"] = (await api.get(f"/tasks/{task['id']}")).status_code
        await api.aclose()
        return results

    seen = with_client(live, token_for(alice), mode, work)

    assert seen["add_task"]["data"] == seen["after_add"]
    assert seen["add_task"]["message"] == "Added 'Buy milk' (high priority, due 1 Dec 2026)."
    assert seen["get_task"]["data"] == seen["after_get"]
    assert (
        seen["get_task"]["message"] == "'Buy milk' is not done yet (high priority, due 1 Dec 2026)."
    )
    assert seen["update_task"]["data"] == seen["after_update"]
    assert (seen["after_update"]["description"], seen["after_update"]["due_date"]) == (
        "2 litres",
        None,
    )
    assert seen["update_task"]["message"] == "Updated 'Buy milk': description, due_date changed."
    assert seen["complete_task"]["data"] == seen["after_complete"]
    assert seen["complete_task"]["message"] == "Marked 'Buy milk' as done."
    listed = seen["list_tasks"]["data"]
    # each task of a page carries its ETag, as GET answers it
    assert [item.pop("etag") for item in listed["items"]] == [seen["after_complete"]["etag"]]
    assert listed == seen["listed_by_rest"]
    assert seen["list_tasks"]["message"] == "1 task match; showing 1-1."
    assert seen["delete_task"] == {
        "success": True, "message": f"Deleted task {seen['after_add']['id']}.", "data": None,
    }  # fmt: skip
    assert seen["after_delete"] == 404


def test_tools_and_rest_see_the_same_tasks(live: str, alice: str, api: httpx.Client) -> None:
    by_rest = api.post("/tasks", json={"title": "from REST"}).json()
    _, made = call(live, token_for(alice), "add_task", {"title": "from a tool"})

    _, page = call(live, token_for(alice), "list_tasks", {})
    assert {t["title"] for t in page["data"]["items"]} == {"from REST", "from a tool"}
    assert api.get(f"/tasks/{made['data']['id']}").json()["title"] == "from a tool"
    _, got = call(live, token_for(alice), "get_task", {"task_id": by_rest["id"]})
    read = api.get(f"/tasks/{by_rest['id']}")
    assert got["data"] == {**read.json(), "etag": read.headers["ETag"]}


@pytest.mark.parametrize(
    "subject", ["auth0|5f1c:x@example.com", "user_2NNEqL2nrIRdJ194ndJqAHwEfxC"]
)
def test_identity_provider_subjects_act_as_themselves(live: str, subject: str) -> None:
    subject = f"{subject}-{uuid.uuid4().hex[:6]}"
    is_error, made = call(live, token_for(subject), "add_task", {"title": "mine"})
    assert not is_error, made
    assert made["data"]["user_id"] == subject
    with httpx.Client(base_url=live, headers=bearer(subject)) as http:
        path = f"/api/{quote(subject, safe='')}/tasks/{made['data']['id']}"
        read = http.get(path)
        assert {**read.json(), "etag": read.headers["ETag"]} == made["data"]


def test_the_list_pages_with_a_cursor(live: str, alice: str) -> None:
    for i in range(3):
        call(live, token_for(alice), "add_task", {"title": f"t{i}"})
    _, first = call(live, token_for(alice), "list_tasks", {"limit": 2, "sort": "title"})
    assert (
        first["message"]
        == "3 tasks match; showing 1-2: pass next_cursor as cursor for the next page."
    )
    cursor = first["data"]["next_cursor"]
    _, second = call(live, token_for(alice), "list_tasks", {"sort": "title", "cursor": cursor})
    assert [t["title"] for t in second["data"]["items"]] == ["t2"]
    _, done = call(live, token_for(alice), "list_tasks", {"completed": True})
    assert (done["data"]["total"], done["message"]) == (0, "No tasks match.")


def test_no_user_can_reach_another_users_tasks(live: str, alice: str, bob: str) -> None:
    _, made = call(live, token_for(alice), "add_task", {"title": "alice's secret"})
    task_id = made["data"]["id"]
    as_bob = token_for(bob)
    call(live, as_bob, "add_task", {"title": "bob's own"})

    for tool, arguments in [
        ("get_task", {"task_id": task_id}),
        ("update_task", {"task_id": task_id, "title": "stolen"}),
        ("complete_task", {"task_id": task_id}),
        ("delete_task", {"task_id": task_id}),
    ]:
        is_error, answer = call(live, as_bob, tool, arguments)
        assert is_error, (tool, answer)
        assert answer["success"] is False
        assert answer["message"] == "The user has no task with this id."
        assert (
            answer["suggestion"] == "Call list_tasks to find the task's id, then try again with it."
        )
        assert task_id not in str(answer)
        assert "alice" not in str(answer)

    _, page = call(live, as_bob, "list_tasks", {"limit": 100})
    assert [t["title"] for t in page["data"]["items"]] == ["bob's own"]
    assert task_id not in str(page)
    assert "alice" not in str(page)
    # user_id is not an argument at all: naming alice is refused, never followed
    is_error, answer = call(live, as_bob, "list_tasks", {"user_id": alice})
    assert is_error
    assert answer["message"] == (
        "The arguments are invalid (1 error). user_id: is not a field of this schema."
    )
    _, mine = call(live, token_for(alice), "get_task", {"task_id": task_id})
    assert mine["data"]["title"] == "alice's secret"


# Refused before the operation runs, by the published input schema, formats included.
ARGUMENTS = "The arguments are invalid (1 error). "


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("add_task", {}, ARGUMENTS + "title: is required."),
        ("add_task", {"title": 5}, ARGUMENTS + "title: must be of type string."),
        ("add_task", {"title": "x", "colour": "red"},
         ARGUMENTS + "colour: is not a field of this schema."),
        ("add_task", {"title": "x", "due_date": "next week"},
         ARGUMENTS + "due_date: must be a valid date-time (RFC 3339, with a time zone offset)."),
        ("get_task", {"task_id": "not-a-uuid"},
         ARGUMENTS + "task_id: must be a valid uuid."),
        ("get_task", {}, ARGUMENTS + "task_id: is required."),
        ("get_task", {"task_id": ["a", "b"]}, ARGUMENTS + "task_id: must be of type string."),
        ("get_task", {"task_id": "a/b"}, ARGUMENTS + "task_id: must be a valid uuid."),
        ("list_tasks", {"limit": "many"}, ARGUMENTS + "limit: must be of type integer."),
        ("list_tasks", {"limit": 1000}, ARGUMENTS + "limit: must be less than or equal to 100."),
        ("list_tasks", {"cursor": "forged.cursor"},
         "The cursor is not a cursor this API returned for this user."),
        ("update_task", {"task_id": str(uuid.uuid4()), "title": None},
         ARGUMENTS + "title: must be of type string."),
        ("complete_task", {"task_id": str(uuid.uuid4()), "completed": "yes"},
         ARGUMENTS + "completed: must be of type boolean."),
        ("delete_task", {"task_id": str(uuid.uuid4())}, "The user has no task with this id."),
        ("add_task", {"title": "x", "idempotency_key": "naïve"},
         ARGUMENTS + "idempotency_key: must be visible ASCII characters or spaces, and not "
         "empty."),
    ],
)  # fmt: skip
def test_bad_input_is_a_failed_call_that_says_why(
    live: str, alice: str, tool: str, arguments: dict[str, Any], message: str
) -> None:
    is_error, answer = call(live, token_for(alice), tool, arguments)

    assert is_error is True
    assert answer["success"] is False
    assert answer["data"] is None
    assert answer["message"] == message
    assert answer["suggestion"]


def test_an_unknown_tool_is_a_protocol_error(live: str, alice: str) -> None:
    async def work(client: Client) -> Any:
        return await client.call_tool("drop_database", {})

    with pytest.raises(ExceptionGroup) as raised:
        with_client(live, token_for(alice), MODES[0], work)
    assert raised.group_contains(MCPError, match="Unknown tool: 'drop_database'", depth=None)


def initialize(token: str | None) -> dict[str, str]:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    return {**headers, "Authorization": f"Bearer {token}"} if token else headers


INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {},
               "clientInfo": {"name": "test", "version": "1"}},
}  # fmt: skip


@pytest.mark.parametrize(
    "token",
    [
        None,
        "not-a-jwt",
        token_for("alice", ttl=-120),  # expired, beyond the leeway
        token_for("alice", secret="another-secret-of-another-issuer-0123456789"),
    ],
    ids=["none", "garbage", "expired", "foreign"],
)
def test_without_a_valid_token_mcp_is_401_with_where_to_sign_in(
    live: str, token: str | None
) -> None:
    response = httpx.post(f"{live}/mcp", json=INITIALIZE, headers=initialize(token))

    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    metadata_url = f"{live}/.well-known/oauth-protected-resource/mcp"
    assert challenge.startswith("Bearer ")
    assert f'resource_metadata="{metadata_url}"' in challenge
    assert token is None or token not in response.text


def test_the_protected_resource_metadata_names_this_resource(live: str) -> None:
    response = httpx.get(f"{live}/.well-known/oauth-protected-resource/mcp")
    assert response.status_code == 200
    assert response.json() == {
        "resource": f"{live}/mcp",
        "bearer_methods_supported": ["header"],
        "resource_name": "Tasks API",
    }


@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT"])
def test_only_post_reaches_mcp_so_no_stream_is_held_open(
    live: str, alice: str, method: str
) -> None:
    headers = {"Authorization": f"Bearer {token_for(alice)}", "Accept": "text/event-stream"}
    response = httpx.request(method, f"{live}/mcp", headers=headers, timeout=10)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.headers["content-type"] == "application/problem+json"
    metadata = httpx.post(f"{live}/.well-known/oauth-protected-resource/mcp")
    assert (metadata.status_code, metadata.headers["allow"]) == (405, "GET, HEAD")


def test_tool_calls_are_counted_per_tool_and_outcome(live: str, alice: str) -> None:
    def scraped() -> Samples:
        return parse(httpx.get(f"{live}/metrics").text)

    before = scraped()
    token = token_for(alice)

    async def work(client: Client) -> None:
        assert not (await client.call_tool("add_task", {"title": "counted"})).is_error
        assert not (await client.call_tool("list_tasks", {})).is_error
        assert (await client.call_tool("get_task", {"task_id": str(uuid.uuid4())})).is_error
        assert (await client.call_tool("get_task", {"task_id": ["not", "one"]})).is_error

    with_client(live, token, MODES[0], work)
    after = scraped()

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    calls = "tasks_api_mcp_tool_calls_total"
    assert grew(calls, tool="add_task", outcome="success") == 1
    assert grew(calls, tool="list_tasks", outcome="success") == 1
    assert grew(calls, tool="get_task", outcome="error") == 2  # one 404, one refused argument
    assert grew(calls, tool="get_task", outcome="success") == 0
    # each call is one request, its POST to /mcp: no second request counted under its operation
    requests = "tasks_api_requests_total"
    assert grew(requests, operation="tasks.create_task", status_class="2xx") == 0
    assert grew(requests, operation="mcp", status_class="2xx") >= 4
