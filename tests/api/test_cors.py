"""CORS (CORS_ORIGINS): what a browser on another origin is told, preflight and answer alike.
The real browser's view is tests/e2e/test_browser.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from contracts.document import load
from handlers.http.cors import request_headers, response_headers
from handlers.services.settings import Settings, SettingsError
from tests.helpers import client_with

APP = "https://app.example.com"
OTHER = "https://evil.example.net"


@pytest.fixture(scope="module")
def cors(settings: Settings) -> Iterator[TestClient]:
    with client_with(settings, cors_origins=(APP, "http://localhost:3000")) as client:
        yield client


def preflight(
    client: TestClient, path: str, method: str, headers: str = "", origin: str = APP
) -> tuple[int, dict[str, str], str]:
    asked = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        asked["Access-Control-Request-Headers"] = headers
    response = client.options(path, headers=asked)
    return response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.text


def access_control(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.startswith("access-control-")}


def test_a_preflight_names_the_methods_of_its_path_and_every_request_header(
    cors: TestClient, tasks_url: str
) -> None:
    asked = "authorization, content-type, idempotency-key, if-match, if-none-match, prefer"
    status, headers, _ = preflight(cors, f"{tasks_url}/1", "PUT", asked + ", x-request-id")
    assert status == 200
    assert headers["access-control-allow-origin"] == APP
    assert headers["access-control-allow-methods"] == "DELETE, GET, HEAD, PATCH, PUT"
    allowed = {h.strip().lower() for h in headers["access-control-allow-headers"].split(",")}
    assert {h.strip() for h in asked.split(",")} | {"x-request-id"} <= allowed
    assert headers["access-control-max-age"] == "600"
    assert "access-control-allow-credentials" not in headers
    status, headers, _ = preflight(cors, f"{tasks_url}/1/complete", "PATCH")
    assert (status, headers["access-control-allow-methods"]) == (200, "PATCH")


def test_a_preflight_for_a_method_the_path_lacks_or_an_unknown_header_is_refused(
    cors: TestClient, tasks_url: str
) -> None:
    status, headers, body = preflight(cors, tasks_url, "DELETE")
    assert status == 400
    assert headers["content-type"] == "application/problem+json"
    assert "method" in body
    assert access_control(headers) == {}
    status, headers, body = preflight(cors, tasks_url, "POST", "x-sneaky")
    assert (status, access_control(headers)) == (400, {})
    assert "headers" in body


def test_a_disallowed_origin_gets_no_cors_field_at_all(
    cors: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    status, headers, body = preflight(cors, tasks_url, "POST", "authorization", origin=OTHER)
    assert (status, access_control(headers)) == (400, {})
    assert "origin" in body
    answer = cors.get(tasks_url, headers={**auth, "Origin": OTHER})
    assert answer.status_code == 200
    assert not [k for k in answer.headers if k.lower().startswith("access-control-")]
    # An origin differs by scheme, case of nothing, port: only exact matches are allowed.
    for near in ("http://app.example.com", "https://app.example.com:8443", "null"):
        assert preflight(cors, tasks_url, "GET", origin=near)[0] == 400


def test_answers_to_an_allowed_origin_expose_what_the_contract_documents(
    cors: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    created = cors.post(
        tasks_url,
        json={"title": "from a browser"},
        headers={**auth, "Origin": APP, "Idempotency-Key": "cors-1"},
    )
    assert created.status_code == 201
    assert created.headers["access-control-allow-origin"] == APP
    assert "Origin" in created.headers["vary"]
    exposed = {h.strip() for h in created.headers["access-control-expose-headers"].split(",")}
    wanted = {"ETag", "Location", "Idempotent-Replayed", "Retry-After", "RateLimit",
              "RateLimit-Policy", "WWW-Authenticate", "X-Request-ID"}  # fmt: skip
    assert wanted <= exposed


def test_errors_carry_the_cors_fields_too(cors: TestClient, tasks_url: str) -> None:
    unauthorized = cors.get(tasks_url, headers={"Origin": APP})
    assert unauthorized.status_code == 401
    assert unauthorized.headers["access-control-allow-origin"] == APP
    refused_early = cors.get(tasks_url + "/", headers={"Origin": APP})  # the edge's 404
    assert refused_early.status_code == 404
    assert refused_early.headers["access-control-allow-origin"] == APP


def test_a_preflight_to_a_path_outside_the_contract_is_the_apis_own_answer(
    cors: TestClient,
) -> None:
    status, headers, _ = preflight(cors, "/nowhere", "GET")
    assert status == 404
    assert headers["content-type"] == "application/problem+json"


def test_the_mcp_endpoint_follows_the_same_rules(cors: TestClient) -> None:
    status, headers, _ = preflight(
        cors, "/mcp", "POST", "authorization, content-type, mcp-protocol-version"
    )
    assert (status, headers["access-control-allow-methods"]) == (200, "POST")
    assert preflight(cors, "/mcp", "POST", origin=OTHER)[0] == 400
    # The DNS-rebinding guard of /mcp on loopback admits the named origins as well.
    answer = cors.post("/mcp", json={}, headers={"Origin": "http://localhost:3000"})
    assert answer.status_code == 401
    assert answer.headers["access-control-allow-origin"] == "http://localhost:3000"


def test_without_cors_origins_a_preflight_is_an_ordinary_options_request(
    client: TestClient, tasks_url: str
) -> None:
    response = client.options(
        tasks_url, headers={"Origin": APP, "Access-Control-Request-Method": "POST"}
    )
    assert response.status_code == 405
    assert not [k for k in response.headers if k.lower().startswith("access-control-")]


def test_the_allowed_headers_come_from_the_contract() -> None:
    contract = load()
    assert set(request_headers(contract)) == {
        "Authorization", "Content-Type", "Idempotency-Key", "If-Match", "If-None-Match",
        "Prefer", "X-Request-ID",
    }  # fmt: skip
    assert "Location" in response_headers(contract)


@pytest.mark.parametrize(
    ("origins", "credentials", "complaint"),
    [
        ("https://app.example.com/", "false", "trailing slash"),
        ("https://App.example.com", "false", "lower case"),
        ("null", "false", "not an origin"),
        ("app.example.com", "false", "scheme://host"),
        ("*", "true", "cannot go with CORS_ALLOW_CREDENTIALS"),
        ("*, https://app.example.com", "false", "not both"),
    ],
)
def test_origins_that_could_never_match_are_refused_at_start(
    origins: str, credentials: str, complaint: str
) -> None:
    with pytest.raises(SettingsError, match=complaint):
        Settings.from_env({"CORS_ORIGINS": origins, "CORS_ALLOW_CREDENTIALS": credentials})


def test_credentials_and_a_wildcard_are_what_the_settings_say(settings: Settings) -> None:
    with client_with(settings, cors_origins=(APP,), cors_allow_credentials=True) as client:
        _, headers, _ = preflight(client, "/healthz", "GET")
        assert headers["access-control-allow-credentials"] == "true"
    with client_with(settings, cors_origins=("*",)) as client:
        answer = client.get("/healthz", headers={"Origin": OTHER})
        assert answer.headers["access-control-allow-origin"] == "*"
