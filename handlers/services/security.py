"""Bearer tokens: key sources, the verifier built from settings, and the function the contract
names in `x-bearerInfoFunc`. Every failure becomes a 401 problem, never a 500.

Each key source verifies only its own algorithms (HMAC for the shared secret, asymmetric ones for
a JWKS), so a public key can never be used as an HMAC secret. Headers that point elsewhere for
keys (`jku`, `x5u`, `jwk`) are never followed.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import jwt

from handlers.core.errors import Unauthorized
from handlers.services.settings import Settings

MAX_TOKEN_LENGTH = 8192
VERIFIED_CACHE_SIZE = 10_000
MAX_KID_LENGTH = 256
MAX_JWKS_BYTES = 512 * 1024
REQUIRED_CLAIMS = ("exp", "sub")
NUMERIC_CLAIMS = ("exp", "nbf", "iat")  # RFC 7519 NumericDate: a JSON number, never a string

logger = logging.getLogger(__name__)
Clock = Callable[[], float]


class InvalidToken(Unauthorized):
    """A presented token was refused; the detail is short and safe to show."""


class KeySource(Protocol):
    """Where verification keys for some algorithms come from (a shared secret, a JWKS URL)."""

    @property
    def algorithms(self) -> Sequence[str]:
        """The JWS algorithms this source's keys are for."""
        ...

    async def key_for(self, header: Mapping[str, Any]) -> Any:
        """The key that verifies a token with this header; raise InvalidToken when none does."""
        ...

    async def aclose(self) -> None:
        """Release what the source holds open."""
        ...


@dataclass(frozen=True)
class SharedSecret:
    """HMAC keys from one configured secret."""

    secret: str = field(repr=False)
    algorithms: Sequence[str] = ("HS256",)

    async def key_for(self, header: Mapping[str, Any]) -> Any:
        return self.secret

    async def aclose(self) -> None:
        return None


class JwksKeys:
    """Public keys from a JWKS URL, cached so that verifying a token never waits on the network
    unless it has to, and an unreachable JWKS never takes the API down.

    - The first token (and the first after `ttl` expires) fetches the set; requests whose key is
      already cached never wait for a fetch in flight.
    - A token with an unknown `kid` triggers a refresh at most once per `cooldown`, however many
      such tokens arrive; all requests share one fetch in flight.
    - When a fetch fails or times out, the keys already cached stay in use, and the next attempt
      waits for the cooldown.
    """

    def __init__(
        self,
        url: str,
        *,
        algorithms: Sequence[str],
        ttl: float = 300,
        cooldown: float = 30,
        timeout: float = 3,
        clock: Clock = time.monotonic,
        fetched: Callable[[bool], None] = lambda _ok: None,
    ) -> None:
        self.url = url
        self._fetched = fetched  # told of every download, and whether it worked (metrics)
        self.algorithms = tuple(algorithms)
        self._ttl, self._cooldown, self._timeout, self._clock = ttl, cooldown, timeout, clock
        self._keys: dict[str, jwt.PyJWK] | None = None
        self._expires = -math.inf  # when the cached set goes stale
        self._retry_at = -math.inf  # after a failed fetch, when to try again
        self._unknown_kid_refresh_at = -math.inf  # when an unknown kid may refresh again
        self._inflight: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    async def key_for(self, header: Mapping[str, Any]) -> Any:
        kid = header.get("kid")
        if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH:
            raise InvalidToken("The token has no usable key id ('kid').")
        now = self._clock()
        stale = now >= self._expires and now >= self._retry_at
        cached = self._keys is not None and kid in self._keys
        if stale and not (cached and self._inflight is not None):
            await self._refresh()
        key = (self._keys or {}).get(kid)
        if key is None and self._clock() >= self._unknown_kid_refresh_at:
            await self._refresh()
            key = (self._keys or {}).get(kid)
        if key is None:
            raise InvalidToken("The token's signing key is not known.")
        return key

    async def _refresh(self) -> None:
        """Wait for the one fetch in flight, starting it if there is none."""
        if self._inflight is None:
            self._inflight = asyncio.create_task(self._fetch())
        await asyncio.shield(self._inflight)

    async def _fetch(self) -> None:
        started = self._clock()
        self._unknown_kid_refresh_at = started + self._cooldown
        try:
            self._keys = await asyncio.wait_for(self._download(), self._timeout)
            self._expires, self._retry_at = started + self._ttl, -math.inf
            self._fetched(True)
        except Exception as error:  # any failure keeps the cached keys and waits a cooldown
            self._fetched(False)
            self._retry_at = started + self._cooldown
            reason = "timed out" if isinstance(error, TimeoutError) else str(error)[:200]
            logger.warning("JWKS %s unavailable (%s); keeping %d cached keys",
                           self.url, reason, len(self._keys or {}))  # fmt: skip
        finally:
            self._inflight = None

    async def _download(self) -> dict[str, jwt.PyJWK]:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False, timeout=self._timeout)
        response = await self._client.get(self.url, headers={"Accept": "application/json"})
        if response.status_code != 200:
            raise ValueError(f"HTTP {response.status_code}")
        if len(response.content) > MAX_JWKS_BYTES:
            raise ValueError("JWKS larger than expected")
        document = response.json()
        keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(keys, list):
            raise ValueError("not a JWK set")
        usable: dict[str, jwt.PyJWK] = {}
        for data in keys:
            if not isinstance(data, dict) or data.get("use", "sig") != "sig":
                continue
            try:
                key = jwt.PyJWK(data)
            except jwt.PyJWTError:
                continue  # a key type we cannot use
            if isinstance(key.key_id, str) and key.algorithm_name in self.algorithms:
                usable[key.key_id] = key
        if not usable:
            raise ValueError("no usable signing keys")
        return usable

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


@dataclass(frozen=True)
class TokenVerifier:
    """Checks signature, algorithm and claims; each source accepts only its own algorithms."""

    sources: Sequence[KeySource]
    issuer: str | None = None
    audience: str | None = None
    authorized_parties: Sequence[str] = ()
    leeway_seconds: int = 30
    # Claims of shared-secret tokens already verified, by token: a client sends the same token
    # for many requests, and a signature that verified once verifies again. Expiry is checked on
    # every use; only successes are kept; JWKS tokens are not cached, so key rotation applies.
    _verified: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False, compare=False)
    wall_clock: Clock = time.time

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        clock: Clock = time.monotonic,
        jwks_fetched: Callable[[bool], None] = lambda _ok: None,
    ) -> TokenVerifier:
        sources: list[KeySource] = []
        secret = settings.shared_secret()
        if secret is not None:
            sources.append(SharedSecret(secret, settings.secret_algorithms()))
        if settings.jwt_jwks_url is not None:
            sources.append(
                JwksKeys(
                    settings.jwt_jwks_url,
                    algorithms=settings.jwks_algorithms(),
                    ttl=settings.jwt_jwks_cache_seconds,
                    cooldown=settings.jwt_jwks_cooldown_seconds,
                    timeout=settings.jwt_jwks_timeout_seconds,
                    clock=clock,
                    fetched=jwks_fetched,
                )
            )
        return cls(
            sources=tuple(sources),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            authorized_parties=settings.jwt_authorized_parties,
            leeway_seconds=settings.jwt_leeway_seconds,
        )

    async def aclose(self) -> None:
        for source in self.sources:
            await source.aclose()

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or InvalidToken with the reason."""
        known = self._verified.get(token)
        if known is not None:
            if known["exp"] < self.wall_clock() - self.leeway_seconds:
                del self._verified[token]
                raise InvalidToken("The token has expired.")
            return known
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("The token is too long.")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("The token is malformed.") from None
        algorithm = header.get("alg")
        source = next((s for s in self.sources if str(algorithm) in s.algorithms), None)
        if source is None:
            raise InvalidToken("The token's algorithm is not accepted.")
        key = await source.key_for(header)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[str(algorithm)],
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway_seconds,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("The token has expired.") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("The token is not valid yet.") from None
        except jwt.MissingRequiredClaimError as error:
            raise InvalidToken(f"The token has no '{error.claim}' claim.") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("The token's issuer is not accepted.") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("The token's audience is not accepted.") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("The token's signature is invalid.") from None
        except jwt.PyJWTError:
            raise InvalidToken("The token is invalid.") from None
        for name in NUMERIC_CLAIMS:
            value = claims.get(name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                # PyJWT reads "exp": "1999999999" as a number; RFC 7519 says NumericDate.
                raise InvalidToken(f"The token's '{name}' claim must be a number.")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise InvalidToken("The token's 'sub' claim must be a non-empty string.")
        if self.authorized_parties and claims.get("azp") not in self.authorized_parties:
            raise InvalidToken("The token's authorized party ('azp') is not accepted.")
        if isinstance(source, SharedSecret) and isinstance(claims["exp"], int | float):
            if len(self._verified) >= VERIFIED_CACHE_SIZE:
                self._verified.clear()
            self._verified[token] = claims
        return claims


def mint_token(
    secret: str,
    subject: str,
    *,
    ttl_seconds: int = 3600,
    issuer: str | None = None,
    audience: str | None = None,
) -> str:
    """An HS256 token for subject, as a development identity provider would issue it."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": subject, "iat": now, "nbf": now, "exp": now + ttl_seconds}
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")
