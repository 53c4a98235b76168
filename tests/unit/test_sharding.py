"""Ready for a distributed PostgreSQL (Citus, sharded by user_id): every key of a sharded table
includes its distribution column, every statement in persistence/ that touches a sharded table
filters by that column, so each one runs on one shard, and no INSERT into one uses what Citus
refuses there: a subquery, or a function in ON CONFLICT DO UPDATE SET (Citus wants it IMMUTABLE;
none we would use is). tests/citus runs every statement on a real cluster (README: "When one
PostgreSQL is not enough")."""

from __future__ import annotations

import importlib
import inspect
import itertools
import pkgutil
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import Column, Delete, Insert, Select, Table, UniqueConstraint, Update
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.elements import BinaryExpression, BindParameter, BooleanClauseList, TextClause
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.selectable import Exists, ScalarSelect, SelectBase

import persistence
from contracts.document import load, resolve
from persistence import tasks as task_sql
from persistence.database import Statement
from persistence.tables import DISTRIBUTED_BY, metadata

SHARDED = {
    table.name: table.info[DISTRIBUTED_BY]
    for table in metadata.tables.values()
    if table.info[DISTRIBUTED_BY] is not None
}


def modules() -> Iterator[ModuleType]:
    for found in pkgutil.iter_modules(persistence.__path__):
        yield importlib.import_module(f"persistence.{found.name}")


def sorts() -> list[str]:
    contract = load()
    listing = contract["paths"]["/api/{user_id}/tasks"]["get"]
    parameters = [resolve(contract, p) for p in listing["parameters"]]
    (sort,) = [p for p in parameters if p["name"] == "sort"]
    return list(resolve(contract, sort["schema"])["enum"])


def built_statements() -> Iterator[Statement]:
    """Every shape the builders of tasks.py compile (their arguments are finite)."""
    for sort, *flags in itertools.product(sorts(), *[[False, True]] * 4):
        yield task_sql._page(sort, *flags)
    writable = task_sql._WRITABLE
    updates = [
        task_sql._update(frozenset(names))
        for size in range(1, len(writable) + 1)
        for names in itertools.combinations(writable, size)
    ]
    changes = [task_sql._SET_COMPLETED, task_sql._TOGGLE_COMPLETED, task_sql._DELETE, *updates]
    for change, guard in itertools.product(changes, [None, "at", "not_at"]):
        yield task_sql._write(change, guard)


def every_statement() -> list[Statement]:
    found = [
        value
        for module in modules()
        for value in vars(module).values()
        if isinstance(value, Statement)
    ]
    return found + list(built_statements())


def test_the_builders_walked_are_every_builder_there_is() -> None:
    """A new function that compiles statements must be walked here too."""
    functions = [
        (module.__name__, name, inspect.unwrap(value))
        for module in modules()
        for name, value in vars(module).items()
        if callable(value) and getattr(value, "__module__", None) == module.__name__
    ]
    builders = {
        f"{module}.{name}"
        for module, name, function in functions
        if inspect.isfunction(function) and "Statement.compile(" in inspect.getsource(function)
    }
    assert builders == {"persistence.tasks._page", "persistence.tasks._write"}


def test_every_table_says_how_it_is_distributed() -> None:
    assert SHARDED == {"tasks": "user_id", "task_counts": "user_id", "idempotency_keys": "user_id"}
    for table in metadata.tables.values():
        assert DISTRIBUTED_BY in table.info, table.name


@pytest.mark.parametrize("name", sorted(SHARDED))
def test_every_key_of_a_sharded_table_includes_its_distribution_column(name: str) -> None:
    table = metadata.tables[name]
    column = SHARDED[name]
    assert column in table.primary_key.columns
    unique: list[Any] = [c for c in table.constraints if isinstance(c, UniqueConstraint)]
    unique += [ix for ix in table.indexes if ix.unique]
    for constraint in unique:
        assert column in [c.name for c in constraint.columns], constraint.name


def _table_of(column: Any) -> Table | None:
    table = getattr(column, "table", None)
    while table is not None and not isinstance(table, Table):
        table = getattr(table, "element", None)  # an alias of a table
    return table


def _pins(condition: Any, table: Table, column: str) -> bool:
    """Whether condition (a WHERE clause) requires table.column = a parameter in every case."""
    if isinstance(condition, BooleanClauseList) and condition.operator is operators.and_:
        return any(_pins(clause, table, column) for clause in condition.clauses)
    if isinstance(condition, BinaryExpression) and condition.operator is operators.eq:
        sides = [condition.left, condition.right]
        return any(
            isinstance(side, Column) and side.name == column and _table_of(side) is table
            for side in sides
        ) and any(isinstance(side, BindParameter) for side in sides)
    return False


def _filtered(statement: Any) -> Iterator[tuple[str, Table, Any]]:
    """(kind, table, WHERE clause) of each SELECT, UPDATE and DELETE in statement, however deep."""
    for node in visitors.iterate(statement):
        if isinstance(node, Select):
            for source in node.get_final_froms():
                if isinstance(source, Table):
                    yield "SELECT from", source, node.whereclause
        elif isinstance(node, Update | Delete) and isinstance(node.table, Table):
            yield f"{type(node).__name__.upper()} of", node.table, node.whereclause


def _violations(statement: Any) -> Iterator[str]:
    for kind, table, where in _filtered(statement):
        column = SHARDED.get(table.name)
        if column is not None and not _pins(where, table, column):
            yield f"{kind} {table.name} without {column} = :param"
    for node in visitors.iterate(statement):
        if isinstance(node, Insert) and node.table.name in SHARDED:
            column = SHARDED[node.table.name]
            given = {c if isinstance(c, str) else c.name for c in node._values or {}}
            if column not in given:
                yield f"INSERT into {node.table.name} without {column}"
            yield from _refused_by_citus(node)


def _refused_by_citus(insert: Insert) -> Iterator[str]:
    """What Citus refuses in an INSERT into a distributed table (a WITH it runs on its own
    first, so the WITH of a statement is not looked at)."""
    name = insert.table.name
    conflict = insert._post_values_clause
    updates = getattr(conflict, "update_values_to_set", {})
    parts = [*(insert._values or {}).values(), *insert._returning, *updates.values()]
    if insert.select is not None:
        parts.append(insert.select)
    for part in parts:
        for node in visitors.iterate(part):
            textual = isinstance(node, TextClause) and "select" in node.text.lower()
            if isinstance(node, SelectBase | ScalarSelect | Exists) or textual:
                yield f"a subquery in an INSERT into {name}"
    for value in updates.values():
        for node in visitors.iterate(value):
            if isinstance(node, FunctionElement):
                yield f"a function ({node.name}) in DO UPDATE SET of an INSERT into {name}"


def test_every_statement_on_a_sharded_table_filters_by_its_distribution_column() -> None:
    statements = every_statement()
    assert len(statements) > 100  # every shape of list and conditional write, at least
    problems = {
        problem: statement.sql
        for statement in statements
        for problem in _violations(statement.source)
    }
    assert problems == {}


def test_the_check_finds_a_statement_that_does_not() -> None:
    from sqlalchemy import bindparam, delete, or_, select, update

    from persistence.tables import tasks

    unfiltered = [
        select(tasks.c.id).where(tasks.c.id == bindparam("task_id")),
        select(tasks.c.id).where(or_(tasks.c.user_id == bindparam("u"), tasks.c.completed)),
        update(tasks).values(completed=True),
        delete(tasks).where(tasks.c.user_id == tasks.c.title),
    ]
    for statement in unfiltered:
        assert list(_violations(statement)), statement


def test_the_check_finds_what_citus_refuses_in_an_insert() -> None:
    """The idempotency statement as it was before Citus was tried: a count of a WITH in
    RETURNING, and now() in DO UPDATE SET."""
    from sqlalchemy import bindparam, func, select, text
    from sqlalchemy.dialects.postgresql import insert

    from persistence.tables import idempotency_keys, tasks

    values: dict[str, Any] = {"user_id": bindparam("user_id"), "key": bindparam("key")}
    upsert = insert(idempotency_keys).values(**values, expires_at=func.now())
    refused = {
        "RETURNING (SELECT ...)": upsert.returning(text("(SELECT count(*) FROM purged) AS n")),
        "now() in DO UPDATE SET": upsert.on_conflict_do_update(
            index_elements=["user_id", "key"], set_={"expires_at": func.now()}
        ),
        "VALUES (SELECT ...)": insert(tasks).values(
            user_id=bindparam("user_id"), title=select(tasks.c.title).limit(1).scalar_subquery()
        ),
    }
    for shape, statement in refused.items():
        assert list(_refused_by_citus(statement)), shape
    allowed = upsert.on_conflict_do_update(
        index_elements=["user_id", "key"], set_={"expires_at": upsert.excluded.expires_at}
    )
    assert list(_refused_by_citus(allowed)) == []
