"""Every task operation and its documented success statuses, through HTTP."""

from __future__ import annotations

import uuid

import pytest
from starlette.testclient import TestClient

from handlers.services.settings import Settings
from tests.helpers import client_with, create


def test_create_returns_the_task_with_defaults_and_location(
    client: TestClient, tasks_url: str, auth: dict[str, str], user: str
) -> None:
    response = client.post(tasks_url, json={"title": "Buy milk"}, headers=auth)

    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    task = response.json()
    assert task["title"] == "Buy milk"
    assert task["user_id"] == user
    assert task["description"] is None
    assert task["completed"] is False
    assert task["priority"] == "medium"
    assert task["due_date"] is None
    assert uuid.UUID(task["id"])
    assert task["created_at"] == task["updated_at"]
    assert response.headers["location"] == f"{tasks_url}/{task['id']}"
    assert client.get(response.headers["location"], headers=auth).json() == task


def test_create_stores_every_writable_field(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    task = create(
        client,
        tasks_url,
        auth,
        title="Write report",
        description="Quarterly numbers",
        completed=True,
        priority="high",
        due_date="2026-12-01T09:30:00+02:00",
    )

    assert task["description"] == "Quarterly numbers"
    assert task["completed"] is True
    assert task["priority"] == "high"
    assert task["due_date"] == "2026-12-01T07:30:00+00:00"


def test_unicode_round_trips(client: TestClient, tasks_url: str, auth: dict[str, str]) -> None:
    title = "Café ☕ 北京 — naïve 👩🏽‍💻 \u202eRTL"
    description = "emoji 🧪, combining é, zero-width \u200b, tab\tand newline\n"
    task = create(client, tasks_url, auth, title=title, description=description)

    fetched = client.get(f"{tasks_url}/{task['id']}", headers=auth).json()
    assert fetched["title"] == title
    assert fetched["description"] == description


def test_length_limits_count_characters_not_bytes(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    task = create(client, tasks_url, auth, title="🧪" * 200, description="é" * 4000)
    assert len(task["title"]) == 200
    assert len(task["description"]) == 4000


def test_get_returns_the_task(client: TestClient, tasks_url: str, auth: dict[str, str]) -> None:
    task = create(client, tasks_url, auth, title="Read")
    response = client.get(f"{tasks_url}/{task['id']}", headers=auth)
    assert response.status_code == 200
    assert response.json() == task


def test_get_unknown_task_is_404_problem(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    response = client.get(f"{tasks_url}/{uuid.uuid4()}", headers=auth)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


def test_replace_overwrites_every_field_and_resets_omitted_ones(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    task = create(
        client,
        tasks_url,
        auth,
        description="old",
        completed=True,
        priority="high",
        due_date="2027-01-01T00:00:00Z",
    )

    response = client.put(f"{tasks_url}/{task['id']}", json={"title": "new"}, headers=auth)

    assert response.status_code == 200
    replaced = response.json()
    assert replaced["title"] == "new"
    assert replaced["description"] is None
    assert replaced["completed"] is False
    assert replaced["priority"] == "medium"
    assert replaced["due_date"] is None
    assert replaced["id"] == task["id"]
    assert replaced["created_at"] == task["created_at"]
    assert replaced["updated_at"] > task["updated_at"]
    assert client.get(f"{tasks_url}/{task['id']}", headers=auth).json() == replaced


def test_replace_sets_given_fields(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    task = create(client, tasks_url, auth)
    body = {
        "title": "t2",
        "description": "d",
        "completed": True,
        "priority": "low",
        "due_date": "2026-12-24T18:00:00Z",
    }
    replaced = client.put(f"{tasks_url}/{task['id']}", json=body, headers=auth).json()
    assert {k: replaced[k] for k in body} == {**body, "due_date": "2026-12-24T18:00:00+00:00"}


def test_replace_unknown_task_is_404(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    response = client.put(f"{tasks_url}/{uuid.uuid4()}", json={"title": "x"}, headers=auth)
    assert response.status_code == 404


def test_complete_without_body_toggles(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    task = create(client, tasks_url, auth)
    url = f"{tasks_url}/{task['id']}/complete"

    first = client.patch(url, headers=auth)
    second = client.patch(url, headers=auth)

    assert (first.status_code, first.json()["completed"]) == (200, True)
    assert (second.status_code, second.json()["completed"]) == (200, False)
    assert second.json()["updated_at"] >= first.json()["updated_at"] > task["updated_at"]


@pytest.mark.parametrize("initial", [True, False])
@pytest.mark.parametrize("requested", [True, False])
def test_complete_with_body_sets_the_flag(
    client: TestClient, tasks_url: str, auth: dict[str, str], initial: bool, requested: bool
) -> None:
    task = create(client, tasks_url, auth, completed=initial)
    response = client.patch(
        f"{tasks_url}/{task['id']}/complete", json={"completed": requested}, headers=auth
    )
    assert response.status_code == 200
    assert response.json()["completed"] is requested


def test_complete_unknown_task_is_404(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    assert client.patch(f"{tasks_url}/{uuid.uuid4()}/complete", headers=auth).status_code == 404


def test_delete_removes_the_task(client: TestClient, tasks_url: str, auth: dict[str, str]) -> None:
    task = create(client, tasks_url, auth)

    response = client.delete(f"{tasks_url}/{task['id']}", headers=auth)

    assert response.status_code == 204
    assert response.content == b""
    assert "content-type" not in response.headers
    assert client.get(f"{tasks_url}/{task['id']}", headers=auth).status_code == 404
    assert client.delete(f"{tasks_url}/{task['id']}", headers=auth).status_code == 404


def test_list_of_a_new_user_is_empty(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    response = client.get(tasks_url, headers=auth)
    assert response.status_code == 200
    assert response.json() == {
        "items": [],
        "total": 0,
        "limit": 20,
        "offset": 0,
        "next_cursor": None,
    }


def test_list_is_newest_first_by_default_and_pages(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    made = [create(client, tasks_url, auth, title=f"t{i}") for i in range(5)]

    page1 = client.get(tasks_url, params={"limit": 2}, headers=auth).json()
    page2 = client.get(tasks_url, params={"limit": 2, "offset": 2}, headers=auth).json()
    page3 = client.get(tasks_url, params={"limit": 2, "offset": 4}, headers=auth).json()
    beyond = client.get(tasks_url, params={"limit": 2, "offset": 10}, headers=auth).json()

    titles = [t["title"] for page in (page1, page2, page3) for t in page["items"]]
    assert titles == [t["title"] for t in reversed(made)]
    assert (page1["total"], page1["limit"], page1["offset"]) == (5, 2, 0)
    assert (page3["total"], len(page3["items"])) == (5, 1)
    assert (beyond["total"], beyond["items"]) == (5, [])


def test_list_filters_by_completed_and_priority(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    create(client, tasks_url, auth, title="a", completed=True, priority="high")
    create(client, tasks_url, auth, title="b", completed=False, priority="high")
    create(client, tasks_url, auth, title="c", completed=True, priority="low")

    def titles(**params: str) -> list[str]:
        body = client.get(tasks_url, params=params, headers=auth).json()
        assert body["total"] == len(body["items"])
        return sorted(t["title"] for t in body["items"])

    assert titles() == ["a", "b", "c"]
    assert titles(completed="true") == ["a", "c"]
    assert titles(completed="false") == ["b"]
    assert titles(priority="high") == ["a", "b"]
    assert titles(priority="high", completed="true") == ["a"]
    assert titles(priority="medium") == []


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("created_at", ["b", "c", "a", "d"]),
        ("-created_at", ["d", "a", "c", "b"]),
        ("title", ["a", "b", "c", "d"]),
        ("-title", ["d", "c", "b", "a"]),
        ("priority", ["c", "a", "<high by id>"]),
        ("-priority", ["<high by id>", "a", "c"]),
        ("due_date", ["a", "b", "c", "d"]),
        ("-due_date", ["c", "b", "a", "d"]),
    ],
)
def test_list_sorts(
    client: TestClient, tasks_url: str, auth: dict[str, str], sort: str, expected: list[str]
) -> None:
    b = create(client, tasks_url, auth, title="b", priority="high", due_date="2026-02-01T08:00:00Z")
    create(client, tasks_url, auth, title="c", priority="low", due_date="2026-03-01T00:00:00Z")
    create(client, tasks_url, auth, title="a", priority="medium", due_date="2026-01-01T00:00:00Z")
    d = create(client, tasks_url, auth, title="d", priority="high")  # no due date: always last
    # b and d tie on priority; ties are broken by id ascending whatever the direction.
    high_by_id = [t["title"] for t in sorted([b, d], key=lambda t: str(t["id"]))]
    expected = [x for e in expected for x in (high_by_id if e == "<high by id>" else [e])]

    body = client.get(tasks_url, params={"sort": sort}, headers=auth).json()
    assert [t["title"] for t in body["items"]] == expected


def test_ties_are_broken_by_id_so_pages_never_overlap(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    made = {create(client, tasks_url, auth, title="same")["id"] for _ in range(7)}

    seen: list[str] = []
    for offset in range(0, 7, 3):
        page = client.get(
            tasks_url, params={"sort": "title", "limit": 3, "offset": offset}, headers=auth
        ).json()
        seen += [t["id"] for t in page["items"]]

    assert seen == sorted(made)


@pytest.mark.parametrize("request_path", ["/tasks-api/api/{user}/tasks", "/api/{user}/tasks"])
def test_location_and_allow_are_right_under_a_root_path(
    settings: Settings, user: str, auth: dict[str, str], request_path: str
) -> None:
    """Behind a proxy that mounts the API under /tasks-api (ASGI root_path), whether the server
    puts the prefix in `path` (as the ASGI spec now says) or leaves it out (older servers)."""
    path = request_path.format(user=user)
    with client_with(settings, root_path="/tasks-api") as proxied:
        created = proxied.post(path, json={"title": "x"}, headers=auth)
        assert created.headers["location"] == f"/tasks-api/api/{user}/tasks/{created.json()['id']}"
        refused = proxied.delete(path, headers=auth)
        assert refused.status_code == 405
        assert refused.headers["allow"] == "GET, HEAD, POST"
