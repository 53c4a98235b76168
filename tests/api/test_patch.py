"""PATCH a task: a JSON Merge Patch (RFC 7396) changes only the fields it names."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from tests.helpers import bearer, create

MERGE_PATCH = "application/merge-patch+json"


def patch(client: TestClient, url: str, auth: dict[str, str], body: Any, **headers: str) -> Any:
    return client.patch(
        url, content=orjson.dumps(body), headers={**auth, "Content-Type": MERGE_PATCH, **headers}
    )


@pytest.fixture
def task(client: TestClient, tasks_url: str, auth: dict[str, str]) -> dict[str, Any]:
    return create(client, tasks_url, auth, description="notes", priority="low",
                  due_date="2027-01-01T00:00:00Z")  # fmt: skip


def test_only_the_given_fields_change(
    client: TestClient, tasks_url: str, auth: dict[str, str], task: dict[str, Any]
) -> None:
    url = f"{tasks_url}/{task['id']}"
    response = patch(client, url, auth, {"priority": "high"})

    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched == {**task, "priority": "high", "updated_at": patched["updated_at"]}
    assert patched["updated_at"] > task["updated_at"]
    assert response.headers["etag"] == '"2"'
    assert client.get(url, headers=auth).json() == patched


def test_null_clears_description_and_due_date(
    client: TestClient, tasks_url: str, auth: dict[str, str], task: dict[str, Any]
) -> None:
    patched = patch(client, f"{tasks_url}/{task['id']}", auth,
                    {"description": None, "due_date": None, "title": "renamed"}).json()  # fmt: skip
    assert (patched["description"], patched["due_date"], patched["title"]) == (
        None,
        None,
        "renamed",
    )
    assert (patched["priority"], patched["completed"]) == ("low", False)


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({}, ""),  # nothing to change
        ({"title": None}, "/title"),  # a title cannot be removed
        ({"title": ""}, "/title"),
        ({"priority": "urgent"}, "/priority"),
        ({"completed": "yes"}, "/completed"),
        ({"due_date": "tomorrow"}, "/due_date"),
        ({"id": str(uuid.uuid4())}, "/id"),  # not writable
        ({"user_id": "mallory"}, "/user_id"),
        ([{"op": "replace", "path": "/title", "value": "x"}], ""),  # a JSON Patch is not one
    ],
)
def test_invalid_patches_are_400_and_change_nothing(
    client: TestClient,
    tasks_url: str,
    auth: dict[str, str],
    task: dict[str, Any],
    body: Any,
    pointer: str,
) -> None:
    url = f"{tasks_url}/{task['id']}"
    response = patch(client, url, auth, body)

    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e.get("pointer", "") for e in response.json()["errors"]][:1] == [pointer]
    assert client.get(url, headers=auth).json() == task


@pytest.mark.parametrize("media_type", ["application/json", "application/json-patch+json"])
def test_other_media_types_are_415(
    client: TestClient, tasks_url: str, auth: dict[str, str], task: dict[str, Any], media_type: str
) -> None:
    url = f"{tasks_url}/{task['id']}"
    response = client.patch(
        url, content=b'{"title": "x"}', headers={**auth, "Content-Type": media_type}
    )
    assert response.status_code == 415, response.text
    assert client.get(url, headers=auth).json() == task


def test_media_type_case_and_parameters_do_not_matter(
    client: TestClient, tasks_url: str, auth: dict[str, str], task: dict[str, Any]
) -> None:
    response = client.patch(
        f"{tasks_url}/{task['id']}",
        content=b'{"completed": true}',
        headers={**auth, "Content-Type": "Application/Merge-Patch+JSON; charset=UTF-8"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["completed"] is True


def test_a_stale_if_match_is_412_and_changes_nothing(
    client: TestClient, tasks_url: str, auth: dict[str, str], task: dict[str, Any]
) -> None:
    url = f"{tasks_url}/{task['id']}"
    assert patch(client, url, auth, {"title": "first"}, **{"If-Match": '"1"'}).status_code == 200
    stale = patch(client, url, auth, {"title": "second"}, **{"If-Match": '"1"'})
    assert stale.status_code == 412
    assert client.get(url, headers=auth).json()["title"] == "first"


def test_unknown_or_foreign_tasks_are_404(
    client: TestClient,
    tasks_url: str,
    auth: dict[str, str],
    task: dict[str, Any],
) -> None:
    assert patch(client, f"{tasks_url}/{uuid.uuid4()}", auth, {"title": "x"}).status_code == 404
    other_user = f"other-{uuid.uuid4().hex[:12]}"
    other_auth = bearer(other_user)
    foreign = f"/api/{other_user}/tasks/{task['id']}"
    assert patch(client, foreign, other_auth, {"title": "stolen"}).status_code == 404
    assert client.get(f"{tasks_url}/{task['id']}", headers=auth).json() == task
