"""The documentation's command blocks, for the tests that run them: README.md's Quickstart and
every block marked `<!-- run: ... -->` in README.md and docs/, in the order they appear."""

from __future__ import annotations

import re
from pathlib import Path

from tests.live import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
_MARKED = re.compile(
    r"<!-- (?P<mark>[\w-]+)(?::[^>]*)? -->\n```(?:\w+)\n(?P<body>.*?)```", re.DOTALL
)


def blocks(path: Path, mark: str) -> list[str]:
    """The code blocks of path that a `<!-- mark: ... -->` line introduces, in order."""
    return [m["body"] for m in _MARKED.finditer(path.read_text()) if m["mark"] == mark]


def quickstart() -> str:
    (block,) = blocks(README, "quickstart")
    return block


def provider_settings(provider: str) -> dict[str, str]:
    """The `<!-- provider: name ... -->` block of docs/operating.md, as settings."""
    text = (DOCS / "operating.md").read_text()
    match = re.search(rf"<!-- provider: {provider} .*?-->\n```bash\n(.*?)```", text, re.DOTALL)
    assert match, f"docs/operating.md has no settings block for {provider}"
    return dict(line.split("=", 1) for line in match.group(1).splitlines() if "=" in line)
