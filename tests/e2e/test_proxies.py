"""Behind a reverse proxy, and beside an attacker sharing an address: two workers, under uvicorn
and under Granian, with FORWARDED_ALLOW_IPS naming the proxy. Loopback has room for all three
parties: the proxy connects from 127.0.0.2, an untrusted peer from another 127.x address.

- 200 bad tokens from one client behind the proxy: exactly the limit are 401, the rest 429,
  counted as one across both workers (in RATE_LIMIT_MODE=exact); then a valid token from that
  same client is served, and the probes answer; another client behind the same proxy is
  limited on its own.
- An untrusted peer's X-Forwarded-For is ignored: its failures all count against its own
  address, however it varies the header.
- The log line names the client the proxy saw.
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from handlers.services.security import mint_token
from tests.helpers import SECRET, WORKER_READY, start
from tests.live import LiveServer

PROXY = "127.0.0.2"
LIMIT = 60
BAD = {"Authorization": "Bearer not-a-token"}


@pytest.fixture(scope="module")
def database(migrated_database: Callable[[str], str]) -> str:
    return migrated_database("proxies_tests")


def client_from(address: str) -> httpx.Client:
    """Requests from this loopback address, each on a new connection (so either worker may
    take it)."""
    transport = httpx.HTTPTransport(
        local_address=address, limits=httpx.Limits(max_keepalive_connections=0)
    )
    return httpx.Client(transport=transport, timeout=10)


def somewhere() -> str:
    """An address in IPv6's documentation range (RFC 3849) that no other test or run uses."""
    return str(ipaddress.IPv6Address((0x20010DB8 << 96) | secrets.randbits(64)))


def in_one_minute(run: Callable[[], list[int]]) -> list[int]:
    """run's statuses, from one calendar minute of the shared counters (run again once if the
    minute turned meanwhile; run must then use fresh addresses)."""
    for _ in range(2):
        before = int(time.time() // 60)
        statuses = run()
        if int(time.time() // 60) == before:
            return statuses
    raise AssertionError("the minute turned twice during one short test")


@pytest.fixture(params=["uvicorn", "granian"])
def server(database: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    live = start(
        database, tmp_path, "--workers", "2", SERVER=request.param, FORWARDED_ALLOW_IPS=PROXY,
        AUTH_FAILURE_LIMIT_PER_MINUTE=str(LIMIT), RATE_LIMIT_PER_MINUTE="1000000",
        RATE_LIMIT_MODE="exact",  # "exactly the limit" across both workers
    )  # fmt: skip
    live.wait_for(WORKER_READY[request.param], count=2)
    yield live
    live.stop()
    assert "Traceback" not in live.log


def lines_of(server: LiveServer, client: str, count: int = 0) -> list[dict[str, object]]:
    """The request log lines that name client, once at least count of them were written (each
    is written just after its answer is sent)."""
    if count:
        server.wait_for(re.escape(f'"client":"{client}"'), count=count)
    records = (json.loads(x) for x in server.log.splitlines() if x.startswith('{"method"'))
    return [record for record in records if record.get("client") == client]


def test_failures_are_refused_per_real_client_and_a_valid_token_is_always_served(
    server: LiveServer,
) -> None:
    user = f"p-{uuid.uuid4().hex[:8]}"
    tasks = f"{server.url}/api/{user}/tasks"
    attacker = ""

    def burst() -> list[int]:
        nonlocal attacker
        attacker = somewhere()
        with client_from(PROXY) as proxy:
            xff = {"X-Forwarded-For": attacker}
            return [proxy.get(tasks, headers={**BAD, **xff}).status_code for _ in range(200)]

    statuses = in_one_minute(burst)
    with client_from(PROXY) as proxy:
        as_attacker = {"X-Forwarded-For": attacker}
        valid = proxy.get(tasks, headers={**as_attacker, "Authorization": auth(user)})
        probes = [
            proxy.get(f"{server.url}{p}", headers=as_attacker) for p in ("/healthz", "/readyz")
        ]
        neighbour = proxy.get(tasks, headers={**BAD, "X-Forwarded-For": somewhere()})

    assert statuses.count(401) == LIMIT
    assert statuses.count(429) == 200 - LIMIT
    assert valid.status_code == 200  # the same address, a valid token: served
    assert [p.status_code for p in probes] == [200, 200]
    assert neighbour.status_code == 401  # behind the same proxy, counted on its own
    attacker_lines = lines_of(server, attacker, count=200 + 3)  # the client the proxy saw
    assert len({line["pid"] for line in attacker_lines}) == 2, "both workers counted failures"
    assert lines_of(server, PROXY) == []


def test_an_untrusted_peers_forwarded_headers_are_ignored(server: LiveServer) -> None:
    tasks = f"{server.url}/api/p-{uuid.uuid4().hex[:8]}/tasks"
    peer = ""

    def spoofing() -> list[int]:
        nonlocal peer
        peer = str(ipaddress.IPv4Address((127 << 24) | (3 << 16) | secrets.randbelow(1 << 16)))
        with client_from(peer) as http:
            return [
                http.get(tasks, headers={**BAD, "X-Forwarded-For": somewhere(),
                                         "Forwarded": f"for={somewhere()}"}).status_code
                for _ in range(LIMIT + 10)
            ]  # fmt: skip

    statuses = in_one_minute(spoofing)
    assert statuses == [401] * LIMIT + [429] * 10
    assert len(lines_of(server, peer, count=LIMIT + 10)) == LIMIT + 10


def auth(user: str) -> str:
    return f"Bearer {mint_token(SECRET, user)}"
