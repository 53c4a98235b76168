"""Dependencies point one way: the operations (handlers/tasks.py, handlers/health.py), what they
share (handlers/core/), the process's services (handlers/services/) and persistence/ import no
web framework, no MCP SDK and no door, so any
door can call them and a test can call them with none. Read from every module's imports (ast),
those inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.live import REPO

FRAMEWORKS = ("connexion", "starlette", "mcp", "mcp_types", "uvicorn", "granian")
DOORS = ("handlers.http", "handlers.mcp", "handlers.cli")
CORE = [
    REPO / "handlers" / "tasks.py",
    REPO / "handlers" / "health.py",
    *sorted((REPO / "handlers" / "core").rglob("*.py")),
    *sorted((REPO / "handlers" / "services").rglob("*.py")),
    *sorted((REPO / "persistence").rglob("*.py")),
]


def imported(path: Path) -> set[str]:
    """Every module path imports, at any depth of its code."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def under(name: str, roots: tuple[str, ...]) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.relative_to(REPO).as_posix())
def test_operations_and_what_they_use_know_no_framework_and_no_door(path: Path) -> None:
    assert sorted(n for n in imported(path) if under(n, FRAMEWORKS + DOORS)) == []


def test_the_walk_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text("def f():\n    from connexion.context import scope\n    return scope\n")
    assert under(imported(module).pop(), FRAMEWORKS)


@pytest.mark.parametrize(
    "path",
    [*sorted((REPO / "handlers" / "http").rglob("*.py")),
     *sorted((REPO / "handlers" / "mcp").rglob("*.py")), REPO / "handlers" / "cli.py"],
    ids=lambda p: p.relative_to(REPO).as_posix(),
)  # fmt: skip
def test_no_door_imports_another_they_meet_in_the_composition_root(path: Path) -> None:
    module = ".".join(path.relative_to(REPO).with_suffix("").parts)
    own = next((door for door in DOORS if under(module, (door,))), module)
    others = tuple(door for door in DOORS if door != own)
    assert sorted(n for n in imported(path) if under(n, others)) == []


def test_serving_imports_neither_the_migration_tool_nor_sqlalchemys_engine() -> None:
    """What a server process never uses while serving is not loaded with it: Alembic (about
    8 MB) and SQLAlchemy's engine (about 7 MB; the statements are compiled without one)."""
    import subprocess
    import sys

    probe = (
        "import sys, handlers.cli, handlers.root, handlers.mcp.http;"
        "print(sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('alembic', 'mako') or m.startswith('sqlalchemy.ext.asyncio')))"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert found == "[]"
