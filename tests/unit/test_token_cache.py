"""Verified shared-secret tokens are remembered, but never past their expiry, and failures are not
remembered. (JWKS tokens are not remembered at all: tests/identity/test_jwks.py's rotation test.)"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import jwt
import pytest

from handlers.services.security import InvalidToken, SharedSecret, TokenVerifier

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


class CountingSecret(SharedSecret):
    """The shared secret, counting how often a token's key is asked for (once per verification
    that is not answered from memory)."""

    lookups = 0

    async def key_for(self, header: Any) -> Any:
        type(self).lookups += 1
        return await super().key_for(header)


def test_successes_are_remembered_and_failures_are_not() -> None:
    CountingSecret.lookups = 0
    tokens = TokenVerifier(sources=(CountingSecret(SECRET),), wall_clock=WallClock())
    forged = jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, "x" * 48, "HS256")
    for _ in range(3):
        with pytest.raises(InvalidToken, match="signature"):
            asyncio.run(tokens.verify(forged))
    assert CountingSecret.lookups == 3  # verified in full every time

    good = jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, SECRET, "HS256")
    for _ in range(3):
        asyncio.run(tokens.verify(good))
    assert CountingSecret.lookups == 4  # verified once, then from memory
