"""A live server for MCP tests (uvicorn in this process, so coverage sees it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from handlers.services.settings import Settings
from tests.helpers import serving


@pytest.fixture(scope="session")
def live(settings: Settings) -> Iterator[str]:
    """The API and /mcp on 127.0.0.1."""
    with serving(settings) as url:
        yield url
