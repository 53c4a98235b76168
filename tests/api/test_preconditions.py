"""Conditional requests: ETags from row versions, If-Match (412 and nothing changed),
If-None-Match (304) and REQUIRE_IF_MATCH (428), through HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from starlette.testclient import TestClient

from handlers.services.settings import Settings
from tests.helpers import client_with, problem


@pytest.fixture
def task(client: TestClient, tasks_url: str, auth: dict[str, str]) -> dict[str, Any]:
    created = client.post(tasks_url, json={"title": "draft"}, headers=auth)
    return {"url": created.headers["location"], "etag": created.headers["etag"],
            "body": created.json()}  # fmt: skip


def test_every_task_answer_carries_a_strong_etag_that_changes_with_the_task(
    client: TestClient, auth: dict[str, str], task: dict[str, Any]
) -> None:
    url, first = task["url"], task["etag"]
    assert first == '"1"'
    assert client.get(url, headers=auth).headers["etag"] == first
    replaced = client.put(url, json={"title": "final"}, headers=auth)
    assert replaced.headers["etag"] == '"2"'
    completed = client.patch(f"{url}/complete", headers=auth)
    assert completed.headers["etag"] == '"3"'
    assert client.get(url, headers=auth).headers["etag"] == '"3"'


def test_if_none_match_with_the_current_etag_is_304_without_a_body(
    client: TestClient, auth: dict[str, str], task: dict[str, Any]
) -> None:
    for tag in (task["etag"], f"W/{task['etag']}", f'"99", {task["etag"]}', "*"):
        response = client.get(task["url"], headers={**auth, "If-None-Match": tag})
        assert response.status_code == 304, tag
        assert response.content == b""
        assert response.headers["etag"] == task["etag"]
    changed = client.get(task["url"], headers={**auth, "If-None-Match": '"99"'})
    assert changed.status_code == 200
    assert changed.json() == task["body"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("PUT", "", {"title": "theirs"}), ("PATCH", "/complete", None), ("DELETE", "", None)],
)
def test_a_stale_if_match_is_412_and_changes_nothing(
    client: TestClient,
    auth: dict[str, str],
    task: dict[str, Any],
    method: str,
    path: str,
    body: Any,
) -> None:
    client.put(task["url"], json={"title": "someone else's edit"}, headers=auth)
    current = client.get(task["url"], headers=auth)

    for stale in (task["etag"], f"W/{current.headers['etag']}", '"x"', '"1", "7"'):
        headers = {**auth, "If-Match": stale}
        response = client.request(method, task["url"] + path, json=body, headers=headers)
        problem(response, 412)
        after = client.get(task["url"], headers=auth)
        assert after.json() == current.json()
        assert after.headers["etag"] == current.headers["etag"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("PUT", "", {"title": "mine"}, 200),
        ("PATCH", "/complete", {"completed": True}, 200),
        ("DELETE", "", None, 204),
    ],
)
def test_a_current_if_match_writes(
    client: TestClient,
    auth: dict[str, str],
    task: dict[str, Any],
    method: str,
    path: str,
    body: Any,
    status: int,
) -> None:
    for tag in (task["etag"], f'"7", {task["etag"]}'):
        fresh = client.get(task["url"], headers=auth).headers["etag"]
        tag = tag.replace(task["etag"], fresh)
        response = client.request(
            method, task["url"] + path, json=body, headers={**auth, "If-Match": tag}
        )
        assert response.status_code == status, response.text
        if method == "DELETE":
            break


def test_if_match_star_needs_only_the_task_to_exist(
    client: TestClient, auth: dict[str, str], task: dict[str, Any], tasks_url: str
) -> None:
    star = {**auth, "If-Match": "*"}
    assert client.put(task["url"], json={"title": "x"}, headers=star).status_code == 200
    missing = f"{tasks_url}/1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed"
    problem(client.put(missing, json={"title": "x"}, headers=star), 404)
    problem(client.delete(missing, headers={**auth, "If-Match": '"1"'}), 404)


@pytest.mark.parametrize("value", ["1", 'W/"', '"a" "b"', '"7",x', '"a"b', "", "**"])
def test_an_if_match_that_is_no_entity_tag_matches_nothing(
    client: TestClient, auth: dict[str, str], task: dict[str, Any], value: str
) -> None:
    problem(client.delete(task["url"], headers={**auth, "If-Match": value}), 412)
    assert client.get(task["url"], headers=auth).status_code == 200
    read = client.get(task["url"], headers={**auth, "If-None-Match": value})
    assert read.status_code == 200


@pytest.fixture
def strict(settings: Settings) -> Iterator[TestClient]:
    with client_with(settings, require_if_match=True) as test_client:
        yield test_client


def test_require_if_match_makes_unconditional_writes_428(
    strict: TestClient, auth: dict[str, str], tasks_url: str
) -> None:
    created = strict.post(tasks_url, json={"title": "x"}, headers=auth)
    url, tag = created.headers["location"], created.headers["etag"]
    problem(strict.put(url, json={"title": "y"}, headers=auth), 428)
    problem(strict.patch(f"{url}/complete", headers=auth), 428)
    problem(strict.delete(url, headers=auth), 428)
    assert strict.get(url, headers=auth).json() == created.json()
    assert strict.delete(url, headers={**auth, "If-Match": tag}).status_code == 204


def test_concurrent_read_modify_write_with_if_match_loses_no_update(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    """16 writers each append their name to one task's description, retrying on 412: all 16
    appends survive. The writers run in 16 threads, so their requests interleave in the app."""
    created = client.post(tasks_url, json={"title": "shared", "description": ""}, headers=auth)
    url = created.headers["location"]
    start = threading.Barrier(16)

    def writer(name: str) -> int:
        start.wait()
        for attempt in range(500):
            current = client.get(url, headers=auth)
            task = current.json()
            body = {"title": task["title"], "description": f"{task['description']}{name};"}
            headers = {**auth, "If-Match": current.headers["etag"]}
            written = client.put(url, json=body, headers=headers)
            if written.status_code == 200:
                return attempt
            assert written.status_code == 412, written.text
        raise AssertionError(f"{name} never got its write in")

    with ThreadPoolExecutor(16) as pool:
        retries = list(pool.map(writer, [f"w{i}" for i in range(16)]))

    final = client.get(url, headers=auth)
    names = final.json()["description"].rstrip(";").split(";")
    assert sorted(names) == sorted(f"w{i}" for i in range(16))
    assert final.headers["etag"] == '"17"'
    assert sum(retries) > 0, "the writers never collided, so this proves nothing"


# RFC 9110 §13.1 on every operation: If-None-Match on writes, If-Match on reads, and both where
# the target has no entity tag (the list, the create, the probes).

WRITES = [
    ("PUT", "", {"title": "theirs"}),
    ("PATCH", "", {"title": "theirs"}),
    ("PATCH", "/complete", None),
    ("DELETE", "", None),
]


def write(client: TestClient, task: dict[str, Any], method: str, path: str, body: Any,
          headers: dict[str, str]) -> Any:  # fmt: skip
    content_type = {"Content-Type": "application/merge-patch+json"} if (
        method == "PATCH" and not path
    ) else {}  # fmt: skip
    return client.request(method, f"{task['url']}{path}", json=body,
                          headers={**headers, **content_type})  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
@pytest.mark.parametrize("condition", ["*", "current", "weak current", "listed with another"])
def test_if_none_match_that_matches_refuses_a_write_and_changes_nothing(
    client: TestClient, auth: dict[str, str], task: dict[str, Any],
    method: str, path: str, body: Any, condition: str,
) -> None:  # fmt: skip
    tag = {"*": "*", "current": task["etag"], "weak current": f"W/{task['etag']}",
           "listed with another": f'"77", {task["etag"]}'}[condition]  # fmt: skip
    response = write(client, task, method, path, body, {**auth, "If-None-Match": tag})
    problem(response, 412)
    assert client.get(task["url"], headers=auth).json() == task["body"]


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_if_none_match_that_does_not_match_lets_the_write_happen(
    client: TestClient, auth: dict[str, str], task: dict[str, Any],
    method: str, path: str, body: Any,
) -> None:  # fmt: skip
    response = write(client, task, method, path, body, {**auth, "If-None-Match": '"77"'})
    assert response.status_code in (200, 204), response.text


def test_if_none_match_star_on_a_task_that_does_not_exist_is_404(
    client: TestClient, auth: dict[str, str], tasks_url: str
) -> None:
    missing = f"{tasks_url}/00000000-0000-4000-8000-000000000000"
    response = client.put(missing, json={"title": "x"}, headers={**auth, "If-None-Match": "*"})
    problem(response, 404)


def test_both_conditions_must_hold_on_a_write(
    client: TestClient, auth: dict[str, str], task: dict[str, Any]
) -> None:
    both = {"If-Match": task["etag"], "If-None-Match": task["etag"]}
    problem(client.put(task["url"], json={"title": "x"}, headers={**auth, **both}), 412)
    ok = {"If-Match": task["etag"], "If-None-Match": '"77"'}
    assert client.put(task["url"], json={"title": "x"}, headers={**auth, **ok}).status_code == 200


@pytest.mark.parametrize(
    ("if_match", "status"),
    [("current", 200), ("*", 200), ("stale", 412), ("weak current", 412), ("garbage", 412)],
)
def test_if_match_on_a_read(
    client: TestClient, auth: dict[str, str], task: dict[str, Any], if_match: str, status: int
) -> None:
    tag = {"current": task["etag"], "*": "*", "stale": '"77"', "weak current": f"W/{task['etag']}",
           "garbage": "not-a-tag"}[if_match]  # fmt: skip
    response = client.get(task["url"], headers={**auth, "If-Match": tag})
    assert response.status_code == status
    if status == 412:
        problem(response, 412)
    else:
        assert response.json() == task["body"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"If-Match": '"1"'}, 412),  # no entity tag to match
        ({"If-Match": "*"}, 200),  # it exists
        ({"If-None-Match": "*"}, 304),  # it exists: not modified
        ({"If-None-Match": '"1"'}, 200),  # nothing to match
    ],
)
def test_the_list_and_the_probes_have_no_entity_tag(
    client: TestClient, auth: dict[str, str], tasks_url: str,
    headers: dict[str, str], status: int,
) -> None:  # fmt: skip
    for url, extra in ((tasks_url, auth), ("/healthz", {}), ("/readyz", {})):
        response = client.get(url, headers={**extra, **headers})
        assert response.status_code == status, (url, response.text)
        if status == 304:
            assert response.content == b""
        if status == 412:
            problem(response, 412)


@pytest.mark.parametrize(
    ("headers", "status"),
    [({"If-None-Match": "*"}, 412), ({"If-Match": '"1"'}, 412), ({"If-Match": "*"}, 201),
     ({"If-None-Match": '"1"'}, 201)],
)  # fmt: skip
def test_a_create_is_conditional_on_the_list(
    client: TestClient, auth: dict[str, str], tasks_url: str,
    headers: dict[str, str], status: int,
) -> None:  # fmt: skip
    before = client.get(tasks_url, headers=auth).json()["total"]
    response = client.post(tasks_url, json={"title": "maybe"}, headers={**auth, **headers})
    assert response.status_code == status, response.text
    after = client.get(tasks_url, headers=auth).json()["total"]
    assert after == before + (status == 201)


def test_a_failure_wins_over_a_precondition_on_a_read(settings: Settings) -> None:
    """RFC 9110 §13.2.1: /readyz's 503 is not turned into a 304."""
    with client_with(settings, database_url="postgresql://u@127.0.0.1:1/none") as down:
        response = down.get("/readyz", headers={"If-None-Match": "*"})
    assert response.status_code == 503
