"""Verified shared-secret tokens are remembered, but never past their expiry, and failures are not
remembered. (JWKS tokens are not remembered at all: tests/identity/test_jwks.py's rotation test.)"""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest

from handlers.security import InvalidToken, SharedSecret, TokenVerifier

SECRET = "s" * 16 + "e" * 16 + "c" * 16


class WallClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def verifier(clock: WallClock) -> TokenVerifier:
    return TokenVerifier(sources=(SharedSecret(SECRET),), leeway_seconds=30, wall_clock=clock)


def test_a_remembered_token_still_expires() -> None:
    clock = WallClock()
    tokens = verifier(clock)
    token = jwt.encode({"sub": "alice", "exp": int(clock.now) + 60}, SECRET, "HS256")

    assert asyncio.run(tokens.verify(token))["sub"] == "alice"
    assert asyncio.run(tokens.verify(token))["sub"] == "alice"  # from memory

    clock.now += 60 + 30 + 1  # past exp and the leeway
    with pytest.raises(InvalidToken, match="expired"):
        asyncio.run(tokens.verify(token))


def test_failures_are_not_remembered() -> None:
    tokens = verifier(WallClock())
    forged = jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, "x" * 48, "HS256")
    for _ in range(2):
        with pytest.raises(InvalidToken, match="signature"):
            asyncio.run(tokens.verify(forged))
