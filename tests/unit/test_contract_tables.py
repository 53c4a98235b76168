"""The contract's schemas and the tables agree: every length, enum and nullability the contract
promises is what PostgreSQL stores, so neither can change without the other noticing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Enum, String

from contracts.document import load, resolve
from persistence.tables import idempotency_keys, tasks

CONTRACT = load()


def schema(name: str) -> dict[str, Any]:
    found: dict[str, Any] = CONTRACT["components"]["schemas"][name]
    return found


def flattened(node: dict[str, Any]) -> dict[str, Any]:
    """A property's schema with its $ref and allOf parts merged in."""
    node = resolve(CONTRACT, node)
    merged: dict[str, Any] = {}
    for part in node.get("allOf", []):
        merged.update(flattened(part))
    merged.update({k: v for k, v in node.items() if k != "allOf"})
    return merged


TASK = schema("Task")


@pytest.mark.parametrize("name", sorted(TASK["properties"]))
def test_every_task_property_is_a_column_with_the_same_rules(name: str) -> None:
    prop = flattened(TASK["properties"][name])
    column = tasks.c[name]
    assert column.nullable == bool(prop.get("nullable")), "nullability differs"
    if isinstance(column.type, Enum):
        assert list(column.type.enums) == prop["enum"]
    elif isinstance(column.type, String):
        assert prop["type"] == "string"
        assert column.type.length == prop.get("maxLength"), "length differs"


def test_every_column_but_the_version_is_in_the_task_schema() -> None:
    assert {c.name for c in tasks.c} - set(TASK["properties"]) == {"version"}
    assert set(TASK["required"]) == set(TASK["properties"])


@pytest.mark.parametrize("name", ["TaskCreate", "TaskReplace"])
def test_writable_fields_have_the_columns_defaults(name: str) -> None:
    for field, node in schema(name)["properties"].items():
        prop = flattened(node)
        default = tasks.c[field].server_default
        if "default" not in prop:
            assert field == "title"
        elif prop["default"] is None:
            assert default is None
            assert tasks.c[field].nullable
        else:
            text = str(getattr(default, "arg", "")).lower()
            assert str(prop["default"]).lower() in text, f"{field}: {text}"


def test_the_idempotency_key_column_holds_the_longest_key() -> None:
    parameter = CONTRACT["components"]["parameters"]["IdempotencyKey"]["schema"]
    key, owner = idempotency_keys.c.key.type, idempotency_keys.c.user_id.type
    assert isinstance(key, String)
    assert isinstance(owner, String)
    assert key.length == parameter["maxLength"]
    assert owner.length == schema("UserId")["maxLength"]
