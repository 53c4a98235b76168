"""tests/citus's own names for the cluster (tests/citus/fixtures.py), and tasks-api served on
its coordinator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.citus.cluster import Cluster
from tests.citus.fixtures import QUOTA, SECRET
from tests.live import LiveServer, serving_production


@pytest.fixture(scope="session")
def cluster(citus_cluster: Cluster) -> Cluster:
    return citus_cluster


@pytest.fixture(scope="session")
def coordinator(citus_coordinator: str) -> str:
    return citus_coordinator


@pytest.fixture(scope="session")
def server(coordinator: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Two uvicorn workers on the coordinator, validating every response against the contract."""
    data = tmp_path_factory.mktemp("citus")
    limit = {"RATE_LIMIT_PER_MINUTE": str(QUOTA)}
    with serving_production(coordinator, SECRET, data, "--workers", "2", **limit) as live:
        yield live
