"""docs/operating.md's "Using Clerk" and "Using Better Auth" settings, as printed, accept tokens
shaped like each provider's and refuse tokens from anyone else."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from handlers.services.settings import Settings
from tests.docs import provider_settings
from tests.helpers import client_with
from tests.identity.jwks_server import JwksServer, SigningKey

PROVIDERS = {
    "clerk": ("https://clerk.example.com", "RS256"),
    "better-auth": ("https://auth.example.com", "EdDSA"),
}


@pytest.fixture(params=list(PROVIDERS))
def provider(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def deployment(
    provider: str, database_url: str
) -> Iterator[tuple[TestClient, SigningKey, str, dict[str, str]]]:
    """The API configured from docs/operating.md for provider, its keys served on 127.0.0.1."""
    public_url, algorithm = PROVIDERS[provider]
    key = SigningKey.generate(algorithm)
    jwks = JwksServer()
    jwks.keys = [key]
    with jwks.running():
        printed = provider_settings(provider)
        env = {k: v.replace(public_url, jwks.base_url) for k, v in printed.items()}
        settings = Settings.from_env({**env, "DATABASE_URL": database_url})
        with client_with(settings) as client:
            yield client, key, jwks.base_url, printed


def clerk_claims(issuer: str, user: str, azp: str) -> dict[str, Any]:
    now = int(time.time())
    return {"azp": azp, "exp": now + 60, "iat": now, "iss": issuer, "nbf": now - 5,
            "sid": "sess_" + secrets.token_hex(12), "sub": user}  # fmt: skip


def better_auth_claims(issuer: str, user: str) -> dict[str, Any]:
    now = int(time.time())
    return {"iat": now, "iss": issuer, "aud": issuer, "sub": user, "exp": now + 15 * 60,
            "email": "alice@example.com", "name": "Alice"}  # fmt: skip


def test_readme_settings_accept_the_providers_tokens_and_refuse_others(
    provider: str, deployment: tuple[TestClient, SigningKey, str, dict[str, str]]
) -> None:
    client, key, issuer, printed = deployment
    user = ("user_" if provider == "clerk" else "") + secrets.token_hex(12)

    def status(token_claims: dict[str, Any], signer: SigningKey = key) -> int:
        headers = {"Authorization": f"Bearer {signer.sign(token_claims)}"}
        created = client.post(
            f"/api/{user}/tasks", json={"title": "from " + provider}, headers=headers
        )
        return created.status_code

    if provider == "clerk":
        origin = printed["JWT_AUTHORIZED_PARTIES"].split(",")[0]
        good = clerk_claims(issuer, user, origin)
        wrong = [
            {**good, "azp": "https://evil.example.com"},
            {**good, "iss": "https://clerk.evil.example.com"},
            {k: v for k, v in good.items() if k != "azp"},
        ]
    else:
        good = better_auth_claims(issuer, user)
        wrong = [{**good, "aud": "https://other.example.com"}, {**good, "iss": "https://x.example"}]

    assert status(good) == 201
    for claims in wrong:
        assert status(claims) == 401, claims
    assert status(good, SigningKey.generate(key.algorithm)) == 401


def mcp_call(client: TestClient, token: str, tool: str, arguments: dict[str, Any]) -> Any:
    """One tools/call in the 2026-07-28 per-request envelope, as raw HTTP."""
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}}  # fmt: skip
    return client.post(
        "/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/call",
              "params": {"name": tool, "arguments": arguments, "_meta": meta}},
        headers={"Authorization": f"Bearer {token}", "Host": "127.0.0.1:8000",
                 "Accept": "application/json, text/event-stream", "Mcp-Method": "tools/call",
                 "MCP-Protocol-Version": "2026-07-28", "Mcp-Name": tool},
    )  # fmt: skip


def test_the_providers_tokens_work_for_mcp_tools_too(
    provider: str, deployment: tuple[TestClient, SigningKey, str, dict[str, str]]
) -> None:
    client, key, issuer, printed = deployment
    user = ("user_" if provider == "clerk" else "") + secrets.token_hex(12)
    if provider == "clerk":
        good = clerk_claims(issuer, user, printed["JWT_AUTHORIZED_PARTIES"].split(",")[0])
    else:
        good = better_auth_claims(issuer, user)

    answer = mcp_call(client, key.sign(good), "add_task", {"title": "from an agent"})
    assert answer.status_code == 200, answer.text
    result = answer.json()["result"]
    assert result["isError"] is False
    assert result["structuredContent"]["data"]["user_id"] == user

    forged = mcp_call(client, SigningKey.generate(key.algorithm).sign(good), "list_tasks", {})
    assert forged.status_code == 401
    metadata_url = "http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp"
    assert f'resource_metadata="{metadata_url}"' in forged.headers["www-authenticate"]
    metadata = client.get("/.well-known/oauth-protected-resource/mcp").json()
    assert metadata["authorization_servers"] == [issuer]
