"""MCP_ENABLED=false: no /mcp, and the MCP SDK is never even imported (memory per worker)."""

from __future__ import annotations

import subprocess
import sys

from handlers.services.settings import Settings
from tests.helpers import bearer, client_with


def test_with_mcp_off_there_is_no_mcp_endpoint(settings: Settings) -> None:
    with client_with(settings, mcp_enabled=False) as client:
        response = client.post("/mcp", json={}, headers=bearer("ann"))
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        metadata = client.get("/.well-known/oauth-protected-resource/mcp")
        assert metadata.status_code == 404
        assert client.get("/api/ann/tasks", headers=bearer("ann")).status_code == 200


def test_with_mcp_off_the_sdk_is_not_loaded() -> None:
    script = (
        "import sys\n"
        "from handlers.root import create_app\n"
        "from handlers.services.settings import Settings\n"
        "url = 'postgresql://u@127.0.0.1/x'\n"
        "settings = Settings(database_url=url, jwt_secret='s' * 48, FLAG)\n"
        "create_app(settings)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'mcp', 'mcp_types'}))\n"
    )
    loaded = {
        flag: subprocess.run(
            [sys.executable, "-c", script.replace("FLAG", f"mcp_enabled={flag}")],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout.strip()
        for flag in (False, True)
    }  # fmt: skip
    assert loaded == {False: "[]", True: "['mcp', 'mcp_types']"}
