"""The compiled checks that let most requests skip the jsonschema validator
(handlers/core/validation.py: compiled) are never more lenient than it: whatever a check passes,
the validator passes too, with the same defaults filled in. Checked on the contract's own request
schemas (as Connexion resolves them), with values drawn to land on both sides of every keyword."""

from __future__ import annotations

import copy
from typing import Any

from connexion.json_schema import Draft4RequestValidator
from connexion.spec import Specification
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.document import CONTRACT, load
from handlers.core.validation import FORMAT_CHECKER, compiled, with_defaults
from handlers.mcp.tools import tools

TOOLS = list(tools(load()).values())

SPEC = Specification.load(CONTRACT)
BODIES = [
    (media["schema"], media.get("example"))
    for item in SPEC["paths"].values()
    for operation in item.values()
    if isinstance(operation, dict) and "requestBody" in operation
    for media in operation["requestBody"]["content"].values()
]
PARAMETERS = [
    parameter["schema"]
    for item in SPEC["paths"].values()
    for operation in [item, *item.values()]
    if isinstance(operation, dict)
    for parameter in operation.get("parameters", [])
    if "schema" in parameter
]
_Body = with_defaults(Draft4RequestValidator)

# Strings near every edge the contract's schemas draw: empty, blank, control and separator
# characters that Python counts as whitespace, trailing newlines, dates right and wrong, enums,
# entity tags, lengths at and past the limits.
EDGES = ["", " ", "\x1c", "\u2003", "a\n", "\n", "x", "x" * 200, "x" * 201, "x" * 1025, "low",
         "medium", "high", "LOW", '"3"', '""', "*", "2026-12-01T09:00:00Z", "2026-12-01T09:00:00",
         "2026-02-30T09:00:00Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59+14:00", "due_date",
         "0", "-1", "1", "100", "101", "true", "false", "title", "created_at", "id",
         "8e03978e-40d5-43e8-bc93-6894a57f9324",
         "8E03978E-40D5-43E8-BC93-6894A57F9324"]  # fmt: skip
TEXT = st.sampled_from(EDGES) | st.text(max_size=30)
SCALARS = st.none() | st.booleans() | st.integers(-3, 300) | st.floats(allow_nan=False) | TEXT
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)  # fmt: skip


def objects(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Objects with some of schema's properties (and maybe others), or any JSON at all."""
    names = list(schema.get("properties", {}))
    fields = st.dictionaries(st.sampled_from([*names, "extra"]), SCALARS, max_size=len(names) + 1)
    return fields | JSON


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_a_body_the_compiled_check_passes_is_valid_with_the_same_defaults(data: Any) -> None:
    for schema, _ in BODIES:
        check = compiled(schema)
        assert check is not None
        value = data.draw(objects(schema))
        checked, validated = copy.deepcopy(value), copy.deepcopy(value)
        if check(checked):
            errors = list(_Body(schema, format_checker=FORMAT_CHECKER).iter_errors(validated))
            assert errors == [], (value, errors)
            assert checked == validated


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_a_parameter_the_compiled_check_passes_is_valid(data: Any) -> None:
    for schema in PARAMETERS:
        check = compiled(schema)
        assert check is not None
        value = data.draw(SCALARS)
        if check(copy.deepcopy(value)):
            validator = Draft4RequestValidator(schema, format_checker=FORMAT_CHECKER)
            assert list(validator.iter_errors(value)) == [], (schema, value)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_tool_arguments_the_compiled_check_passes_are_valid_with_the_same_defaults(
    data: Any,
) -> None:
    """The MCP door's arguments: each tool's published input schema (JSON Schema 2020-12, with
    its path, query, header and body fields side by side)."""
    for tool in TOOLS:
        assert tool.check is not None, tool.name
        value = data.draw(objects(tool.input_schema))
        checked, validated = copy.deepcopy(value), copy.deepcopy(value)
        if tool.check(checked):
            errors = list(tool.validator.iter_errors(validated))
            assert errors == [], (tool.name, value, errors)
            assert checked == validated


def test_the_contracts_examples_pass_the_compiled_checks() -> None:
    """Valid requests take the fast path (else they would all pay for the slow one)."""
    examples = [(schema, example) for schema, example in BODIES if example is not None]
    assert len(examples) == 4
    for schema, example in examples:
        check = compiled(schema)
        assert check is not None
        assert check(copy.deepcopy(example)), example


def test_what_the_compiler_cannot_read_is_left_to_the_validator() -> None:
    assert compiled({"$ref": "#/components/schemas/Task"}) is None
