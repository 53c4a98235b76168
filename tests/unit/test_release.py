"""One version for the package and the contract, the one the changelog's newest release names;
the license the contract declares is the one in the repository; every setting is in the
configuration reference and the example .env."""

from __future__ import annotations

import re
import tomllib

from contracts.document import load
from handlers.services.settings import variables
from tests.live import REPO

RELEASE = re.compile(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", re.MULTILINE)


def test_the_package_and_the_contract_carry_one_version() -> None:
    package = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert package == load()["info"]["version"]


def test_the_changelogs_newest_release_is_that_version_and_entries_go_newest_first() -> None:
    changelog = (REPO / "CHANGELOG.md").read_text()
    releases = RELEASE.findall(changelog)
    assert releases, "CHANGELOG.md names no release"
    assert releases[0][0] == load()["info"]["version"]
    versions = [tuple(int(n) for n in v.split(".")) for v, _ in releases]
    assert versions == sorted(versions, reverse=True)
    assert [d for _, d in releases] == sorted((d for _, d in releases), reverse=True)
    # Every entry says what it did to the contract, as `make contract-diff` reports it.
    entries = re.split(r"^## ", changelog, flags=re.MULTILINE)[1:]
    released = [entry for entry in entries if RELEASE.match("## " + entry.split("\n", 1)[0])]
    assert all("### Contract" in entry for entry in released[:-1])  # the first had no before


def test_the_license_is_the_one_the_contract_declares() -> None:
    declared = load()["info"]["license"]["name"]
    assert (REPO / "LICENSE").read_text().startswith(f"{declared} License")


def test_every_setting_is_documented_and_in_the_example_env_file() -> None:
    names = variables()
    reference = (REPO / "docs" / "operating.md").read_text()
    example = (REPO / ".env.example").read_text()
    assert [n for n in names if f"| `{n}` |" not in reference] == []
    assert [n for n in names if not re.search(rf"^#? ?{n}=", example, re.MULTILINE)] == []


def test_every_problem_type_is_documented() -> None:
    declared = load()["components"]["schemas"]["Problem"]["x-problem-types"]
    api = (REPO / "docs" / "api.md").read_text()
    assert [n for n, d in declared.items() if f"`{n}` ({d['status']})" not in api] == []
