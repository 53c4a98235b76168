"""docs/adding-an-operation.md, done for real: its contract snippets pass the contract's lint,
`make stubs` writes the stub it shows, and its statement and handler, added to the project,
serve the new operation over REST and as an MCP tool, responses validated against the
extended contract."""

from __future__ import annotations

import copy
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.testclient import TestClient

import handlers.root
import handlers.tasks
import persistence.tasks
from contracts.document import Document, load
from contracts.tools.lint import lint
from contracts.tools.stubs import write_stubs
from handlers.mcp.tools import tools
from handlers.services.settings import Settings
from tests.helpers import bearer, client_with
from tests.live import REPO

PAGE = REPO / "docs" / "adding-an-operation.md"
SNIPPET = re.compile(r"<!-- example: (\w+) -->\n```\w+\n(.*?)```", re.DOTALL)


def snippets() -> dict[str, str]:
    found = dict(SNIPPET.findall(PAGE.read_text()))
    assert set(found) == {"path", "schemas", "stub", "persistence", "handler"}
    return found


def extended() -> Document:
    document = copy.deepcopy(load())
    document["paths"].update(yaml.safe_load(snippets()["path"]))
    document["components"]["schemas"].update(yaml.safe_load(snippets()["schemas"]))
    return document


def defined(source: str, module: Any) -> Any:
    """The function source defines, run among module's names as if it were written there."""
    names = dict(vars(module))
    exec(compile(source, str(PAGE), "exec"), names)  # noqa: S102 - the page's own snippet
    return names["summarize_tasks"]


def test_the_contract_snippets_pass_the_contracts_rules() -> None:
    assert lint(extended()) == []


def test_make_stubs_writes_the_stub_the_page_shows(tmp_path: Path) -> None:
    for module in ("tasks.py", "health.py"):
        shutil.copy(REPO / "handlers" / module, tmp_path / module)
    assert write_stubs(extended(), tmp_path) == [tmp_path / "tasks.py"]
    assert snippets()["stub"] in (tmp_path / "tasks.py").read_text()


@pytest.fixture
def project(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Iterator[TestClient]:
    """The app with the page's contract, statement and handler added."""
    document = extended()
    monkeypatch.setattr(handlers.root, "load", lambda: document)
    statement = defined(snippets()["persistence"], persistence.tasks)
    handler = defined(snippets()["handler"], handlers.tasks)
    monkeypatch.setattr(persistence.tasks, "summarize_tasks", statement, raising=False)
    monkeypatch.setattr(handlers.tasks, "summarize_tasks", handler, raising=False)
    with client_with(settings, host="127.0.0.1") as client:
        client.base_url = "http://127.0.0.1:8000"
        yield client


def test_the_new_operation_answers_over_rest_and_as_a_tool(
    project: TestClient, user: str, tasks_url: str, auth: dict[str, str]
) -> None:
    for title, priority in (("a", "high"), ("b", "high"), ("c", "low")):
        project.post(tasks_url, json={"title": title, "priority": priority}, headers=auth)
    done = project.post(tasks_url, json={"title": "d", "completed": True}, headers=auth)
    assert done.status_code == 201

    summary = project.get(f"/api/{user}/summary", headers=auth)
    assert summary.status_code == 200, summary.text
    assert summary.json() == {
        "open": 3, "done": 1, "open_by_priority": {"low": 1, "medium": 0, "high": 2},
    }  # fmt: skip
    foreign = project.get(f"/api/{user}/summary", headers=bearer("someone-else"))
    assert foreign.status_code == 403
    unchanged = project.get(f"/api/{user}/summary", headers={**auth, "If-None-Match": "*"})
    assert unchanged.status_code == 304

    tool = tools(extended())["summarize_tasks"]
    assert "user_id" not in tool.input_schema.get("properties", {})
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}}  # fmt: skip
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "summarize_tasks", "arguments": {}, "_meta": meta}}  # fmt: skip
    answer = project.post("/mcp", json=call, headers={
        **auth, "Accept": "application/json, text/event-stream", "Content-Type": "application/json",
        "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call",
        "Mcp-Name": "summarize_tasks",
    })  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"]["structuredContent"]["data"] == summary.json()
