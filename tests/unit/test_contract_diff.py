"""The breaking-change gate: each rule, each allowed change, and the command's exit codes."""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts.document import CONTRACT, Document, load, parse
from contracts.tools.diff import Change, diff, main

TASKS, TASK = "/api/{user_id}/tasks", "/api/{user_id}/tasks/{task_id}"
COMPLETE = "/api/{user_id}/tasks/{task_id}/complete"
Mutation = Callable[[Document], object]


def schema(d: Document, name: str) -> dict[str, Any]:
    found: dict[str, Any] = d["components"]["schemas"][name]
    return found


def listing(d: Document) -> dict[str, Any]:
    found: dict[str, Any] = d["paths"][TASKS]["get"]
    return found


def query(d: Document, name: str) -> dict[str, Any]:
    return next(p for p in listing(d)["parameters"] if p.get("name") == name)


def add_required_field(d: Document) -> None:
    schema(d, "TaskCreate")["properties"]["owner"] = {"type": "string"}
    schema(d, "TaskCreate")["required"].append("owner")


def forbid_null_description(d: Document) -> None:
    schema(d, "TaskCreate")["properties"]["description"].pop("nullable")
    schema(d, "Description").pop("nullable")


def add_media_type(d: Document) -> None:
    content = d["paths"][TASKS]["post"]["requestBody"]["content"]
    content["application/merge-patch+json"] = {"schema": {"type": "object"}}


def add_operation(d: Document) -> None:
    d["paths"]["/version"] = copy.deepcopy(d["paths"]["/healthz"])
    d["paths"]["/version"]["get"]["operationId"] = "health.get_version"


BREAKING: list[tuple[str, Mutation, str]] = [
    ("operation removed", lambda d: d["paths"][TASK].pop("delete"), "operation removed"),
    ("path removed", lambda d: d["paths"].pop(COMPLETE), "operation removed"),
    ("response field removed",
     lambda d: schema(d, "Task")["properties"].pop("priority"), "field removed"),
    ("enum value removed", lambda d: schema(d, "Priority")["enum"].remove("low"), "values removed"),
    ("response enum value added",
     lambda d: schema(d, "Priority")["enum"].append("urgent"), "enum values added"),
    ("required request field added", add_required_field, "field added, required"),
    ("request field now required",
     lambda d: schema(d, "TaskCreate")["required"].append("priority"), "now required"),
    ("required parameter added",
     lambda d: listing(d)["parameters"].append(
         {"name": "tag", "in": "query", "required": True, "schema": {"type": "string"}}),
     "added, required"),
    ("parameter now required", lambda d: query(d, "completed").update(required=True), "required"),
    ("parameter removed",
     lambda d: listing(d)["parameters"].remove(query(d, "priority")), "removed"),
    ("type changed", lambda d: schema(d, "Completed").update(type="string"), "type changed"),
    ("maxLength lowered", lambda d: schema(d, "Title").update(maxLength=100), "maxLength lowered"),
    ("minimum raised", lambda d: query(d, "limit")["schema"].update(minimum=5), "minimum raised"),
    ("status code removed",
     lambda d: d["paths"][TASK]["get"]["responses"].pop("404"), "status code removed"),
    ("request body now required",
     lambda d: d["paths"][COMPLETE]["patch"]["requestBody"].update(required=True), "required"),
    ("now needs a token",
     lambda d: d["paths"]["/healthz"]["get"].pop("security"), "requires authentication"),
    ("request field no longer nullable", forbid_null_description, "no longer nullable"),
    ("response field may be absent",
     lambda d: schema(d, "Task")["required"].remove("due_date"), "no longer always present"),
]  # fmt: skip

COMPATIBLE: list[tuple[str, Mutation]] = [
    ("operation added", add_operation),
    ("optional parameter added",
     lambda d: listing(d)["parameters"].append(
         {"name": "q", "in": "query", "schema": {"type": "string"}})),
    ("optional request field added",
     lambda d: schema(d, "TaskCreate")["properties"].update(tags={"type": "string"})),
    ("response field added",
     lambda d: schema(d, "Task")["properties"].update(archived={"type": "boolean"})),
    ("request-only limit widened", lambda d: query(d, "limit")["schema"].update(maximum=500)),
    ("request enum value added", lambda d: schema(d, "TaskSort")["enum"].append("updated_at")),
    ("status code added",
     lambda d: d["paths"][TASK]["get"]["responses"].update(
         {"410": {"$ref": "#/components/responses/Error"}})),
    ("media type added", add_media_type),
]  # fmt: skip


def changes_between(old: Document, new: Document) -> tuple[list[str], list[str]]:
    changes: list[Change] = diff(old, new)
    return [str(c) for c in changes if c.breaking], [str(c) for c in changes]


def mutated(mutate: Mutation) -> Document:
    document = copy.deepcopy(load())
    mutate(document)
    return document


@pytest.mark.parametrize(("name", "mutate", "reason"), BREAKING, ids=[b[0] for b in BREAKING])
def test_breaking_change_is_flagged(name: str, mutate: Mutation, reason: str) -> None:
    breaking, everything = changes_between(load(), mutated(mutate))
    assert any(reason in change for change in breaking), everything


def test_removed_media_type_is_breaking() -> None:
    breaking, everything = changes_between(mutated(add_media_type), load())
    assert any("media type removed" in change for change in breaking), everything


@pytest.mark.parametrize(("name", "mutate"), COMPATIBLE, ids=[c[0] for c in COMPATIBLE])
def test_compatible_change_is_not_breaking(name: str, mutate: Mutation) -> None:
    breaking, everything = changes_between(load(), mutated(mutate))
    assert everything
    assert not breaking


def test_an_unchanged_contract_has_no_changes() -> None:
    assert diff(load(), load()) == []


def test_documentation_edits_are_not_changes() -> None:
    def reword(d: Document) -> None:
        d["info"]["description"] = "Edited."
        d["paths"][TASKS]["get"]["summary"] = "List the tasks"
        schema(d, "Title")["description"] = "Edited."

    assert diff(load(), mutated(reword)) == []


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository whose one commit holds today's contract."""
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "openapi.yaml").write_text(CONTRACT.read_text())
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "contract"], check=True)
    return tmp_path / "contracts" / "openapi.yaml"


def edit(contract: Path, mutate: Mutation) -> None:
    document = parse(contract.read_text())
    mutate(document)
    contract.write_text(yaml.safe_dump(document, sort_keys=False))


def test_command_fails_on_a_breaking_change_until_the_major_version_goes_up(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["HEAD", str(repo)]) == 0

    edit(repo, lambda d: d["paths"][TASK].pop("delete"))
    assert main(["HEAD", str(repo)]) == 1
    output = capsys.readouterr().out
    assert "BREAKING  DELETE /api/{user_id}/tasks/{task_id}: operation removed" in output

    edit(repo, lambda d: d["info"].update(version="2.0.0"))
    assert main(["HEAD", str(repo)]) == 0
    assert "major version went up" in capsys.readouterr().out


def test_command_with_nothing_to_compare(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    renamed = repo.with_name("renamed.yaml")
    renamed.write_text(repo.read_text())
    assert main(["HEAD", str(renamed)]) == 0
    assert "did not exist at HEAD" in capsys.readouterr().out
    assert main([]) == 2


def test_a_base_that_does_not_exist_fails_rather_than_passing_the_gate(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["v0.0.0-no-such-tag", str(repo)]) == 2
    assert "'v0.0.0-no-such-tag' is no commit, branch or tag" in capsys.readouterr().err
