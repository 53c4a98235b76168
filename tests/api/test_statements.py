"""Work per request does not grow with the data: each operation runs a fixed, small number of SQL
statements (one each; a keyed write is one transaction), so an N+1 can never come back unnoticed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from handlers.services.state import STATE_KEY


@pytest.fixture
def statements(client: TestClient) -> Iterator[list[str]]:
    """The SQL each request runs, recorded by the app's own connection pool."""
    seen: list[str] = []
    database = client.app_state[STATE_KEY].database

    def record(query: Any) -> None:
        # asyncpg looks up a type's codec once per connection, the first time it meets it.
        if "'jit'" not in query.query and "pg_catalog" not in query.query:
            seen.append(query.query)

    database.add_query_logger(record)
    yield seen
    database.remove_query_logger(record)


def count(statements: list[str], call: Any) -> int:
    statements.clear()
    response = call()
    assert response.status_code < 300, response.text
    return len(statements)


def test_statements_per_operation(
    client: TestClient, statements: list[str], tasks_url: str, auth: dict[str, str]
) -> None:
    for i in range(30):
        client.post(tasks_url, json={"title": f"t{i}", "due_date": None}, headers=auth)
    task = client.post(tasks_url, json={"title": "x"}, headers=auth).json()
    task_url = f"{tasks_url}/{task['id']}"

    assert count(statements, lambda: client.get(tasks_url, headers=auth)) == 1
    assert (
        count(statements, lambda: client.get(tasks_url, params={"limit": 100}, headers=auth)) == 1
    )
    cursor = client.get(tasks_url, params={"limit": 5}, headers=auth).json()["next_cursor"]
    assert (
        count(statements, lambda: client.get(tasks_url, params={"cursor": cursor}, headers=auth))
        == 1
    )
    assert count(statements, lambda: client.post(tasks_url, json={"title": "y"}, headers=auth)) == 1
    assert count(statements, lambda: client.get(task_url, headers=auth)) == 1
    assert count(statements, lambda: client.put(task_url, json={"title": "z"}, headers=auth)) == 1
    assert count(statements, lambda: client.patch(f"{task_url}/complete", headers=auth)) == 1
    merge = {**auth, "Content-Type": "application/merge-patch+json"}
    assert (
        count(statements, lambda: client.patch(task_url, content=b'{"title": "p"}', headers=merge))
        == 1
    )
    tag = {**auth, "If-Match": client.get(task_url, headers=auth).headers["etag"]}
    assert count(statements, lambda: client.put(task_url, json={"title": "c"}, headers=tag)) == 1
    stale = {**auth, "If-Match": '"1"'}
    statements.clear()
    assert client.patch(f"{task_url}/complete", headers=stale).status_code == 412
    assert len(statements) == 1  # the precondition is part of the write, not a read before it
    assert count(statements, lambda: client.delete(task_url, headers=auth)) == 1


def test_an_idempotent_create_is_one_transaction(
    client: TestClient, statements: list[str], tasks_url: str, auth: dict[str, str]
) -> None:
    keyed = {**auth, "Idempotency-Key": "statements"}

    def create() -> Any:
        return client.post(tasks_url, json={"title": "y"}, headers=keyed)

    assert count(statements, create) == 6
    kinds = [s.split()[0] for s in statements]
    assert kinds == ["BEGIN;", "SELECT", "SELECT", "INSERT", "WITH", "COMMIT;"]
    assert count(statements, create) == 4  # replayed: lock, find, and nothing written


def test_refused_requests_never_reach_the_database(
    client: TestClient, statements: list[str], tasks_url: str, auth: dict[str, str]
) -> None:
    assert count(statements, lambda: client.get("/healthz")) == 0
    statements.clear()
    client.get(tasks_url)  # no token
    client.get("/api/someone-else/tasks", headers=auth)  # not theirs
    client.post(tasks_url, json={"title": ""}, headers=auth)  # invalid
    assert statements == []
    assert count(statements, lambda: client.get(tasks_url, headers=auth)) == 1  # still recording
