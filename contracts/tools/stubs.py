"""Handler stubs for every operationId in the contract that has no handler yet.

    python -m contracts.tools.stubs [contracts/openapi.yaml] [handlers/]

`tasks.archive_task` becomes `async def archive_task(ctx, ...)` in handlers/tasks.py, taking the
call's Context and the arguments the contract validates, and answering 501 until it is
implemented. Existing code is never
changed, so running it again changes nothing.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from contracts.document import CONTRACT, Document, Operation, load, operations, resolve

HANDLERS = CONTRACT.parent.parent / "handlers"
IMPORTS = {
    ("typing", "Any"): "from typing import Any",
    ("handlers.core.answer", "Answer"): "from handlers.core.answer import Answer",
    ("handlers.core.context", "Context"): "from handlers.core.context import Context",
    (
        "handlers.core.errors",
        "NotImplementedYet",
    ): "from handlers.core.errors import NotImplementedYet",
}
PYTHON_TYPES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool",
                "array": "list[Any]", "object": "dict[str, Any]"}  # fmt: skip


def python_name(name: str) -> str:
    """The argument name Connexion uses for a parameter (its `sanitized`)."""
    return re.sub(r"^[^a-zA-Z_]+", "", re.sub(r"[^0-9a-zA-Z_]", "", name))


def signature(document: Document, operation: Operation) -> str:
    """`name(ctx, arguments) -> Answer`, required arguments first."""
    required: list[str] = ["ctx: Context"]
    optional: list[str] = []
    for parameter in operation.parameters:
        if parameter.get("in") not in ("path", "query"):
            continue
        schema = resolve(document, parameter.get("schema", {}))
        kind = PYTHON_TYPES.get(schema.get("type", "string"), "Any")
        name = python_name(parameter["name"])
        if parameter.get("required"):
            required.append(f"{name}: {kind}")
        elif "default" in schema:
            optional.append(f"{name}: {kind} = {schema['default']!r}")
        else:
            optional.append(f"{name}: {kind} | None = None")
    body = resolve(document, operation.spec.get("requestBody"))
    if body:
        if body.get("required"):
            required.append("body: dict[str, Any]")
        else:
            optional.append("body: dict[str, Any] | None = None")
    function = operation.spec["operationId"].rsplit(".", 1)[1]
    return f"{function}({', '.join(required + optional)}) -> Answer"


def stub(document: Document, operation: Operation) -> str:
    return (
        f"\n\nasync def {signature(document, operation)}:\n"
        f"    raise NotImplementedYet({operation.spec['operationId']!r})\n"
    )


def write_stubs(document: Document, handlers: Path = HANDLERS) -> list[Path]:
    """Add a stub for each operation without a handler; the files changed."""
    by_module: dict[str, list[Operation]] = defaultdict(list)
    for operation in operations(document):
        module, _ = operation.spec["operationId"].rsplit(".", 1)
        by_module[module].append(operation)

    changed = []
    for module, module_operations in sorted(by_module.items()):
        path = handlers / f"{module}.py"
        source = path.read_text() if path.exists() else f'"""Operations on {module}."""\n'
        defined = {
            node.name
            for node in ast.parse(source).body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        missing = [
            op
            for op in module_operations
            if op.spec["operationId"].rsplit(".", 1)[1] not in defined
        ]
        if not missing:
            continue
        stubs = "".join(stub(document, op) for op in missing)
        path.write_text(_with_imports(source, stubs) + stubs)
        changed.append(path)
    _tidy(changed)
    return changed


def _with_imports(source: str, code: str) -> str:
    """source with the imports code needs added after its last top-level import."""
    tree = ast.parse(source)
    present = {
        (node.module, alias.name)
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    needed = [
        line
        for (module, name), line in IMPORTS.items()
        if (module, name) not in present and re.search(rf"\b{name}\b", code)
    ]
    if not needed:
        return source
    anchors: list[ast.stmt] = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    if not anchors and tree.body and isinstance(tree.body[0], ast.Expr):
        anchors = [tree.body[0]]  # the module docstring
    lines = source.splitlines(keepends=True)
    at = max((n.end_lineno or 0) for n in anchors) if anchors else 0
    return "".join([*lines[:at], "\n", *(line + "\n" for line in needed), *lines[at:]])


def _tidy(paths: list[Path]) -> None:
    """Sort imports and format what was written, when ruff is at hand."""
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not paths or not Path(ruff).exists():
        return
    names = [str(p) for p in paths]
    subprocess.run([ruff, "check", "--quiet", "--select", "I", "--fix", *names], check=False)  # noqa: S603
    subprocess.run([ruff, "format", "--quiet", *names], check=False)  # noqa: S603


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    contract = Path(args[0]) if args else CONTRACT
    handlers = Path(args[1]) if len(args) > 1 else HANDLERS
    changed = write_stubs(load(contract), handlers)
    for path in changed:
        print(f"stubbed missing handlers in {path}")
    if not changed:
        print("every operation has a handler")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
