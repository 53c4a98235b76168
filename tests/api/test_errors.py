"""Bad input: a clear 400/413/415 problem naming every offending field, and nothing written."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from starlette.testclient import TestClient

from contracts.document import load
from handlers.asgi import MAX_BODY_BYTES
from tests.helpers import problem


def pointers(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["location"], e.get("pointer", e.get("name", ""))) for e in body["errors"]]


def assert_nothing_written(client: TestClient, url: str, auth: dict[str, str]) -> None:
    assert client.get(url, headers=auth).json()["total"] == 0


def test_every_invalid_field_is_listed_and_nothing_written(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    body = {
        "title": "",
        "description": 5,
        "completed": "yes",
        "priority": "urgent",
        "due_date": "tomorrow",
    }
    answer = problem(client.post(tasks_url, json=body, headers=auth), 400)

    assert set(pointers(answer)) == {
        ("body", "/title"),
        ("body", "/description"),
        ("body", "/completed"),
        ("body", "/priority"),
        ("body", "/due_date"),
    }
    assert all(e["detail"] for e in answer["errors"])
    assert_nothing_written(client, tasks_url, auth)


@pytest.mark.parametrize("field", ["id", "user_id", "created_at", "updated_at", "owner"])
def test_mass_assignment_is_rejected(
    client: TestClient, tasks_url: str, auth: dict[str, str], field: str
) -> None:
    body = {"title": "x", field: "2026-01-01T00:00:00Z"}
    answer = problem(client.post(tasks_url, json=body, headers=auth), 400)
    assert pointers(answer) == [("body", f"/{field}")]
    assert_nothing_written(client, tasks_url, auth)


def test_replace_rejects_read_only_fields_and_changes_nothing(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    task = client.post(tasks_url, json={"title": "keep"}, headers=auth).json()
    url = f"{tasks_url}/{task['id']}"
    body = {"title": "changed", "id": str(uuid.uuid4()), "user_id": "mallory"}

    answer = problem(client.put(url, json=body, headers=auth), 400)

    assert pointers(answer) == [("body", "/id"), ("body", "/user_id")]
    assert client.get(url, headers=auth).json() == task


@pytest.mark.parametrize(
    "title", ["", " ", "\t\n", "x" * 201], ids=["empty", "space", "whitespace", "too-long"]
)
def test_title_must_be_1_to_200_non_blank_characters(
    client: TestClient, tasks_url: str, auth: dict[str, str], title: str
) -> None:
    answer = problem(client.post(tasks_url, json={"title": title}, headers=auth), 400)
    assert {p for _, p in pointers(answer)} == {"/title"}


def test_missing_title_is_named(client: TestClient, tasks_url: str, auth: dict[str, str]) -> None:
    answer = problem(client.post(tasks_url, json={"priority": "low"}, headers=auth), 400)
    assert answer["errors"] == [{"location": "body", "pointer": "/title", "detail": "is required"}]


@pytest.mark.parametrize("body", [[], "title", 3, None], ids=["array", "string", "number", "null"])
def test_body_must_be_an_object(
    client: TestClient, tasks_url: str, auth: dict[str, str], body: Any
) -> None:
    response = client.post(
        tasks_url, content=json.dumps(body), headers={**auth, "Content-Type": "application/json"}
    )
    assert pointers(problem(response, 400)) == [("body", "")]


@pytest.mark.parametrize(
    "due_date",
    [
        "2026-12-01",
        "2026-12-01T09:00:00",
        "2026-13-01T09:00:00Z",
        "2026-12-01 09:00:00Z",
        "2026-12-31T12:59:60Z",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "next tuesday",
    ],
)
def test_due_date_must_be_a_storable_rfc3339_date_time(
    client: TestClient, tasks_url: str, auth: dict[str, str], due_date: str
) -> None:
    answer = problem(
        client.post(tasks_url, json={"title": "x", "due_date": due_date}, headers=auth), 400
    )
    assert pointers(answer) == [("body", "/due_date")]


@pytest.mark.parametrize(
    "raw",
    [
        '{"title": "a\\u0000b"}',
        '{"title": "lone \\ud800 surrogate"}',
        '{"title": "ok", "description": "low \\udfff"}',
        '{"title": "ok", "bad\\u0000key": 1}',
    ],
    ids=["nul", "high-surrogate", "low-surrogate", "nul-in-key"],
)
def test_nul_and_lone_surrogates_are_rejected(
    client: TestClient, tasks_url: str, auth: dict[str, str], raw: str
) -> None:
    response = client.post(
        tasks_url, content=raw, headers={**auth, "Content-Type": "application/json"}
    )
    answer = problem(response, 400)
    assert "NUL" in answer["errors"][0]["detail"]
    assert_nothing_written(client, tasks_url, auth)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"title": ', "not valid JSON"),
        (b'{"title": "x",}', "not valid JSON"),
        (b'{"title": "x", "title": "y"}', "duplicate key"),
        (b'{"title": "x", "completed": NaN}', "not valid JSON"),
        (b'{"title": "\xff\xfe"}', "not valid UTF-8"),
        (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
    ],
    ids=["truncated", "trailing-comma", "duplicate-key", "nan", "bad-utf8", "deep-nesting"],
)
def test_malformed_json_is_a_400(
    client: TestClient, tasks_url: str, auth: dict[str, str], raw: bytes, reason: str
) -> None:
    response = client.post(
        tasks_url, content=raw, headers={**auth, "Content-Type": "application/json"}
    )
    assert reason in problem(response, 400)["detail"]


def test_long_values_are_never_echoed(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    secret_looking = "s3cr3t-" + "x" * 5000
    body = {"title": secret_looking, "priority": secret_looking, "due_date": secret_looking}
    response = client.post(tasks_url, json=body, headers=auth)
    answer = problem(response, 400)
    assert len(answer["errors"]) == 3
    assert "s3cr3t" not in response.text
    assert len(response.content) < 2000


def test_unknown_long_field_names_are_truncated(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    response = client.post(tasks_url, json={"title": "x", "k" * 10_000: 1}, headers=auth)
    answer = problem(response, 400)
    assert len(answer["errors"][0]["pointer"]) <= 65
    assert len(response.content) < 1000


def test_oversized_body_is_413(client: TestClient, tasks_url: str, auth: dict[str, str]) -> None:
    body = {"title": "x", "description": " " * (MAX_BODY_BYTES + 1)}
    problem(client.post(tasks_url, json=body, headers=auth), 413)
    assert_nothing_written(client, tasks_url, auth)


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin-1",
    ],
)
def test_body_must_be_utf8_json(
    client: TestClient, tasks_url: str, auth: dict[str, str], content_type: str | None
) -> None:
    headers = dict(auth)
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = client.post(tasks_url, content=b'{"title": "x"}', headers=headers)
    problem(response, 415)
    assert_nothing_written(client, tasks_url, auth)


def test_every_media_type_a_client_invents_is_refused_alike(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    """What the server learns per media type is bounded; a client that sends a new one with
    every request gets the same short 415 each time, and JSON still passes afterwards."""
    for n in range(40):
        for content_type in (f"text/x-{n}-{'y' * 300}", f"application/json; charset=x-{n}"):
            response = client.post(
                tasks_url, content=b'{"title": "x"}', headers={**auth, "Content-Type": content_type}
            )
            problem(response, 415)
            assert len(response.content) < 1000
    assert_nothing_written(client, tasks_url, auth)
    assert client.post(tasks_url, json={"title": "x"}, headers=auth).status_code == 201


def test_json_with_utf8_charset_is_accepted(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    response = client.post(
        tasks_url,
        content='{"title": "é"}'.encode(),
        headers={**auth, "Content-Type": "application/json; charset=UTF-8"},
    )
    assert response.status_code == 201


def test_complete_with_invalid_body_changes_nothing(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    task = client.post(tasks_url, json={"title": "x"}, headers=auth).json()
    url = f"{tasks_url}/{task['id']}/complete"
    for body in ({}, {"completed": "true"}, {"completed": True, "extra": 1}):
        problem(client.patch(url, json=body, headers=auth), 400)
    assert client.get(f"{tasks_url}/{task['id']}", headers=auth).json() == task


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"limit": 0}, ["limit"]),
        ({"limit": 101}, ["limit"]),
        ({"limit": "ten"}, ["limit"]),
        ({"offset": -1}, ["offset"]),
        ({"offset": 10**20}, ["offset"]),
        ({"completed": "maybe"}, ["completed"]),
        ({"priority": "urgent"}, ["priority"]),
        ({"sort": "owner"}, ["sort"]),
        ({"page": 2}, ["page"]),
        ({"limit": 0, "offset": -1, "sort": "x", "foo": "1"}, ["foo", "limit", "offset", "sort"]),
    ],
)
def test_bad_query_parameters_are_all_named(
    client: TestClient,
    tasks_url: str,
    auth: dict[str, str],
    params: dict[str, Any],
    names: list[str],
) -> None:
    answer = problem(client.get(tasks_url, params=params, headers=auth), 400)
    assert sorted(n for _, n in pointers(answer)) == names


@pytest.mark.parametrize(
    "task_id",
    ["not-a-uuid", "123", "' OR 1=1 --", "{12345678-1234-1234-1234-123456789abc}", "%20"],
)
def test_malformed_task_id_is_a_400_not_a_500(
    client: TestClient, tasks_url: str, auth: dict[str, str], task_id: str
) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = client.request(
            method, f"{tasks_url}/{task_id}", headers=auth, json={"title": "x"}
        )
        assert pointers(problem(response, 400)) == [("path", "task_id")]


def test_unknown_path_and_method_are_problems(client: TestClient, auth: dict[str, str]) -> None:
    problem(client.get("/nowhere", headers=auth), 404)
    answer = client.post("/healthz")
    problem(answer, 405)
    assert "GET" in answer.headers["allow"]


def test_every_problem_names_the_contracts_type_for_its_status(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    declared = load()["components"]["schemas"]["Problem"]["x-problem-types"]
    by_status = {spec["status"]: f"/problems/{name}" for name, spec in declared.items()}
    assert len(by_status) == len(declared)  # one type per status: a client may branch on either
    missing = f"{tasks_url}/00000000-0000-4000-8000-000000000000"
    answers = [
        client.get(tasks_url),  # 401
        client.get(missing, headers=auth),  # 404
        client.post(tasks_url, json={"title": ""}, headers=auth),  # 400
        client.get(tasks_url, headers={**auth, "Accept": "text/html"}),  # 406
        client.get(tasks_url, headers={**auth, "If-Match": '"1"'}),  # 412
    ]
    seen = {a.status_code: a.json()["type"] for a in answers}
    assert seen == {status: by_status[status] for status in (401, 404, 400, 406, 412)}
