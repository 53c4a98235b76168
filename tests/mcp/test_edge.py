"""/mcp at the edge, as REST is: the body limit, every request counted against its user's quota,
JSON-RPC ids the protocol allows, arguments held to the published input schema, refusals as
problem documents (JSON-RPC errors stay JSON-RPC), and a same-host reverse proxy's Host and
Origin accepted. Raw HTTP where the SDK client would not send it, both protocol eras."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from handlers.asgi import MAX_BODY_BYTES
from handlers.services.settings import Settings
from tests.helpers import MODES, bearer, call, client_with, token_for

MODERN = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": MODES[0]}
LEGACY = {"Accept": "application/json, text/event-stream"}
ERAS = {"modern": MODERN, "legacy": LEGACY}
META = {"io.modelcontextprotocol/protocolVersion": MODES[0],
        "io.modelcontextprotocol/clientCapabilities": {}}  # fmt: skip


def rpc(method: str, params: dict[str, Any] | None = None, id: Any = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def headers_for(era: str, user: str, method: str = "tools/list", **extra: str) -> dict[str, str]:
    headers = {**ERAS[era], "Content-Type": "application/json", **bearer(user), **extra}
    if era == "modern":
        headers.update({"Mcp-Method": method})
    return headers


def params_for(era: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {**(params or {}), "_meta": META} if era == "modern" else (params or {})


@pytest.fixture
def user() -> str:
    return f"edge-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def mcp(settings: Settings) -> Iterator[TestClient]:
    """The app as a same-host reverse proxy reaches it: bound to loopback, PUBLIC_URL public."""
    with client_with(
        settings, host="127.0.0.1", public_url="https://tasks.example.com",
        allowed_hosts=("api.internal:8443",),
    ) as client:  # fmt: skip
        client.base_url = "http://127.0.0.1:8000"
        yield client


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["request_id"] == response.headers["x-request-id"]
    return problem


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        ("tasks.example.com", "https://tasks.example.com"),  # PUBLIC_URL, via the proxy
        ("api.internal:8443", "https://api.internal:8443"),  # ALLOWED_HOSTS
        ("127.0.0.1:8000", None),
    ],
)
def test_a_same_host_proxy_s_host_and_origin_are_accepted(
    mcp: TestClient, user: str, host: str, origin: str | None
) -> None:
    extra = {"Host": host, **({"Origin": origin} if origin else {})}
    response = mcp.post("/mcp", json=rpc("tools/list", params_for("legacy")),
                        headers=headers_for("legacy", user, **extra))  # fmt: skip
    assert response.status_code == 200, response.text
    assert {tool["name"] for tool in response.json()["result"]["tools"]} >= {"add_task"}


@pytest.mark.parametrize(
    ("extra", "status", "detail"),
    [
        ({"Host": "evil.example"}, 421, "Invalid Host header"),
        ({"Origin": "https://evil.example"}, 403, "Invalid Origin header"),
        ({"Content-Type": "text/plain"}, 400, "Invalid Content-Type header"),
    ],
)
def test_the_sdk_s_refusals_are_problem_documents(
    mcp: TestClient, user: str, extra: dict[str, str], status: int, detail: str
) -> None:
    response = mcp.post("/mcp", content=json.dumps(rpc("tools/list")),
                        headers=headers_for("legacy", user, **extra))  # fmt: skip
    assert assert_problem(response, status)["detail"] == detail


def test_not_acceptable_is_a_problem_document(mcp: TestClient, user: str) -> None:
    response = mcp.post("/mcp", json=rpc("tools/list", params_for("modern")),
                        headers=headers_for("modern", user, Accept="text/html"))  # fmt: skip
    assert_problem(response, 406)


def test_without_a_token_the_401_is_a_problem_that_keeps_its_challenge(mcp: TestClient) -> None:
    response = mcp.post("/mcp", json=rpc("tools/list"),
                        headers={**LEGACY, "Content-Type": "application/json"})  # fmt: skip
    problem = assert_problem(response, 401)
    assert problem["detail"] == "Authentication required"
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert "resource_metadata=" in response.headers["www-authenticate"]


@pytest.mark.parametrize("era", ERAS)
def test_a_body_past_the_rest_limit_is_413(mcp: TestClient, user: str, era: str) -> None:
    arguments = {"title": "x", "description": "y" * (1024 * 1024)}
    body = rpc("tools/call", params_for(era, {"name": "add_task", "arguments": arguments}))
    headers = headers_for(era, user, "tools/call", **{"Mcp-Name": "add_task"})
    response = mcp.post("/mcp", json=body, headers=headers)
    assert str(MAX_BODY_BYTES) in assert_problem(response, 413)["detail"]


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize("bad_id", [1.5, 1.0, True, {"n": 1}, [1], None, "1e400"], ids=repr)
def test_a_request_id_json_rpc_does_not_allow_is_an_invalid_request(
    mcp: TestClient, user: str, era: str, bad_id: Any
) -> None:
    body = json.dumps(rpc("tools/list", params_for(era), id=bad_id))
    if bad_id == "1e400":  # a number too large for a double: JSON, but not an integer
        body = body.replace('"1e400"', "1e400")
    response = mcp.post("/mcp", content=body, headers=headers_for(era, user))
    assert response.status_code == 400
    answer = response.json()
    assert answer["id"] is None
    assert answer["error"]["code"] == -32600
    assert "id" in answer["error"]["message"]


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize("good_id", ["a-string", 7, 0, -3])
def test_ids_json_rpc_allows_are_answered_with_themselves(
    mcp: TestClient, user: str, era: str, good_id: Any
) -> None:
    response = mcp.post("/mcp", json=rpc("tools/list", params_for(era), id=good_id),
                        headers=headers_for(era, user))  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["id"] == good_id


@pytest.mark.parametrize("era", ERAS)
def test_every_mcp_request_counts_against_the_users_quota(
    settings: Settings, user: str, era: str
) -> None:
    initialize = {"protocolVersion": "2025-11-25", "capabilities": {},
                  "clientInfo": {"name": "t", "version": "1"}}  # fmt: skip
    # The handshake era's housekeeping, and the current one's (which has no initialize or ping).
    sent = (
        [("initialize", initialize), ("ping", {})] if era == "legacy" else [("tools/list", {})] * 2
    )
    with client_with(settings, host="127.0.0.1", rate_limit_per_minute=3) as client:
        client.base_url = "http://127.0.0.1:8000"
        answers = [
            client.post("/mcp", json=rpc(method, params_for(era, params)),
                        headers=headers_for(era, user, method))
            for method, params in [*sent, ("tools/list", {}), ("tools/list", {})]
        ]  # fmt: skip
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0].headers["ratelimit"].startswith('"per-user";r=2;')
    refused = assert_problem(answers[3], 429)
    assert refused["detail"].startswith("More than 3 requests this minute")
    assert answers[3].headers["retry-after"]


def test_a_tool_call_counts_once(settings: Settings, user: str) -> None:
    arguments = {"name": "list_tasks", "arguments": {}}
    with client_with(settings, host="127.0.0.1", rate_limit_per_minute=3) as client:
        client.base_url = "http://127.0.0.1:8000"
        tool = client.post("/mcp", json=rpc("tools/call", params_for("modern", arguments)),
                           headers=headers_for("modern", user, "tools/call",
                                               **{"Mcp-Name": "list_tasks"}))  # fmt: skip
        rest = [client.get(f"/api/{user}/tasks", headers=bearer(user)) for _ in range(3)]
    assert tool.status_code == 200
    assert tool.json()["result"]["isError"] is False
    assert [r.status_code for r in rest] == [200, 200, 429]  # the call was the first of three


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        ({"limit": "10"}, "limit: must be of type integer"),
        ({"completed": "true"}, "completed: must be of type boolean"),
        ({"limit": 0}, "limit: must be greater than or equal to 1"),
        ({"sort": "owner"}, "sort: must be one of"),
        ({"user_id": "someone-else"}, "user_id: is not a field of this schema"),
    ],
)
def test_arguments_are_held_to_the_published_input_schema(
    live: str, user: str, mode: str, arguments: dict[str, Any], said: str
) -> None:
    is_error, content = call(live, token_for(user), "list_tasks", arguments, mode)
    assert is_error is True
    assert content["success"] is False
    assert said in content["message"]
    assert "Fix the arguments" in content["suggestion"]


def test_a_whole_number_written_as_a_fraction_still_pages(live: str, user: str) -> None:
    is_error, content = call(live, token_for(user), "list_tasks", {"limit": 5.0})
    assert is_error is False
    assert content["data"]["limit"] == 5
