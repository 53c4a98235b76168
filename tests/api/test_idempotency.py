"""Idempotency keys: a retried write happens once, and every retry gets the first answer."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from starlette.testclient import TestClient

from handlers.services.settings import Settings
from tests.helpers import bearer, client_with, problem, sql


def keyed(auth: dict[str, str], key: str) -> dict[str, str]:
    return {**auth, "Idempotency-Key": key}


def total(client: TestClient, url: str, auth: dict[str, str]) -> int:
    count: int = client.get(url, headers=auth).json()["total"]
    return count


def test_a_retried_create_replays_the_first_answer(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    key = str(uuid.uuid4())
    first = client.post(tasks_url, json={"title": "once"}, headers=keyed(auth, key))
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers

    again = client.post(tasks_url, json={"title": "once"}, headers=keyed(auth, f'"{key}"'))

    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    for header in ("location", "etag", "content-type"):
        assert again.headers[header] == first.headers[header]
    assert total(client, tasks_url, auth) == 1


def test_the_same_key_with_another_body_is_422_and_creates_nothing(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    client.post(tasks_url, json={"title": "first"}, headers=keyed(auth, "k1"))
    problem(client.post(tasks_url, json={"title": "second"}, headers=keyed(auth, "k1")), 422)
    assert total(client, tasks_url, auth) == 1
    # The defaults the contract fills in make no difference: this is the same request.
    same = {"title": "first", "priority": "medium", "completed": False}
    assert client.post(tasks_url, json=same, headers=keyed(auth, "k1")).status_code == 201


def test_the_same_key_on_another_operation_is_422(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    created = client.post(tasks_url, json={"title": "x"}, headers=keyed(auth, "shared"))
    complete = f"{created.headers['location']}/complete"
    problem(client.patch(complete, headers=keyed(auth, "shared")), 422)
    assert client.get(created.headers["location"], headers=auth).json()["completed"] is False


def test_keys_are_per_user(client: TestClient, tasks_url: str, auth: dict[str, str]) -> None:
    other = f"user-{uuid.uuid4().hex[:12]}"
    mine = client.post(tasks_url, json={"title": "x"}, headers=keyed(auth, "k"))
    theirs = client.post(
        f"/api/{other}/tasks", json={"title": "x"}, headers=keyed(bearer(other), "k")
    )
    assert theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers
    assert theirs.json()["id"] != mine.json()["id"]


def test_twenty_concurrent_posts_with_one_key_create_one_task(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    start = threading.Barrier(20)

    def post(_: int) -> tuple[int, str | None, Any]:
        start.wait()
        response = client.post(tasks_url, json={"title": "race"}, headers=keyed(auth, "race"))
        body = response.json()
        return response.status_code, response.headers.get("idempotent-replayed"), body

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(post, range(20)))

    assert total(client, tasks_url, auth) == 1
    created = [body for status, replayed, body in answers if status == 201]
    assert {body["id"] for body in created} == {created[0]["id"]}
    assert sum(1 for status, replayed, _ in answers if status == 201 and not replayed) == 1
    for status, _, body in answers:
        assert status in (201, 409), body
        if status == 409:
            assert body["status"] == 409


def test_a_retried_toggle_does_not_toggle_back(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    url = client.post(tasks_url, json={"title": "x"}, headers=auth).headers["location"]
    first = client.patch(f"{url}/complete", headers=keyed(auth, "toggle-1"))
    again = client.patch(f"{url}/complete", headers=keyed(auth, "toggle-1"))
    assert first.json()["completed"] is True
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert client.get(url, headers=auth).json()["completed"] is True
    other = client.patch(f"{url}/complete", headers=keyed(auth, "toggle-2"))
    assert other.json()["completed"] is False


def test_a_failed_write_is_not_remembered(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    created = client.post(tasks_url, json={"title": "x"}, headers=auth)
    complete = f"{tasks_url}/{created.json()['id']}/complete"
    # The same request with the same key, first refused (a stale If-Match: 412), then sent
    # with the task's current ETag: had the failure been kept, the retry would replay it.
    stale = {**keyed(auth, "k"), "If-Match": '"999"'}
    problem(client.patch(complete, json={"completed": True}, headers=stale), 412)
    fresh = {**keyed(auth, "k"), "If-Match": created.headers["ETag"]}
    retried = client.patch(complete, json={"completed": True}, headers=fresh)
    assert retried.status_code == 200
    assert retried.json()["completed"] is True
    assert "Idempotent-Replayed" not in retried.headers


@pytest.mark.parametrize(
    ("key", "detail"),
    [
        ("", "must be 1 to 255 characters"),
        ('""', "must not be empty"),
        ("k" * 256, "must be 1 to 255 characters"),
        ("naïve", "must be visible ASCII characters"),
        ("tab\there", "must be visible ASCII characters"),
    ],
)
def test_a_malformed_key_is_400_and_creates_nothing(
    client: TestClient, tasks_url: str, auth: dict[str, str], key: str, detail: str
) -> None:
    headers: dict[str, Any] = {**auth, "Idempotency-Key": key.encode()}  # UTF-8 bytes as sent
    body = problem(client.post(tasks_url, json={"title": "x"}, headers=headers), 400)
    assert [e["name"] for e in body["errors"]] == ["Idempotency-Key"]
    assert total(client, tasks_url, auth) == 0


def test_two_keys_in_one_request_are_400(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    headers = [*auth.items(), ("Idempotency-Key", "a"), ("Idempotency-Key", "b")]
    problem(client.post(tasks_url, json={"title": "x"}, headers=headers), 400)
    assert total(client, tasks_url, auth) == 0


def test_expired_keys_are_forgotten_and_removed_by_later_writes(
    client: TestClient, database_url: str, tasks_url: str, auth: dict[str, str], user: str
) -> None:
    client.post(tasks_url, json={"title": "x"}, headers=keyed(auth, "old"))
    sql(database_url, "UPDATE idempotency_keys SET expires_at = now() - interval '1 second'"
        " WHERE user_id = $1", user)  # fmt: skip

    retried = client.post(tasks_url, json={"title": "x"}, headers=keyed(auth, "old"))
    assert "idempotent-replayed" not in retried.headers
    assert total(client, tasks_url, auth) == 2

    sql(database_url, "UPDATE idempotency_keys SET expires_at = now() - interval '1 second'"
        " WHERE user_id = $1", user)  # fmt: skip
    client.post(tasks_url, json={"title": "y"}, headers=keyed(auth, "new"))
    left = sql(database_url, "SELECT key FROM idempotency_keys WHERE user_id = $1", user)
    assert [row["key"] for row in left] == ["new"]


@pytest.fixture
def keys_required(settings: Settings) -> Iterator[TestClient]:
    with client_with(settings, require_idempotency_key=True) as test_client:
        yield test_client


def test_require_idempotency_key_refuses_writes_without_one(
    keys_required: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    body = problem(keys_required.post(tasks_url, json={"title": "x"}, headers=auth), 400)
    assert body["errors"][0]["name"] == "Idempotency-Key"
    assert total(keys_required, tasks_url, auth) == 0
    ok = keys_required.post(tasks_url, json={"title": "x"}, headers=keyed(auth, "k"))
    assert ok.status_code == 201
