"""Probes, and what clients see when the database is down: 503 problems, never 500s."""

from __future__ import annotations

import gc
import uuid
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from handlers.root import GC_THRESHOLD
from handlers.services.settings import Settings
from tests.helpers import bearer, client_with
from tests.live import free_port


def test_liveness_needs_no_token(client: TestClient) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readiness_is_200_when_the_database_answers(client: TestClient) -> None:
    response = client.get("/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.fixture
def unreachable_database(settings: Settings) -> Iterator[TestClient]:
    """An app whose DATABASE_URL points at a loopback port where nothing listens."""
    port = free_port()
    down = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    with client_with(settings, database_url=down) as test_client:
        yield test_client


def test_database_outage_is_a_503_problem_not_a_500(unreachable_database: TestClient) -> None:
    client = unreachable_database
    user = f"user-{uuid.uuid4().hex[:8]}"

    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert ready.headers["retry-after"] == "1"  # as the contract declares for every 503

    for method, url in [("GET", f"/api/{user}/tasks"), ("POST", f"/api/{user}/tasks")]:
        response = client.request(method, url, json={"title": "x"}, headers=bearer(user))
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert response.json()["status"] == 503


def test_with_database_url_nothing_embedded_is_started(
    client: TestClient, settings: Settings
) -> None:
    assert settings.database_url is not None
    assert client.get("/readyz").status_code == 200
    assert not (settings.data_dir / "postgres").exists()


def test_an_app_built_by_a_library_user_leaves_the_garbage_collector_alone(
    client: TestClient,
) -> None:
    """Only `tasks-api serve` tunes the collector of its process (handlers/root.py)."""
    assert client.get("/healthz").status_code == 200
    assert gc.get_threshold()[0] != GC_THRESHOLD
    assert gc.get_freeze_count() == 0
