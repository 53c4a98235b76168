"""Rate limits: RATE_LIMIT_PER_MINUTE per user and AUTH_FAILURE_LIMIT_PER_MINUTE per address for
requests that fail authentication, counted in PostgreSQL; 429 problem with Retry-After and the
RateLimit-Policy / RateLimit fields (draft-ietf-httpapi-ratelimit-headers)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from starlette.testclient import TestClient

from handlers.services.settings import Settings
from tests.helpers import FIELD, bearer, client_address, client_with, in_one_window


@contextmanager
def limited(settings: Settings, **limits: Any) -> Iterator[TestClient]:
    """An app with these limits, seen from an address no other test uses."""
    with client_with(settings, address=(client_address(), 40000), **limits) as client:
        yield client


def test_a_user_gets_exactly_the_quota_then_429(settings: Settings) -> None:
    with limited(settings, rate_limit_per_minute=5) as client:
        responses = in_one_window(
            lambda user: [client.get(f"/api/{user}/tasks", headers=bearer(user))
                          for _ in range(7)]
        )  # fmt: skip
        other = client.get("/api/someone-else/tasks", headers=bearer("someone-else"))

    assert [r.status_code for r in responses] == [200] * 5 + [429] * 2
    left = [FIELD.search(r.headers["ratelimit"]) for r in responses]
    assert [int(m["r"]) if m else None for m in left] == [4, 3, 2, 1, 0, 0, 0]
    for response in responses:
        assert response.headers["ratelimit-policy"] == '"per-user";q=5;w=60'
    refused = responses[5]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["detail"].startswith("More than 5 requests this minute")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert other.status_code == 200  # the quota is per user


def test_mcp_tool_calls_count_against_the_same_quota(settings: Settings) -> None:
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}}  # fmt: skip
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "list_tasks", "arguments": {}, "_meta": meta}}  # fmt: skip
    mcp_headers = {"Host": "127.0.0.1:8000", "Mcp-Name": "list_tasks",
                   "Accept": "application/json, text/event-stream", "Mcp-Method": "tools/call",
                   "MCP-Protocol-Version": "2026-07-28"}  # fmt: skip
    with limited(settings, rate_limit_per_minute=3) as client:

        def run(user: str) -> list[Any]:
            rest = [client.get(f"/api/{user}/tasks", headers=bearer(user)) for _ in range(2)]
            tool = client.post("/mcp", json=call, headers={**bearer(user), **mcp_headers})
            return [*rest, tool, client.get(f"/api/{user}/tasks", headers=bearer(user))]

        *rest, tool, after = in_one_window(run, "agent")
    assert [r.status_code for r in rest] == [200, 200]
    assert tool.json()["result"]["isError"] is False  # the third request of the minute
    assert after.status_code == 429


def test_an_address_that_keeps_failing_authentication_has_its_failures_refused(
    settings: Settings,
) -> None:
    user = f"victim-{uuid.uuid4().hex[:8]}"
    wrong = {"Authorization": "Bearer not-a-token"}
    with limited(settings, auth_failure_limit_per_minute=3) as client:
        failures = [client.get(f"/api/{user}/tasks", headers=wrong) for _ in range(4)]
        # Someone else behind the same address (a NAT, a corporate proxy, the balancer)
        valid = client.get(f"/api/{user}/tasks", headers=bearer(user))
        probes = [client.get(path) for path in ("/healthz", "/readyz", "/metrics")]
        unauthenticated = client.get(f"/api/{user}/tasks")
        still_failing = client.get(f"/api/{user}/tasks", headers=wrong)

    assert [r.status_code for r in failures] == [401, 401, 401, 429]
    assert failures[3].headers["ratelimit-policy"] == '"auth-failures";q=3;w=60'
    assert failures[3].json()["detail"].startswith("Too many requests from this address")
    assert 1 <= int(failures[3].headers["retry-after"]) <= 60
    assert valid.status_code == 200  # a valid token is always served
    assert [r.status_code for r in probes] == [200, 200, 200]  # never limited
    assert unauthenticated.status_code == 429  # it would fail authentication
    assert still_failing.status_code == 429


def test_limits_off_means_no_counting(settings: Settings) -> None:
    user = f"free-{uuid.uuid4().hex[:8]}"
    with limited(settings, rate_limit_per_minute=0) as client:
        response = client.get(f"/api/{user}/tasks", headers=bearer(user))
    assert response.status_code == 200
    assert "ratelimit" not in response.headers


def test_a_subject_of_any_length_is_counted(settings: Settings) -> None:
    user = "long-" + "x" * 2000  # no path can name it, but its token still counts
    with limited(settings, rate_limit_per_minute=5) as client:
        response = client.get("/api/someone/tasks", headers=bearer(user))
    assert response.status_code == 403  # its own answer, not a failed count
    assert response.headers["ratelimit"].startswith('"per-user";r=4;')


@pytest.mark.parametrize("mode", ["batched", "exact"])
def test_with_the_database_down_limits_fail_open_to_the_usual_answers(
    settings: Settings, mode: str
) -> None:
    dead = "postgresql://u@127.0.0.1:1/none"
    with limited(settings, database_url=dead, rate_limit_per_minute=5, rate_limit_mode=mode,
                 auth_failure_limit_per_minute=3) as client:  # fmt: skip
        refused = client.get("/api/x/tasks", headers={"Authorization": "Bearer nope"})
        counted = client.get("/api/x/tasks", headers=bearer("x"))
    assert refused.status_code == 401  # never a 500
    assert refused.headers["content-type"] == "application/problem+json"
    # exact: the quota cannot be checked; batched: counted, then the operation cannot run
    assert counted.status_code == 503
    assert counted.headers["retry-after"]


def test_old_windows_are_removed_by_the_request_that_opens_a_window(
    settings: Settings, database_url: str
) -> None:
    from tests.helpers import sql

    stale = [f"user:stale-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    sql(database_url, "INSERT INTO rate_limits SELECT b, date_trunc('minute', now())"
        " - interval '1 hour', 5 FROM unnest($1::text[]) b", stale)  # fmt: skip
    user = f"opens-{uuid.uuid4().hex[:8]}"
    with limited(settings, rate_limit_per_minute=100) as client:
        assert client.get(f"/api/{user}/tasks", headers=bearer(user)).status_code == 200
    left = sql(database_url, "SELECT bucket FROM rate_limits WHERE bucket = ANY($1)", stale)
    assert left == []
    mine = sql(database_url, "SELECT hits FROM rate_limits WHERE bucket = $1", f"user:{user}")
    assert [row["hits"] for row in mine] == [1]


def hits_stored(database_url: str, user: str) -> int:
    from tests.helpers import sql

    rows = sql(database_url, "SELECT coalesce(sum(hits), 0) AS n FROM rate_limits"
               " WHERE bucket = $1", f"user:{user}")  # fmt: skip
    return int(rows[0]["n"])


def test_batched_a_request_under_its_limit_makes_no_database_call_for_it(
    settings: Settings, database_url: str
) -> None:
    """The default mode: counted in the process, sent to the shared store once per interval
    (here longer than the test) and when the process stops."""
    user = f"batched-{uuid.uuid4().hex[:8]}"
    with limited(settings, rate_limit_per_minute=100, rate_limit_sync_ms=10_000) as client:
        statuses = [client.get(f"/api/{user}/tasks", headers=bearer(user)).status_code
                    for _ in range(5)]  # fmt: skip
        while_serving = hits_stored(database_url, user)
    assert statuses == [200] * 5
    assert while_serving == 0
    assert hits_stored(database_url, user) == 5  # sent as the process stopped


def test_exact_mode_counts_each_request_in_the_shared_store_before_answering(
    settings: Settings, database_url: str
) -> None:
    user = f"exact-{uuid.uuid4().hex[:8]}"
    with limited(settings, rate_limit_per_minute=100, rate_limit_mode="exact") as client:
        stored = []
        for _ in range(3):
            assert client.get(f"/api/{user}/tasks", headers=bearer(user)).status_code == 200
            stored.append(hits_stored(database_url, user))
    assert stored == [1, 2, 3]
