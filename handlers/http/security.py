"""The HTTP door's bearer hook, named by the contract's security scheme (x-bearerInfoFunc):
Connexion hands it the request's token, and the process's verifier checks it."""

from __future__ import annotations

import functools
from typing import Any

from connexion.lifecycle import ConnexionRequest
from connexion.security import SECURITY_HANDLERS, BearerSecurityHandler

from handlers.services.security import InvalidToken
from handlers.services.state import app_state


async def verify_bearer(token: str, request: ConnexionRequest) -> dict[str, Any]:
    """Connexion's bearer hook: the verified claims of the request's token."""
    try:
        return await app_state(request.scope).verifier.verify(token)
    except InvalidToken:
        raise
    except Exception as error:  # a bug here must still answer 401, never leak a 500
        raise InvalidToken("The token could not be verified.") from error


class _BearerHandler(BearerSecurityHandler):  # type: ignore[misc]
    """Connexion's bearer scheme, which asks twice per request whether the hook takes a
    `request` or `required_scopes` argument by inspecting its signature: the answer is the
    same every time, so it is worked out once per hook."""

    _accepts_kwarg = staticmethod(functools.cache(BearerSecurityHandler._accepts_kwarg))


SECURITY_MAP = {**SECURITY_HANDLERS, "bearer": _BearerHandler}
