"""Authentication (the token matrix) and isolation between users, through HTTP."""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from starlette.testclient import TestClient

from handlers.services.settings import Settings
from tests.helpers import TEST_SECRET, bearer, client_with


def token(claims: dict[str, Any], key: str = TEST_SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def unsigned(claims: dict[str, Any], alg: str = "none") -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': alg, 'typ': 'JWT'})}.{part(claims)}."


def claims_for(user: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"sub": user, "iat": now, "exp": now + 600, **overrides}
    return {k: v for k, v in claims.items() if v is not None}


def matrix(user: str) -> dict[str, str | None]:
    """Authorization header values that must each be refused with 401."""
    now = int(time.time())
    return {
        "missing": None,
        "basic": "Basic " + base64.b64encode(b"alice:password").decode(),
        "empty-bearer": "Bearer ",
        "garbage": "Bearer not.a.jwt",
        "wrong-secret": "Bearer " + token(claims_for(user), key="x" * 48),
        "alg-none": "Bearer " + unsigned(claims_for(user)),
        "alg-NONE": "Bearer " + unsigned(claims_for(user), alg="NONE"),
        "expired": "Bearer " + token(claims_for(user, iat=now - 7200, exp=now - 3600)),
        "not-yet-valid": "Bearer " + token(claims_for(user, nbf=now + 3600)),
        "issued-in-future": "Bearer " + token(claims_for(user, iat=now + 3600)),
        "no-exp": "Bearer " + token(claims_for(user, exp=None)),
        "no-sub": "Bearer " + token(claims_for(user, sub=None)),
        "empty-sub": "Bearer " + token(claims_for(user, sub="")),
        "numeric-sub": "Bearer " + token(claims_for(user, sub=42)),
        "hs512": "Bearer " + token(claims_for(user), algorithm="HS512"),
        "tampered": "Bearer " + _tampered(user),
        "unexpected-audience": "Bearer " + token(claims_for(user, aud="someone-else")),
        "oversized": "Bearer " + token(claims_for(user, pad="x" * 10_000)),
    }


def _tampered(user: str) -> str:
    header, _, signature = token(claims_for("mallory")).split(".")
    body = base64.urlsafe_b64encode(json.dumps(claims_for(user)).encode()).rstrip(b"=").decode()
    return f"{header}.{body}.{signature}"


CASES = list(matrix("x"))


@pytest.mark.parametrize("case", CASES)
def test_bad_credentials_are_401_with_a_bearer_challenge(
    client: TestClient, user: str, tasks_url: str, case: str
) -> None:
    value = matrix(user)[case]
    headers = {} if value is None else {"Authorization": value}

    response = client.get(tasks_url, headers=headers)

    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    presented = value is not None and value.lower().startswith("bearer ")
    assert ('error="invalid_token"' in challenge) == presented
    assert response.json()["status"] == 401
    credential = (value or "").partition(" ")[2]
    if len(credential) > 20:
        assert credential[:40] not in response.text  # the token is never echoed


def test_every_protected_operation_requires_a_token(client: TestClient, user: str) -> None:
    task = f"/api/{user}/tasks/{uuid.uuid4()}"
    for method, url in [
        ("GET", f"/api/{user}/tasks"),
        ("POST", f"/api/{user}/tasks"),
        ("GET", task),
        ("PUT", task),
        ("DELETE", task),
        ("PATCH", f"{task}/complete"),
    ]:
        response = client.request(method, url, json={"title": "x"})
        assert response.status_code == 401, (method, url)


def test_a_token_inside_the_leeway_is_accepted(
    client: TestClient, user: str, tasks_url: str
) -> None:
    now = int(time.time())
    headers = {"Authorization": "Bearer " + token(claims_for(user, exp=now - 5, nbf=now + 5))}
    assert client.get(tasks_url, headers=headers).status_code == 200


def test_the_scheme_is_case_insensitive(client: TestClient, user: str, tasks_url: str) -> None:
    value = bearer(user)["Authorization"].replace("Bearer", "bEaReR")
    assert client.get(tasks_url, headers={"Authorization": value}).status_code == 200


@pytest.fixture
def other() -> tuple[str, dict[str, str]]:
    name = f"other-{uuid.uuid4().hex[:12]}"
    return name, bearer(name)


def test_a_foreign_path_is_403_for_every_verb(
    client: TestClient, auth: dict[str, str], other: tuple[str, dict[str, str]]
) -> None:
    name, their_auth = other
    theirs = client.post(f"/api/{name}/tasks", json={"title": "private"}, headers=their_auth)
    task_url = f"/api/{name}/tasks/{theirs.json()['id']}"

    for method, url, body in [
        ("GET", f"/api/{name}/tasks", None),
        ("POST", f"/api/{name}/tasks", {"title": "intruder"}),
        ("GET", task_url, None),
        ("PUT", task_url, {"title": "hijacked"}),
        ("DELETE", task_url, None),
        ("PATCH", f"{task_url}/complete", None),
        ("PATCH", f"{task_url}/complete", {"completed": True}),
    ]:
        response = client.request(method, url, json=body, headers=auth)
        assert response.status_code == 403, (method, url)
        assert response.headers["content-type"] == "application/problem+json"
        assert "private" not in response.text

    after = client.get(f"/api/{name}/tasks", headers=their_auth).json()
    assert after["items"] == [theirs.json()]


def test_a_foreign_task_id_under_my_path_is_404_and_unchanged(
    client: TestClient, tasks_url: str, auth: dict[str, str], other: tuple[str, dict[str, str]]
) -> None:
    name, their_auth = other
    theirs = client.post(f"/api/{name}/tasks", json={"title": "private"}, headers=their_auth)
    foreign = f"{tasks_url}/{theirs.json()['id']}"

    for method, url, body in [
        ("GET", foreign, None),
        ("PUT", foreign, {"title": "hijacked"}),
        ("PATCH", f"{foreign}/complete", None),
        ("DELETE", foreign, None),
    ]:
        response = client.request(method, url, json=body, headers=auth)
        assert response.status_code == 404, (method, url)
        assert "private" not in response.text

    assert client.get(tasks_url, headers=auth).json()["total"] == 0
    unchanged = client.get(f"/api/{name}/tasks/{theirs.json()['id']}", headers=their_auth)
    assert unchanged.json() == theirs.json()


@pytest.mark.parametrize(
    ("user_id", "in_path", "status"),
    [
        ("-leading-dash", "-leading-dash", 400),
        ("a" * 129, "a" * 129, 400),
        ("has space", "has%20space", 400),
        ("semi;colon", "semi;colon", 400),
        ("nul\x00", "nul%00", 404),  # a control character: no such path
        # Invalid UTF-8 in a path decodes to U+FFFD, which no token subject can equal.
        ("\ud800", "%ED%A0%80", 403),
    ],
)
def test_malformed_user_id_is_a_4xx(
    client: TestClient, user_id: str, in_path: str, status: int
) -> None:
    response = client.get(f"/api/{in_path}/tasks", headers=bearer(user_id))
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    if status == 400:
        assert response.json()["errors"][0]["name"] == "user_id"


def test_user_ids_from_identity_providers_work(client: TestClient) -> None:
    for user_id in ["user_2NNEqL2nrIRdJ194ndJqAHwEfxC", "auth0|65f0c1", "alice@example.com"]:
        unique = f"{user_id}.{uuid.uuid4().hex[:6]}"
        response = client.post(f"/api/{unique}/tasks", json={"title": "x"}, headers=bearer(unique))
        assert response.status_code == 201, unique
        assert response.json()["user_id"] == unique
        assert client.get(response.headers["location"], headers=bearer(unique)).status_code == 200


@pytest.fixture(scope="module")
def strict_client(settings: Settings) -> Iterator[TestClient]:
    """An app that also requires an issuer and an audience."""
    with client_with(settings, jwt_issuer=ISSUER, jwt_audience=AUDIENCE) as test_client:
        yield test_client


ISSUER = "https://auth.example.com"
AUDIENCE = "tasks-api"


@pytest.mark.parametrize(
    ("claims", "status"),
    [
        ({"iss": ISSUER, "aud": AUDIENCE}, 200),
        ({"iss": ISSUER, "aud": [AUDIENCE, "other"]}, 200),
        ({"iss": "https://evil.example.com", "aud": AUDIENCE}, 401),
        ({"aud": AUDIENCE}, 401),
        ({"iss": ISSUER, "aud": "other"}, 401),
        ({"iss": ISSUER}, 401),
    ],
)
def test_issuer_and_audience_are_enforced_when_configured(
    strict_client: TestClient, user: str, claims: dict[str, Any], status: int
) -> None:
    headers = {"Authorization": "Bearer " + token(claims_for(user, **claims))}
    response = strict_client.get(f"/api/{user}/tasks", headers=headers)
    assert response.status_code == status, response.text


def test_tokens_never_reach_the_logs(
    client: TestClient, user: str, tasks_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    good = bearer(user)["Authorization"]
    bad = "Bearer " + token(claims_for(user), key="y" * 48)
    with caplog.at_level(logging.DEBUG):
        client.get(tasks_url, headers={"Authorization": good})
        client.get(tasks_url, headers={"Authorization": bad})
        client.get("/api/someone-else/tasks", headers={"Authorization": good})
    assert caplog.records, "nothing was logged, so this test proves nothing"
    for value in (good, bad):
        assert value.split(" ")[1] not in caplog.text
        assert value.split(" ")[1].split(".")[2] not in caplog.text  # nor the signature alone
