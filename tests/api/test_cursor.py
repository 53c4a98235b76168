"""Keyset pagination: following next_cursor visits every task once, in order, for every sort."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.helpers import bearer

SORTS = ["-created_at", "created_at", "due_date", "-due_date", "priority", "-priority",
         "title", "-title"]  # fmt: skip


@pytest.fixture
def seeded(client: TestClient, tasks_url: str, auth: dict[str, str]) -> list[dict[str, Any]]:
    """Eleven tasks with repeated titles and priorities and some missing due dates."""
    made = []
    for i in range(11):
        body: dict[str, Any] = {"title": f"t{i % 4}", "priority": ["low", "medium", "high"][i % 3]}
        if i % 3:
            body["due_date"] = f"2026-12-{1 + i % 5:02d}T09:00:00Z"
        made.append(client.post(tasks_url, json=body, headers=auth).json())
    return made


def follow(client: TestClient, url: str, auth: dict[str, str], **params: Any) -> list[list[str]]:
    pages, cursor = [], None
    for _ in range(20):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        body = client.get(url, params=query, headers=auth).json()
        pages.append([task["id"] for task in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
    raise AssertionError("the cursor never ended")


@pytest.mark.parametrize("sort", SORTS)
def test_cursor_pages_match_one_big_page(
    client: TestClient, tasks_url: str, auth: dict[str, str], seeded: list[Any], sort: str
) -> None:
    everything = client.get(tasks_url, params={"sort": sort, "limit": 100}, headers=auth).json()
    expected = [task["id"] for task in everything["items"]]
    assert len(expected) == 11

    pages = follow(client, tasks_url, auth, sort=sort, limit=3)

    assert [len(page) for page in pages] == [3, 3, 3, 2]
    assert [task_id for page in pages for task_id in page] == expected


def test_last_full_page_has_no_next_cursor(
    client: TestClient, tasks_url: str, auth: dict[str, str], seeded: list[Any]
) -> None:
    pages = follow(client, tasks_url, auth, limit=11)
    assert [len(page) for page in pages] == [11]


def test_cursor_with_filters(
    client: TestClient, tasks_url: str, auth: dict[str, str], seeded: list[Any]
) -> None:
    pages = follow(client, tasks_url, auth, priority="low", sort="title", limit=2)
    low = [t for t in seeded if t["priority"] == "low"]
    assert sorted(i for page in pages for i in page) == sorted(t["id"] for t in low)


def test_offset_pages_also_offer_a_cursor(
    client: TestClient, tasks_url: str, auth: dict[str, str], seeded: list[Any]
) -> None:
    by_offset = client.get(tasks_url, params={"limit": 4, "offset": 4}, headers=auth).json()
    by_cursor = client.get(
        tasks_url, params={"limit": 4, "cursor": by_offset["next_cursor"]}, headers=auth
    ).json()
    everything = client.get(tasks_url, params={"limit": 100}, headers=auth).json()["items"]
    assert [t["id"] for t in by_cursor["items"]] == [t["id"] for t in everything[8:]]


def encoded(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


SOME_ID = str(uuid.uuid4())


@pytest.mark.parametrize(
    ("sort", "cursor"),
    [
        ("-created_at", "garbage"),
        ("-created_at", "!!!!"),
        ("-created_at", encoded({"not": "a list"})),
        ("-created_at", encoded(["-created_at", "yesterday", SOME_ID])),
        ("-created_at", encoded(["-created_at", "2026-01-01T00:00:00+00:00", "not-a-uuid"])),
        ("-created_at", encoded(["-created_at", None, SOME_ID])),
        ("priority", encoded(["priority", "urgent", SOME_ID])),
        ("title", encoded(["title", 5, SOME_ID])),
        ("title", encoded(["title", "x"])),
        ("-created_at", base64.urlsafe_b64encode(b"\xff\xfe").decode()),
        ("-created_at", "a" * 1024),
    ],
)
def test_a_cursor_we_did_not_make_is_a_400(
    client: TestClient, tasks_url: str, auth: dict[str, str], sort: str, cursor: str
) -> None:
    response = client.get(tasks_url, params={"cursor": cursor, "sort": sort}, headers=auth)
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["name"] == "cursor"


def test_a_cursor_is_bound_to_its_sort(
    client: TestClient, tasks_url: str, auth: dict[str, str], seeded: list[Any]
) -> None:
    cursor = client.get(tasks_url, params={"limit": 2}, headers=auth).json()["next_cursor"]
    response = client.get(tasks_url, params={"cursor": cursor, "sort": "title"}, headers=auth)
    assert response.status_code == 400
    assert "sort" in response.json()["errors"][0]["detail"]


def test_offset_skips_tasks_after_the_cursor(
    client: TestClient, tasks_url: str, auth: dict[str, str], seeded: list[Any]
) -> None:
    everything = client.get(tasks_url, params={"limit": 100}, headers=auth).json()["items"]
    cursor = client.get(tasks_url, params={"limit": 2}, headers=auth).json()["next_cursor"]
    page = client.get(tasks_url, params={"cursor": cursor, "offset": 3, "limit": 2}, headers=auth)
    assert [t["id"] for t in page.json()["items"]] == [t["id"] for t in everything[5:7]]


def test_another_users_cursor_is_refused(
    client: TestClient, tasks_url: str, auth: dict[str, str], seeded: list[Any]
) -> None:
    cursor = client.get(tasks_url, params={"limit": 2}, headers=auth).json()["next_cursor"]
    assert cursor is not None
    intruder = f"user-{uuid.uuid4().hex[:8]}"
    mine = client.post(f"/api/{intruder}/tasks", json={"title": "mine"}, headers=bearer(intruder))
    assert mine.status_code == 201

    response = client.get(
        f"/api/{intruder}/tasks", params={"cursor": cursor}, headers=bearer(intruder)
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["name"] == "cursor"
