"""`make stubs` writes the handler Connexion will call for each unimplemented operation, answering
501, and running it again changes nothing."""

from __future__ import annotations

import ast
import asyncio
import copy
import importlib.util
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from contracts.document import Document, load
from contracts.tools.stubs import HANDLERS, main, write_stubs
from handlers.core.errors import NotImplementedYet


def extended_contract() -> Document:
    """The contract plus an operation in an existing module and one in a new module."""
    document = copy.deepcopy(load())
    responses = {"default": {"$ref": "#/components/responses/Error"}}
    document["paths"]["/api/{user_id}/tasks/{task_id}/archive"] = {
        "parameters": [
            {"$ref": "#/components/parameters/UserId"},
            {"$ref": "#/components/parameters/TaskId"},
        ],
        "post": {
            "operationId": "tasks.archive_task",
            "parameters": [
                {"name": "reason", "in": "query", "schema": {"type": "string"}},
                {"name": "notify", "in": "query", "schema": {"type": "boolean", "default": False}},
            ],
            "requestBody": {
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Task"}}}
            },
            "responses": responses,
        },
    }
    document["paths"]["/api/{user_id}/labels"] = {
        "get": {
            "operationId": "labels.list_labels",
            "parameters": [
                {"$ref": "#/components/parameters/UserId"},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 20}},
            ],
            "responses": responses,
        }
    }
    return document


@pytest.fixture
def handlers(tmp_path: Path) -> Path:
    copy_of_handlers = tmp_path / "handlers"
    shutil.copytree(HANDLERS, copy_of_handlers, ignore=shutil.ignore_patterns("__pycache__"))
    return copy_of_handlers


def functions(path: Path) -> dict[str, ast.AsyncFunctionDef]:
    tree = ast.parse(path.read_text())
    return {node.name: node for node in tree.body if isinstance(node, ast.AsyncFunctionDef)}


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"stubbed_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def arguments(function: ast.AsyncFunctionDef) -> list[str]:
    args = function.args
    defaults = [None] * (len(args.args) - len(args.defaults)) + list(args.defaults)
    return [
        a.arg + ("" if d is None else f"={ast.unparse(d)}")
        for a, d in zip(args.args, defaults, strict=True)
    ]


def test_stubs_take_the_context_and_the_validated_arguments_and_answer_501(
    handlers: Path,
) -> None:
    changed = write_stubs(extended_contract(), handlers)

    assert sorted(p.name for p in changed) == ["labels.py", "tasks.py"]
    archive = functions(handlers / "tasks.py")["archive_task"]
    assert arguments(archive) == [
        "ctx", "user_id", "task_id", "reason=None", "notify=False", "body=None",
    ]  # fmt: skip
    assert arguments(functions(handlers / "labels.py")["list_labels"]) == [
        "ctx", "user_id", "limit=20",
    ]  # fmt: skip
    stubbed = functions(handlers / "tasks.py")
    for name, original in functions(HANDLERS / "tasks.py").items():
        assert ast.unparse(stubbed[name]) == ast.unparse(original), f"{name} was changed"

    tasks: Any = load_module(handlers / "tasks.py")
    labels: Any = load_module(handlers / "labels.py")
    for stub_call in (
        tasks.archive_task(None, user_id="u", task_id="t"),
        labels.list_labels(None, user_id="u"),
    ):
        with pytest.raises(NotImplementedYet) as raised:
            asyncio.run(stub_call)
        assert raised.value.status == 501


def test_running_again_changes_nothing(handlers: Path) -> None:
    write_stubs(extended_contract(), handlers)
    snapshot = {p.name: p.read_text() for p in handlers.glob("*.py")}

    assert write_stubs(extended_contract(), handlers) == []
    assert {p.name: p.read_text() for p in handlers.glob("*.py")} == snapshot


def test_the_contract_needs_no_stubs(capsys: pytest.CaptureFixture[str]) -> None:
    snapshot = {p.name: p.read_text() for p in HANDLERS.glob("*.py")}
    assert main([]) == 0
    assert "every operation has a handler" in capsys.readouterr().out
    assert {p.name: p.read_text() for p in HANDLERS.glob("*.py")} == snapshot
