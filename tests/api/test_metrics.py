"""GET /metrics: Prometheus's text format (OpenMetrics when asked), exact after known traffic,
open by default and behind METRICS_TOKEN when it is set."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from handlers.services.settings import Settings
from tests.helpers import Samples, bearer, client_address, client_with, in_one_window, parse, value

TOKEN = "metrics-" + uuid.uuid4().hex + uuid.uuid4().hex


def scrape(client: TestClient, **headers: str) -> Samples:
    answer = client.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(answer.text)


def check_histograms(samples: Samples) -> None:
    """Every histogram's buckets are cumulative, end at +Inf with its count, and sum >= 0."""
    series: dict[frozenset[tuple[str, str]], list[tuple[float, float]]] = {}
    for (name, labels), count in samples.items():
        if name == "tasks_api_request_duration_seconds_bucket":
            bound = dict(labels)["le"]
            rest = frozenset((k, v) for k, v in labels if k != "le")
            series.setdefault(rest, []).append((float(bound), count))
    assert series
    for labels, buckets in series.items():
        buckets.sort()
        counts = [count for _, count in buckets]
        assert counts == sorted(counts), labels
        assert buckets[-1][0] == float("inf")
        assert counts[-1] == samples[("tasks_api_request_duration_seconds_count", labels)]
        assert samples[("tasks_api_request_duration_seconds_sum", labels)] >= 0


@pytest.fixture
def fresh(settings: Settings) -> Iterator[TestClient]:
    """An app of its own, so its counts are this test's traffic alone."""
    with client_with(settings) as client:
        yield client


def test_counts_are_exact_after_known_traffic(
    fresh: TestClient, tasks_url: str, auth: dict[str, str]
) -> None:
    for title in ("a", "b", "c"):
        assert fresh.post(tasks_url, json={"title": title}, headers=auth).status_code == 201
    assert fresh.post(tasks_url, json={"title": 5}, headers=auth).status_code == 400
    assert fresh.get(tasks_url, headers=auth).status_code == 200
    assert fresh.get(f"{tasks_url}/{uuid.uuid4()}", headers=auth).status_code == 404
    assert fresh.get(tasks_url).status_code == 401
    assert fresh.get("/no/such/path").status_code == 404

    samples = scrape(fresh)
    requests = "tasks_api_requests_total"
    assert value(samples, requests, operation="tasks.create_task", status_class="2xx") == 3
    assert value(samples, requests, operation="tasks.create_task", status_class="4xx") == 1
    assert value(samples, requests, operation="tasks.list_tasks", status_class="2xx") == 1
    assert value(samples, requests, operation="tasks.list_tasks", status_class="4xx") == 1
    assert value(samples, requests, operation="tasks.get_task", status_class="4xx") == 1
    assert value(samples, requests, operation="other", status_class="4xx") == 1
    counted = sum(v for (name, _), v in samples.items() if name == requests)
    assert counted == 8  # the scrape itself is counted once it is answered
    check_histograms(samples)
    durations = "tasks_api_request_duration_seconds_count"
    labels = {"operation": "tasks.create_task", "status_class": "2xx"}
    assert value(samples, durations, **labels) == 3

    again = scrape(fresh)
    assert value(again, requests, operation="metrics", status_class="2xx") == 1
    assert value(again, "tasks_api_requests_in_flight") == 1  # the scrape being answered


def test_the_pool_is_reported(fresh: TestClient, tasks_url: str, auth: dict[str, str]) -> None:
    fresh.get(tasks_url, headers=auth)
    samples = scrape(fresh)
    assert value(samples, "tasks_api_db_pool_max") == 10
    assert 1 <= value(samples, "tasks_api_db_pool_size") <= 10
    assert value(samples, "tasks_api_db_pool_in_use") == 0
    assert value(samples, "tasks_api_db_pool_waiting") == 0
    assert value(samples, "tasks_api_db_statement_timeouts_total") == 0


def test_rate_limit_rejections_are_counted(settings: Settings) -> None:
    limits: dict[str, Any] = {"rate_limit_per_minute": 2, "auth_failure_limit_per_minute": 1}
    with client_with(settings, address=(client_address(), 1), **limits) as client:
        answers = in_one_window(
            lambda user: [client.get(f"/api/{user}/tasks", headers=bearer(user))
                          for _ in range(5)], "m"
        )  # fmt: skip
        guesses = [client.get("/api/m/tasks", headers=bearer("m", "x" * 40))
                   for _ in range(3)]  # fmt: skip
        # that address's failing requests are refused; the rest of what it sends is served
        samples = scrape(client)
    assert [a.status_code for a in answers] == [200, 200, 429, 429, 429]
    assert [g.status_code for g in guesses] == [401, 429, 429]
    name = "tasks_api_rate_limit_rejections_total"
    assert value(samples, name, limit="per-user") == 3
    assert value(samples, name, limit="auth-failures") == 2  # the two refused guesses


def test_openmetrics_when_the_scraper_asks(fresh: TestClient) -> None:
    answer = fresh.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/openmetrics-text")
    assert answer.text.endswith("# EOF\n")


def test_other_methods_are_405(fresh: TestClient) -> None:
    for method in ("POST", "PUT", "DELETE"):
        answer = fresh.request(method, "/metrics")
        assert answer.status_code == 405
        assert answer.headers["allow"] == "GET, HEAD"
        assert answer.headers["content-type"] == "application/problem+json"


@pytest.fixture
def guarded(settings: Settings) -> Iterator[TestClient]:
    with client_with(settings, metrics_token=TOKEN) as client:
        yield client


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
    ],
)
def test_metrics_token_is_required_when_set(guarded: TestClient, headers: dict[str, str]) -> None:
    answer = guarded.get("/metrics", headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Bearer realm="metrics"'
    assert answer.json()["status"] == 401
    assert "tasks_api" not in answer.text


def test_the_metrics_token_opens_it(guarded: TestClient) -> None:
    for scheme in ("Bearer", "bearer", "BEARER"):
        assert scrape(guarded, Authorization=f"{scheme} {TOKEN}")
    twice: Any = [("Authorization", f"Bearer {TOKEN}")] * 2
    assert guarded.get("/metrics", headers=twice).status_code == 401


def test_a_placeholder_metrics_token_stops_the_server() -> None:
    from handlers.services.settings import SettingsError

    with pytest.raises(SettingsError, match="METRICS_TOKEN"):
        Settings.from_env({"METRICS_TOKEN": "changeme"})
