"""Hostile and odd-but-legal input stops at the edge with a 4xx problem, never a 500.

Each test is named after what an attacker or an unusual client sent (issue: integrity).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from handlers.services.settings import Settings
from persistence.cursors import Cursors
from tests.helpers import TEST_SECRET, bearer, client_with, problem


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unsigned_cursor(payload: Any) -> str:
    """What the server issued before cursors were signed: base64url of JSON."""
    return b64(json.dumps(payload).encode())


def assert_cursor_refused(response: Any) -> None:
    body = problem(response, 400)
    assert [e["name"] for e in body["errors"]] == ["cursor"]


@pytest.fixture
def seeded(client: TestClient, tasks_url: str, auth: dict[str, str]) -> None:
    for i in range(3):
        client.post(tasks_url, json={"title": f"t{i}"}, headers=auth)


@pytest.mark.parametrize(
    "payload",
    [
        ["-created_at", "2026-01-01T00:00:00+00:00", 5],
        ["-created_at", "2026-01-01T00:00:00+00:00", {}],
        ["-created_at", "2026-01-01T00:00:00+00:00", 1.5],
        ["-created_at", "2026-01-01T00:00:00+00:00", True],
        ["-created_at", "0001-01-01T00:00:00+05:00", "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed"],
        ["-created_at", "9999-12-31T23:59:59-05:00", "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed"],
        ["title", "nul\u0000", "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed"],
        ["title", "\ud800", "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed"],
        ["priority", "urgent", "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed"],
    ],
)
def test_forged_cursor_is_a_400_naming_cursor(
    client: TestClient, tasks_url: str, auth: dict[str, str], payload: Any
) -> None:
    sort = payload[0]
    forged = unsigned_cursor(payload)
    assert_cursor_refused(client.get(tasks_url, params={"cursor": forged, "sort": sort},
                                     headers=auth))  # fmt: skip
    with_mac = f"{forged}.{b64(b'0' * 16)}"
    assert_cursor_refused(client.get(tasks_url, params={"cursor": with_mac, "sort": sort},
                                     headers=auth))  # fmt: skip


@pytest.mark.parametrize(
    "cursor", [".", "..", "a.b.c", "é.é", "AAAA.AAAA", "AAAA=.AAAA", "%%%%.%%%%", "a" * 2048]
)
def test_garbled_cursor_is_a_400_naming_cursor(
    client: TestClient, tasks_url: str, auth: dict[str, str], cursor: str
) -> None:
    assert_cursor_refused(client.get(tasks_url, params={"cursor": cursor}, headers=auth))


@given(payload=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children,
                                                                        max_size=4),
    max_leaves=8,
))  # fmt: skip
@hypothesis_settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_json_signed_with_the_servers_key_never_gets_a_5xx(
    client: TestClient, settings: Settings, payload: Any
) -> None:
    """Even a cursor with a valid signature (a key leaked, or a future format) is checked in
    full: arbitrary JSON inside one is 200 or a 400 naming cursor."""
    user = "hypothesis-cursor-user"
    for sort in ("-created_at", "due_date", "title", "priority"):
        for inner in (payload, [sort, payload, "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed"]):
            raw = json.dumps(inner, allow_nan=True).encode("utf-8", "surrogatepass")
            mac = Cursors(settings.cursor_key())._mac(user, raw)
            response = client.get(
                f"/api/{user}/tasks",
                params={"cursor": f"{b64(raw)}.{b64(mac)}", "sort": sort},
                headers=bearer(user),
            )
            assert response.status_code in (200, 400), response.text
            if response.status_code == 400:
                assert_cursor_refused(response)


@given(cursor=st.text(min_size=1, max_size=300) | st.binary(min_size=1, max_size=300).map(b64))
@hypothesis_settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_string_as_cursor_never_gets_a_5xx(client: TestClient, cursor: str) -> None:
    user = "hypothesis-cursor-user"
    response = client.get(f"/api/{user}/tasks", params={"cursor": cursor}, headers=bearer(user))
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["name"] == "cursor"


def test_a_title_cursor_of_200_emoji_fits_the_contract(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    for _ in range(3):
        client.post(tasks_url, json={"title": "🧪" * 200}, headers=auth)
    first = client.get(tasks_url, params={"sort": "title", "limit": 1}, headers=auth).json()
    query = {"sort": "title", "limit": 1, "cursor": first["next_cursor"]}
    second = client.get(tasks_url, params=query, headers=auth)
    assert second.status_code == 200, second.text
    assert second.json()["items"][0]["id"] != first["items"][0]["id"]


@pytest.fixture
def database_down(settings: Settings) -> Iterator[TestClient]:
    """The app with a database that refuses connections (nothing listens on port 1)."""
    with client_with(settings, database_url="postgresql://u@127.0.0.1:1/none") as test_client:
        yield test_client


def test_a_bad_cursor_is_400_even_while_the_database_is_down(
    database_down: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    assert_cursor_refused(database_down.get(tasks_url, params={"cursor": "x"}, headers=auth))
    outage = database_down.get(tasks_url, headers=auth)
    problem(outage, 503)
    assert outage.headers["retry-after"] == "1"


@pytest.mark.parametrize(
    "content_type",
    [
        "Application/JSON",
        "APPLICATION/JSON",
        "application/JSON; charset=utf-8",
        'application/json ; Charset="UTF-8"',
    ],
)
def test_media_type_casing_is_ignored_on_every_write(
    client: TestClient, tasks_url: str, auth: dict[str, str], content_type: str
) -> None:
    headers = {**auth, "Content-Type": content_type}
    created = client.post(tasks_url, content=b'{"title": "x"}', headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["priority"] == "medium"  # validated: the default was filled in
    url = created.headers["location"]
    replaced = client.put(url, content=b'{"title": "y"}', headers=headers)
    assert replaced.status_code == 200, replaced.text
    completed = client.patch(f"{url}/complete", content=b'{"completed": true}', headers=headers)
    assert completed.json()["completed"] is True
    problem(client.post(tasks_url, content=b'{"title": ""}', headers=headers), 400)


@pytest.mark.parametrize(
    ("sent", "answered"),
    [
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00+00:00"),
        ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999+00:00"),
        ("2026-12-01T09:00:00.1234567Z", "2026-12-01T09:00:00.123456+00:00"),
        ("2016-12-31T23:59:60Z", "2017-01-01T00:00:00+00:00"),
        ("2026-12-01T10:30:00+01:30", "2026-12-01T09:00:00+00:00"),
    ],
)
def test_extreme_and_unusual_due_dates_round_trip_as_instants(
    client: TestClient, tasks_url: str, auth: dict[str, str], sent: str, answered: str
) -> None:
    created = client.post(tasks_url, json={"title": "x", "due_date": sent}, headers=auth)
    assert created.status_code == 201, created.text
    assert created.json()["due_date"] == answered
    assert client.get(created.headers["location"], headers=auth).json()["due_date"] == answered
    replaced = client.put(created.headers["location"], json={"title": "x", "due_date": sent},
                          headers=auth)  # fmt: skip
    assert replaced.json()["due_date"] == answered


def test_pages_by_due_date_cross_the_extreme_dates(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    for due in ("9999-12-31T23:59:59.999999Z", "0001-01-01T00:00:00Z", None, "2026-01-01T00:00Z"):
        client.post(tasks_url, json={"title": "x", "due_date": due}, headers=auth)
    for sort in ("due_date", "-due_date"):
        seen, cursor = [], None
        while True:
            query = {"sort": sort, "limit": 1, **({"cursor": cursor} if cursor else {})}
            page = client.get(tasks_url, params=query, headers=auth).json()
            seen += [task["due_date"] for task in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        ends = ["0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59.999999+00:00"]
        assert seen[:2] == (ends if sort == "due_date" else ends[::-1])
        assert seen[2:] == [None]  # tasks with no due date sort last either way


def test_a_path_with_a_newline_is_404_with_or_without_a_token(
    client: TestClient, auth: dict[str, str], tasks_url: str
) -> None:
    problem(client.get("/api/alice/tasks%0A"), 404)
    problem(client.get(f"{tasks_url}%0A", headers=auth), 404)
    problem(client.post(f"{tasks_url}%0D", json={"title": "x"}, headers=auth), 404)


@pytest.mark.parametrize("path", ["/api/{user}%2Ftasks", "/api/{user}%2ftasks",
                                  "/api/{user}/tasks%2F{task}", "/healthz%2F"])  # fmt: skip
def test_an_encoded_slash_is_404_not_a_path_separator(
    client: TestClient, user: str, auth: dict[str, str], path: str
) -> None:
    """Servers decode %2F before routing: /api/u%2Ftasks would be served as /api/u/tasks."""
    task = client.post(f"/api/{user}/tasks", json={"title": "t"}, headers=auth).json()["id"]
    response = client.get(path.format(user=user, task=task), headers=auth)
    problem(response, 404)


def test_a_trailing_slash_is_404_never_a_redirect(
    client: TestClient, auth: dict[str, str], tasks_url: str
) -> None:
    for headers in ({"Host": "evil.example"}, {**auth, "Host": "evil.example"}):
        response = client.get(f"{tasks_url}/", headers=headers, follow_redirects=False)
        problem(response, 404)
        assert "location" not in response.headers


def test_two_authorization_headers_are_400(
    client: TestClient, user: str, tasks_url: str, auth: dict[str, str]
) -> None:
    other = bearer("someone-else")["Authorization"]
    response = client.get(
        tasks_url, headers=[("Authorization", auth["Authorization"]), ("Authorization", other)]
    )
    assert problem(response, 400)["errors"] == [
        {"location": "header", "name": "authorization", "detail": "must appear once"}
    ]


def test_two_content_types_are_400(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    headers = [*auth.items(), ("Content-Type", "application/json"), ("Content-Type", "text/plain")]
    problem(client.post(tasks_url, content=b'{"title": "x"}', headers=headers), 400)
    assert client.get(tasks_url, headers=auth).json()["total"] == 0


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
def test_a_date_claim_given_as_a_string_is_401(client: TestClient, user: str, claim: str) -> None:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user, "iat": now, "nbf": now, "exp": now + 600}
    claims[claim] = str(claims[claim])
    token = jwt.encode(claims, TEST_SECRET, algorithm="HS256")
    response = client.get(f"/api/{user}/tasks", headers={"Authorization": f"Bearer {token}"})
    assert f"'{claim}' claim must be a number" in problem(response, 401)["detail"]


@pytest.mark.parametrize(
    "limit", ["1_0", "\u0661\u0662", "\uff11", " 1 ", "+1", "1.0", "0x10", "1e1"]
)
def test_limit_must_be_ascii_digits(
    client: TestClient, tasks_url: str, auth: dict[str, str], limit: str
) -> None:
    body = problem(client.get(tasks_url, params={"limit": limit}, headers=auth), 400)
    assert body["errors"] == [
        {"location": "query", "name": "limit", "detail": "must be an integer in ASCII digits"}
    ]


def test_a_parameter_given_twice_is_400(
    client: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    body = problem(client.get(f"{tasks_url}?limit=1&limit=100", headers=auth), 400)
    assert [e["name"] for e in body["errors"]] == ["limit"]


def test_a_bad_user_id_is_listed_once(client: TestClient) -> None:
    for path in ("/api/-alice/tasks", "/api/-alice/tasks/1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed"):
        body = problem(client.get(path, headers=bearer("-alice")), 400)
        assert [(e["location"], e["name"]) for e in body["errors"]] == [("path", "user_id")]


@pytest.mark.parametrize(
    ("accept", "status"),
    [
        ("application/xml", 406),
        ("text/html", 406),
        ("application/json;q=0", 406),
        ("application/json;q=oops", 406),
        ("text/html, application/json;q=0.5", 200),
        ("APPLICATION/JSON", 200),
        ("application/problem+json", 200),
        ("application/*", 200),
        ("*/*", 200),
        ("", 200),
    ],
)
def test_accept_must_admit_json(
    client: TestClient, tasks_url: str, auth: dict[str, str], accept: str, status: int
) -> None:
    response = client.get(tasks_url, headers={**auth, "Accept": accept})
    assert response.status_code == status, response.text
    if status == 406:
        problem(response, 406)


def test_the_contract_and_docs_keep_their_own_media_types(client: TestClient) -> None:
    assert client.get("/openapi.yaml", headers={"Accept": "application/yaml"}).status_code == 200
    assert client.get("/ui/", headers={"Accept": "text/html"}).status_code == 200
