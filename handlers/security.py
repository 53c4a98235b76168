"""Bearer tokens: key sources, the verifier built from settings, and the function the contract
names in `x-bearerInfoFunc`. Every failure becomes a 401 problem, never a 500."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import jwt
from connexion.lifecycle import ConnexionRequest

from handlers.context import app_state
from handlers.problems import Unauthorized
from handlers.settings import Settings

MAX_TOKEN_LENGTH = 8192
REQUIRED_CLAIMS = ("exp", "sub")


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


@dataclass(frozen=True)
class SharedSecret:
    """HMAC keys from one configured secret."""

    secret: str = field(repr=False)
    algorithms: Sequence[str] = ("HS256",)

    async def key_for(self, header: Mapping[str, Any]) -> Any:
        return self.secret


@dataclass(frozen=True)
class TokenVerifier:
    """Checks signature, algorithm and claims; each source accepts only its own algorithms."""

    sources: Sequence[KeySource]
    issuer: str | None = None
    audience: str | None = None
    leeway_seconds: int = 30

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        return cls(
            sources=(SharedSecret(settings.signing_secret()),),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway_seconds=settings.jwt_leeway_seconds,
        )

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or InvalidToken with the reason."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("The token is too long.")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("The token is malformed.") from None
        algorithm = header.get("alg")
        source = next((s for s in self.sources if algorithm in s.algorithms), None)
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
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise InvalidToken("The token's 'sub' claim must be a non-empty string.")
        return claims


async def verify_bearer(token: str, request: ConnexionRequest) -> dict[str, Any]:
    """Connexion's bearer hook: the verified claims of the request's token."""
    try:
        return await app_state(request.scope).verifier.verify(token)
    except InvalidToken:
        raise
    except Exception as error:  # a bug here must still answer 401, never leak a 500
        raise InvalidToken("The token could not be verified.") from error


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
