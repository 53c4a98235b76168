"""Request ids and the per-request log line, read from a real server's output: JSON lines in
production (LOG_FORMAT=json, its default), text in development; never a token or a key."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.services.security import mint_token
from tests.helpers import parse, value
from tests.live import TASKS_API, LiveServer, environment, free_port

SECRET = "observe-" + uuid.uuid4().hex + uuid.uuid4().hex


@pytest.fixture
def production(create_database: Callable[[str], str], tmp_path: Path) -> Iterator[LiveServer]:
    env = environment(
        APP_ENV="production",
        DATABASE_URL=create_database("observe_tests"),
        JWT_SECRET=SECRET,
        PORT=str(free_port()),
        DATA_DIR=str(tmp_path),
        MIGRATE_ON_START="true",
    )
    server = LiveServer([str(TASKS_API), "serve"], env, start_timeout=60)
    yield server
    server.stop()


def request_lines(log: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == "request"]


def test_every_request_is_one_json_line_with_its_id_and_no_secret(
    production: LiveServer,
) -> None:
    user = f"obs-{uuid.uuid4().hex[:8]}"
    token = mint_token(SECRET, user)
    key = f"key-{uuid.uuid4().hex}"
    with httpx.Client(
        base_url=production.url, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        keyed = {"Idempotency-Key": key, "X-Request-ID": "client-id-1"}
        created = http.post(f"/api/{user}/tasks", json={"title": "seen"}, headers=keyed)
        listed = http.get(f"/api/{user}/tasks")
        foreign = http.get("/api/someone-else/tasks")
    production.stop()

    assert created.headers["x-request-id"] == "client-id-1"
    assert len(listed.headers["x-request-id"]) == 32
    assert foreign.json()["request_id"] == foreign.headers["x-request-id"]
    lines = request_lines(production.log)
    by_id = {line["request_id"]: line for line in lines}
    assert by_id["client-id-1"] | {"duration_ms": 0, "timestamp": "", "pid": 0} == {
        "event": "request", "level": "info", "logger": "tasks_api.requests", "timestamp": "",
        "request_id": "client-id-1", "method": "POST", "path": f"/api/{user}/tasks",
        "operation": "tasks.create_task", "user": user, "client": "127.0.0.1", "status": 201,
        "duration_ms": 0, "statements": 4, "pid": 0,
    }  # fmt: skip
    assert by_id["client-id-1"]["duration_ms"] > 0
    listing = by_id[listed.headers["x-request-id"]]
    assert (listing["operation"], listing["status"], listing["statements"]) == (
        "tasks.list_tasks", 200, 1,
    )  # fmt: skip
    refused = by_id[foreign.headers["x-request-id"]]
    assert (refused["status"], refused["user"], refused["statements"]) == (403, user, 0)
    for secret in (token, key, SECRET):
        assert secret not in production.log


@pytest.mark.parametrize(
    "sent",
    [["x" * 129], ["has space"], ["tab\there"], [b"caf\xe9"], ["one", "two"], [""]],
    ids=["too-long", "space", "control", "non-ascii", "repeated", "empty"],
)
def test_an_insane_request_id_is_replaced_by_a_new_one(
    client: Any, auth: dict[str, str], tasks_url: str, sent: list[str | bytes]
) -> None:
    headers = list(auth.items()) + [("X-Request-ID", value) for value in sent]
    response = client.get(tasks_url, headers=headers)
    assert response.status_code == 200
    fresh = response.headers["x-request-id"]
    assert len(fresh) == 32
    assert fresh not in sent


def test_every_answer_has_an_id_problems_repeat_it(client: Any, auth: dict[str, str]) -> None:
    ids = set()
    for path in ("/healthz", "/nowhere", "/api/x/tasks"):
        response = client.get(path, headers=auth)
        ids.add(response.headers["x-request-id"])
        if response.status_code >= 400:
            assert response.json()["request_id"] == response.headers["x-request-id"]
    assert len(ids) == 3


def test_development_logs_are_text(tmp_path: Path) -> None:
    env = environment(APP_ENV="development", DATA_DIR=str(tmp_path), JWT_SECRET=SECRET,
                      PORT=str(free_port()))  # fmt: skip
    server = LiveServer([str(TASKS_API), "serve", "--migrate"], env, start_timeout=90)
    try:
        rid = httpx.get(f"{server.url}/healthz").headers["x-request-id"]
    finally:
        server.stop()
    (line,) = [line for line in server.log.splitlines() if rid in line]
    assert not line.startswith("{")
    for part in ("request", "status=200", "operation=health.check_liveness"):
        assert part in line


def test_a_client_that_closes_mid_body_is_its_own_outcome_not_a_400(
    production: LiveServer,
) -> None:
    """Counted as client_closed (logged as 499, nginx's code), never as a client error the
    server sent: an operator watching 4xx rates sees the API's answers only."""
    user = f"obs-{uuid.uuid4().hex[:8]}"
    head = (
        f"POST /api/{user}/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {mint_token(SECRET, user)}\r\nContent-Length: 1000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", production.port), timeout=10) as sock:
        sock.sendall(head.encode() + b'{"title": ')  # and then nothing: the client is gone

    production.wait_for(rf'"user":"{user}".*"status":499')
    samples = parse(httpx.get(f"{production.url}/metrics").text)
    create = {"operation": "tasks.create_task"}
    assert value(samples, "tasks_api_requests_total", **create, status_class="client_closed") == 1
    assert value(samples, "tasks_api_requests_total", **create, status_class="4xx") == 0
