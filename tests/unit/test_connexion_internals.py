"""The Connexion internals this project still uses, one test each: a Connexion upgrade that
removes one fails here, naming the module that needs it, instead of somewhere far away."""

from __future__ import annotations

from typing import Any

import connexion
from connexion.lifecycle import ConnexionRequest
from connexion.validators import AbstractRequestBodyValidator

VERSION = connexion.__version__ if hasattr(connexion, "__version__") else "this version"


def gone(name: str, user: str) -> str:
    return f"Connexion {VERSION} no longer has {name}, which {user} relies on"


def test_body_validators_keep_their_schema_and_required_flag() -> None:
    validator = AbstractRequestBodyValidator(
        schema={"type": "object"}, required=True, encoding="utf-8", strict_validation=True
    )
    assert validator._schema == {"type": "object"}, gone("._schema", "handlers/http/validation.py")
    assert validator._required is True, gone("._required", "handlers/http/validation.py")


def test_the_token_claims_live_under_the_connexion_context_scope_key() -> None:
    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": "/", "query_string": b"",
                             "headers": []}  # fmt: skip
    ConnexionRequest(scope).context["user"] = "alice"
    assert scope["extensions"]["connexion_context"]["user"] == "alice", gone(
        "the connexion_context scope key", "handlers/http/ownership.py"
    )
