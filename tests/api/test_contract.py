"""The contract is fully implemented, and is what the server serves. (Its rules are checked by
contracts/tools/lint.py, tested in tests/unit/test_contract_lint.py.)"""

from __future__ import annotations

import importlib
import inspect

from starlette.testclient import TestClient

from contracts.document import load, operations, parse
from handlers.services.settings import Settings
from tests.helpers import bearer, client_with


def operation_ids() -> set[str]:
    return {op.spec["operationId"] for op in operations(load())}


def test_every_operation_id_resolves_to_an_async_handler() -> None:
    for operation_id in operation_ids():
        module_name, function_name = operation_id.rsplit(".", 1)
        module = importlib.import_module(f"handlers.{module_name}")
        function = getattr(module, function_name, None)
        assert function is not None, f"{operation_id} has no handler (run `make stubs`)"
        assert inspect.iscoroutinefunction(function), operation_id


def test_every_public_handler_has_an_operation() -> None:
    ids = operation_ids()
    for module_name in {operation_id.split(".")[0] for operation_id in ids}:
        module = importlib.import_module(f"handlers.{module_name}")
        public = {
            f"{module_name}.{name}"
            for name, member in vars(module).items()
            if inspect.iscoroutinefunction(member) and not name.startswith("_")
        }
        assert public <= ids, f"handlers without an operation: {public - ids}"


def test_request_schemas_cannot_set_server_fields() -> None:
    schemas = load()["components"]["schemas"]
    for name in ("TaskCreate", "TaskReplace", "TaskCompletion"):
        assert schemas[name]["additionalProperties"] is False
        assert not {"id", "user_id", "created_at", "updated_at"} & set(schemas[name]["properties"])


def test_served_contract_is_the_file_with_its_refs(client: TestClient) -> None:
    """Generated clients need the named schemas, not inlined copies."""
    served = client.get("/openapi.json")
    assert served.status_code == 200
    expected = load()
    assert served.json() == expected
    as_yaml = client.get("/openapi.yaml")
    assert as_yaml.status_code == 200
    assert parse(as_yaml.text) == expected
    # Twice: Connexion mutates resolved schemas as it validates (spec-first/connexion#2029).
    # With a token, so the request reaches validation (the step that mutates them).
    created = client.post("/api/x/tasks", json={"title": "x"}, headers=bearer("x"))
    assert created.status_code == 201
    assert client.get("/openapi.json").json()["components"] == expected["components"]


def test_interactive_docs_are_served(client: TestClient) -> None:
    response = client.get("/ui/")
    assert response.status_code == 200
    assert "swagger" in response.text.lower()


def test_under_a_root_path_the_served_contract_names_it(settings: Settings) -> None:
    with client_with(settings, root_path="/tasks-api") as proxied:
        for path in ("/tasks-api/openapi.json", "/openapi.json"):
            served = proxied.get(path).json()
            assert served["servers"] == [{"url": "/tasks-api"}]
            assert served["paths"] == load()["paths"]
        assert "url: /tasks-api" in proxied.get("/tasks-api/openapi.yaml").text
        assert proxied.get("/tasks-api/ui/", headers={"Accept": "text/html"}).status_code == 200
