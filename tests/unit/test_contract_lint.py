"""Each lint rule catches what it is for, and the contract passes them all."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from contracts.document import CONTRACT, Document, load
from contracts.tools.lint import lint, main

CREATE = ("/api/{user_id}/tasks", "post")


def op(document: Document, where: tuple[str, str] = CREATE) -> dict[str, Any]:
    operation: dict[str, Any] = document["paths"][where[0]][where[1]]
    return operation


def test_the_contract_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert lint(load()) == []
    assert main([]) == 0
    assert "passed" in capsys.readouterr().out


def _set_version(d: Document) -> None:
    d["openapi"] = "3.1.0"


def _drop(key: str) -> Callable[[Document], None]:
    return lambda d: op(d).pop(key)


def _bad_operation_id(d: Document) -> None:
    op(d)["operationId"] = "tasks.createTask"


def _no_4xx(d: Document) -> None:
    op(d)["responses"] = {
        code: r for code, r in op(d)["responses"].items() if not code.startswith("4")
    }


def _no_401(d: Document) -> None:
    op(d)["responses"].pop("401")


def _json_error(d: Document) -> None:
    op(d)["responses"]["404"] = {
        "description": "x",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def _anonymous_response(d: Document) -> None:
    op(d)["responses"]["201"]["content"]["application/json"]["schema"] = {
        "type": "object",
        "properties": {"id": {"type": "string"}},
    }


def _anonymous_request(d: Document) -> None:
    op(d)["requestBody"]["content"]["application/json"]["schema"] = {
        "type": "object",
        "properties": {"title": {"type": "string"}},
    }


def _untyped_property(d: Document) -> None:
    d["components"]["schemas"]["Task"]["properties"]["title"] = {"description": "no type"}


def _bad_schema_example(d: Document) -> None:
    d["components"]["schemas"]["Task"]["example"]["priority"] = "urgent"


def _bad_media_example(d: Document) -> None:
    op(d)["requestBody"]["content"]["application/json"]["example"] = {"title": 5}


def _invalid_document(d: Document) -> None:
    d["paths"]["/healthz"]["get"]["responses"] = "none"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_set_version, "must be OpenAPI 3.0.x"),
        (_drop("operationId"), "has no operationId"),
        (_bad_operation_id, "<resource>.<verb>_<noun>"),
        (_drop("summary"), "has no summary"),
        (_drop("tags"), "has no tag"),
        (_no_4xx, "documents no 4xx"),
        (_no_401, "does not document 401"),
        (_json_error, "application/problem+json with the Problem schema"),
        (_anonymous_response, "inline object schema"),
        (_anonymous_request, "inline object schema"),
        (_untyped_property, "property has no type"),
        (_bad_schema_example, "does not match its schema"),
        (_bad_media_example, "does not match its schema"),
        (_invalid_document, "not a valid OpenAPI document"),
    ],
    ids=lambda value: getattr(value, "__name__", None),
)
def test_rule_catches_a_violation(mutate: Callable[[Document], None], expected: str) -> None:
    document = copy.deepcopy(load())
    mutate(document)
    messages = [message for _, message in lint(document)]
    assert any(expected in message for message in messages), messages


def test_violations_fail_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "openapi.yaml"
    broken.write_text(CONTRACT.read_text().replace("      summary: Create a task\n", ""))
    assert main([str(broken)]) == 1
    assert "has no summary" in capsys.readouterr().out
