"""Tokens signed by an identity provider's keys from a JWKS URL: what is accepted, every known
attack refused, key rotation, outages and floods. The JWKS is a real HTTP server on 127.0.0.1;
the key cache runs on a clock the tests move, so nothing here sleeps."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import jwt
import pytest
from starlette.testclient import TestClient

from handlers.services.settings import Settings
from tests.helpers import TEST_SECRET, client_with, parse, value
from tests.identity.jwks_server import JwksServer, SigningKey

ISSUER_PATH = "/.well-known/jwks.json"
LEEWAY = 30
TTL, COOLDOWN, TIMEOUT = 300, 30, 1.0


class Clock:
    """Monotonic time the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {alg: SigningKey.generate(alg) for alg in ("RS256", "ES256", "EdDSA")}


@pytest.fixture
def jwks(keys: dict[str, SigningKey]) -> Iterator[JwksServer]:
    server = JwksServer()
    server.keys = list(keys.values())
    with server.running():
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock()


AppFactory = Callable[..., TestClient]


@pytest.fixture
def app_with(settings: Settings, jwks: JwksServer, clock: Clock) -> Iterator[AppFactory]:
    """Start an app that trusts the test JWKS (plus any setting overrides)."""
    with ExitStack() as started:

        def start(**overrides: Any) -> TestClient:
            trusted = {
                "jwt_jwks_url": jwks.base_url + ISSUER_PATH, "jwt_leeway_seconds": LEEWAY,
                "jwt_jwks_cache_seconds": TTL, "jwt_jwks_cooldown_seconds": COOLDOWN,
                "jwt_jwks_timeout_seconds": TIMEOUT,
            }  # fmt: skip
            return started.enter_context(
                client_with(settings, clock=clock, **{**trusted, **overrides})
            )

        yield start


def claims(user: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values = {"sub": user, "iat": now, "exp": now + 300, **overrides}
    return {k: v for k, v in values.items() if v is not None}


def get(client: TestClient, user: str, token: str) -> int:
    response = client.get(f"/api/{user}/tasks", headers={"Authorization": f"Bearer {token}"})
    if response.status_code == 401:
        assert response.headers["www-authenticate"].startswith('Bearer realm="tasks-api"')
        assert response.headers["content-type"] == "application/problem+json"
    return response.status_code


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed_hs256(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    """An HS256 token PyJWT would refuse to make (PyJWT will not use a PEM key as a secret)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_tokens_signed_by_jwks_keys_are_accepted(
    app_with: AppFactory, keys: dict[str, SigningKey], user: str, algorithm: str
) -> None:
    client = app_with()
    assert get(client, user, keys[algorithm].sign(claims(user))) == 200


def test_both_key_sources_at_once_each_with_its_own_algorithms(
    app_with: AppFactory, keys: dict[str, SigningKey], user: str
) -> None:
    client = app_with(jwt_secret=TEST_SECRET)
    assert get(client, user, jwt.encode(claims(user), TEST_SECRET, "HS256")) == 200
    assert get(client, user, keys["RS256"].sign(claims(user))) == 200
    # The public key, used as an HMAC secret (algorithm confusion), must never verify.
    pem = keys["RS256"].public_pem
    header = {"alg": "HS256", "typ": "JWT", "kid": keys["RS256"].kid}
    assert get(client, user, hand_signed_hs256(header, claims(user), pem)) == 401
    assert get(client, user, hand_signed_hs256({"alg": "HS256"}, claims(user), pem)) == 401


def test_attacks_are_refused(
    app_with: AppFactory, keys: dict[str, SigningKey], jwks: JwksServer, user: str
) -> None:
    client = app_with()
    rsa = keys["RS256"]
    good = rsa.sign(claims(user))
    header, payload, signature = good.split(".")
    tampered = f"{header}.{b64(json.dumps(claims('mallory')).encode())}.{signature}"
    unsigned = {
        alg: f"{b64(json.dumps({'alg': alg, 'kid': rsa.kid}).encode())}.{payload}."
        for alg in ("none", "None", "NONE", "nOnE")
    }
    outsider = SigningKey.generate("RS256")
    cases = {
        "tampered payload": tampered,
        "signature of another key": outsider.sign(claims(user), kid=rsa.kid),
        "unknown kid": outsider.sign(claims(user)),
        "no kid": jwt.encode(claims(user), rsa.private, "RS256"),
        "kid with a path": rsa.sign(claims(user), kid="../../etc/passwd"),
        "kid with SQL": rsa.sign(claims(user), kid="x' OR '1'='1"),
        "oversized kid": rsa.sign(claims(user), kid="k" * 1000),
        "unknown crit": rsa.sign(claims(user), crit=["exp-policy"], **{"exp-policy": 1}),
        "missing exp": rsa.sign(claims(user, exp=None)),
        "missing sub": rsa.sign(claims(user, sub=None)),
        "RS256 key claimed as ES256": jwt.encode(
            claims(user), keys["ES256"].private, "ES256", headers={"kid": rsa.kid}
        ),
        **{f"alg {alg}": token for alg, token in unsigned.items()},
    }
    for case, token in cases.items():
        assert get(client, user, token) == 401, case
    assert get(client, user, good) == 200


def test_keys_named_by_the_token_are_never_fetched(
    app_with: AppFactory, keys: dict[str, SigningKey], user: str
) -> None:
    attacker_key = SigningKey.generate("RS256")
    attacker = JwksServer()
    attacker.keys = [attacker_key]
    with attacker.running():
        client = app_with()
        url = attacker.base_url + "/jwks.json"
        for headers in (
            {"jku": url},
            {"x5u": url},
            {"jwk": attacker_key.jwk},
            {"jku": url, "kid": keys["RS256"].kid},
            {"jwk": attacker_key.jwk, "kid": keys["RS256"].kid},
        ):
            assert get(client, user, attacker_key.sign(claims(user), **headers)) == 401, headers
        assert attacker.fetches == 0


@pytest.mark.parametrize(
    ("name", "setting", "good", "bad"),
    [
        ("iss", "jwt_issuer", "https://issuer.example", ["https://evil.example", None]),
        ("aud", "jwt_audience", "tasks-api", ["other", None]),
        ("azp", "jwt_authorized_parties", "https://app.example", ["https://evil.example", None]),
    ],
)
def test_configured_claims_are_enforced(
    app_with: AppFactory,
    keys: dict[str, SigningKey],
    user: str,
    name: str,
    setting: str,
    good: str,
    bad: list[str | None],
) -> None:
    value: Any = (good,) if setting == "jwt_authorized_parties" else good
    client = app_with(**{setting: value})
    key = keys["EdDSA"]
    assert get(client, user, key.sign(claims(user, **{name: good}))) == 200
    for wrong in bad:
        assert get(client, user, key.sign(claims(user, **{name: wrong}))) == 401, wrong


def test_leeway_boundary(app_with: AppFactory, keys: dict[str, SigningKey], user: str) -> None:
    """One second inside the leeway is accepted, one second outside is refused. Claims are whole
    seconds, so each is rounded in the direction that keeps the test true however the current
    second ticks over."""
    client = app_with()
    key = keys["ES256"]
    t = time.time()
    early, late = math.floor(t), math.ceil(t)
    assert get(client, user, key.sign(claims(user, exp=late - (LEEWAY - 1)))) == 200
    assert get(client, user, key.sign(claims(user, exp=early - (LEEWAY + 1)))) == 401
    assert get(client, user, key.sign(claims(user, nbf=early + (LEEWAY - 1)))) == 200
    assert get(client, user, key.sign(claims(user, nbf=late + (LEEWAY + 1)))) == 401


def test_failures_leave_no_token_or_key_in_the_logs(
    app_with: AppFactory,
    keys: dict[str, SigningKey],
    jwks: JwksServer,
    clock: Clock,
    user: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = app_with()
    tokens = [keys["RS256"].sign(claims(user)), SigningKey.generate("RS256").sign(claims(user))]
    with caplog.at_level(logging.DEBUG):
        for token in tokens:
            get(client, user, token)
        jwks.mode = "503"
        clock.advance(TTL + 1)
        for token in tokens:
            get(client, user, token)
    assert "JWKS" in caplog.text, "the outage was not logged, so this test proves nothing"
    for token in tokens:
        assert token.split(".")[2] not in caplog.text
    assert keys["RS256"].jwk["n"][:40] not in caplog.text


def test_key_rotation(app_with: AppFactory, jwks: JwksServer, clock: Clock, user: str) -> None:
    k1, k2 = SigningKey.generate("RS256"), SigningKey.generate("RS256")
    jwks.keys = [k1]
    client = app_with()
    signed_by_k1 = k1.sign(claims(user))  # one token, sent again below: JWKS tokens are not cached
    assert get(client, user, signed_by_k1) == 200
    assert jwks.fetches == 1

    # The provider adds K2: its tokens are accepted after at most one refresh.
    jwks.keys = [k1, k2]
    clock.advance(COOLDOWN + 1)
    assert get(client, user, k2.sign(claims(user))) == 200
    assert get(client, user, k2.sign(claims(user))) == 200
    assert jwks.fetches == 2

    # The provider drops K1: still trusted until the cache expires, refused after.
    jwks.keys = [k2]
    assert get(client, user, signed_by_k1) == 200
    clock.advance(TTL + 1)
    assert get(client, user, signed_by_k1) == 401  # the same token, once its key is gone
    assert get(client, user, k2.sign(claims(user))) == 200
    assert jwks.fetches == 3


def test_jwks_answering_503_keeps_cached_keys(
    app_with: AppFactory, keys: dict[str, SigningKey], jwks: JwksServer, clock: Clock, user: str
) -> None:
    client = app_with()
    assert get(client, user, keys["RS256"].sign(claims(user))) == 200

    jwks.mode = "503"
    clock.advance(TTL + 1)
    assert get(client, user, keys["RS256"].sign(claims(user))) == 200
    assert get(client, user, keys["ES256"].sign(claims(user))) == 200
    assert get(client, user, SigningKey.generate("RS256").sign(claims(user))) == 401
    assert jwks.fetches == 2  # one failed refresh, then the cooldown holds

    jwks.mode = "ok"
    clock.advance(COOLDOWN + 1)
    assert get(client, user, keys["EdDSA"].sign(claims(user))) == 200
    assert jwks.fetches == 3
    samples = parse(client.get("/metrics").text)  # as an operator sees it
    assert value(samples, "tasks_api_jwks_fetches_total") == 3
    assert value(samples, "tasks_api_jwks_fetch_failures_total") == 1


def test_a_stalled_jwks_costs_one_request_the_timeout_and_no_one_else_anything(
    app_with: AppFactory, keys: dict[str, SigningKey], jwks: JwksServer, clock: Clock, user: str
) -> None:
    client = app_with()
    cached = keys["RS256"].sign(claims(user))
    assert get(client, user, cached) == 200

    jwks.mode = "stall"
    jwks.requested.clear()
    clock.advance(TTL + 1)
    finished: dict[str, float] = {}

    def timed(name: str, token: str) -> int:
        started = time.monotonic()
        status = get(client, user, token)
        finished[name] = time.monotonic() - started
        return status

    with ThreadPoolExecutor(max_workers=8) as pool:
        # This one finds the cache stale, starts the refresh and waits on the stalled JWKS...
        refreshing = pool.submit(timed, "refreshing", cached)
        assert jwks.requested.wait(5)  # ...once the JWKS server has its request
        # ...while these, with cached keys, answer at once from the stale cache.
        others = [pool.submit(timed, f"other-{i}", cached) for i in range(6)]
        assert [f.result() for f in others] == [200] * 6
        unknown = pool.submit(timed, "unknown", SigningKey.generate("ES256").sign(claims(user)))
        assert unknown.result() == 401
        assert refreshing.result() == 200

    slowest_other = max(v for k, v in finished.items() if k.startswith("other"))
    assert slowest_other < finished["refreshing"]
    assert finished["refreshing"] < TIMEOUT + 2  # the stalled fetch gives up at the timeout
    assert finished["unknown"] < TIMEOUT + 2
    jwks.release.set()


def test_a_flood_of_unknown_kids_fetches_at_most_once_per_cooldown(
    app_with: AppFactory, keys: dict[str, SigningKey], jwks: JwksServer, clock: Clock, user: str
) -> None:
    client = app_with()
    assert get(client, user, keys["RS256"].sign(claims(user))) == 200
    assert jwks.fetches == 1

    attacker = SigningKey.generate("RS256")
    tokens = [attacker.sign(claims(user), kid=uuid.uuid4().hex) for _ in range(1000)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda token: get(client, user, token), tokens))
    assert set(statuses) == {401}
    assert jwks.fetches == 1  # the set was fetched moments ago: the cooldown holds

    clock.advance(COOLDOWN + 1)
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda token: get(client, user, token), tokens[:200]))
    assert set(statuses) == {401}
    assert jwks.fetches == 2  # one refresh for the whole burst


def test_an_unreachable_jwks_at_start_is_a_401_not_a_500(
    app_with: AppFactory, keys: dict[str, SigningKey], jwks: JwksServer, user: str
) -> None:
    jwks.mode = "503"
    client = app_with()
    assert get(client, user, keys["RS256"].sign(claims(user))) == 401
    assert client.get("/healthz").status_code == 200
