"""A newcomer finds everything from the README's contents: every link between README.md and
docs/ reaches a file that exists and a heading that is there, every page of docs/ is linked from
the README, and the README stays short enough to read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs import DOCS, README
from tests.live import REPO

PAGES = [README, *sorted(DOCS.glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} (.+)$", re.MULTILINE)
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the page's headings: lower case, punctuation dropped, spaces to -."""
    text = FENCE.sub("", page.read_text())
    return {
        re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in HEADING.findall(text)
    }


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_link_reaches_a_file_and_a_heading(page: Path) -> None:
    broken = []
    for target in LINK.findall(FENCE.sub("", page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        missing = anchor and linked.suffix == ".md" and anchor not in anchors(linked)
        if not linked.exists() or missing:
            broken.append(target)
    assert broken == []


def test_every_page_is_in_the_readmes_contents_and_the_readme_is_short() -> None:
    text = README.read_text()
    contents = text[text.index("## Contents") : text.index("## Quickstart")]
    assert [p.name for p in sorted(DOCS.glob("*.md")) if f"(docs/{p.name})" not in contents] == []
    assert len(text.splitlines()) <= 300


def test_the_layout_names_every_module_where_it_is() -> None:
    """docs/adding-an-operation.md's tree and the code tell the same story."""
    text = (DOCS / "adding-an-operation.md").read_text()
    tree = text[text.index("## Where everything lives") :]
    modules = [
        p for folder in ("handlers", "contracts", "persistence")
        for p in (REPO / folder).rglob("*.py") if p.name != "__init__.py"
    ]  # fmt: skip
    handlers = [
        p for p in modules if p.parts[-2] in ("handlers", "core", "services", "http", "mcp")
    ]
    missing = [p.relative_to(REPO).as_posix() for p in handlers if p.name not in tree]
    assert missing == []
