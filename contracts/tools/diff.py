"""Breaking-change gate: what changed in the contract since a git ref, and what that breaks.

    python -m contracts.tools.diff BASE [contracts/openapi.yaml]

Prints every change, marked BREAKING when an existing client could fail because of it. Exits 1
on a breaking change unless the major number of `info.version` went up.

A request change breaks clients that send what used to be valid; a response change breaks clients
that read what used to be promised (generated clients reject enum values they do not know).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from contracts.document import CONTRACT, Document, Operation, operations, parse, resolve

Direction = Literal["request", "response"]

# Constraints whose growth (upper bounds) or shrinkage (lower bounds) rejects what was valid.
_UPPER = ("maxLength", "maxItems", "maximum", "maxProperties")
_LOWER = ("minLength", "minItems", "minimum", "minProperties")


@dataclass(frozen=True)
class Change:
    breaking: bool
    where: str
    what: str

    def __str__(self) -> str:
        return f"{'BREAKING' if self.breaking else 'change  '}  {self.where}: {self.what}"


class _Differ:
    def __init__(self, old: Document, new: Document) -> None:
        self.old, self.new = old, new
        self.changes: list[Change] = []
        self._seen: set[tuple[int, int, str]] = set()

    def note(self, breaking: bool, where: str, what: str) -> None:
        self.changes.append(Change(breaking, where, what))

    def run(self) -> list[Change]:
        old_ops = {(op.path, op.method): op for op in operations(self.old)}
        new_ops = {(op.path, op.method): op for op in operations(self.new)}
        for key, op in old_ops.items():
            if key not in new_ops:
                self.note(True, op.label, "operation removed")
        for key, op in new_ops.items():
            if key not in old_ops:
                self.note(False, op.label, "operation added")
            else:
                self.operation(old_ops[key], op)
        return self.changes

    def operation(self, old: Operation, new: Operation) -> None:
        where = new.label
        if not _secured(self.old, old) and _secured(self.new, new):
            self.note(True, where, "now requires authentication")
        self.parameters(old, new, where)
        self.request_body(old, new, where)
        self.responses(old, new, where)

    def parameters(self, old: Operation, new: Operation, where: str) -> None:
        before = {(p["in"], p["name"]): p for p in old.parameters}
        after = {(p["in"], p["name"]): p for p in new.parameters}
        for key, param in before.items():
            label = f"{where} {key[0]} parameter {key[1]}"
            if key not in after:
                self.note(True, label, "removed")
                continue
            if after[key].get("required") and not param.get("required"):
                self.note(True, label, "now required")
            self.schema(param.get("schema", {}), after[key].get("schema", {}), "request", label)
        for key, param in after.items():
            if key not in before:
                required = bool(param.get("required"))
                self.note(required, f"{where} {key[0]} parameter {key[1]}",
                          "added, required" if required else "added, optional")  # fmt: skip

    def request_body(self, old: Operation, new: Operation, where: str) -> None:
        before = resolve(self.old, old.spec.get("requestBody")) or {}
        after = resolve(self.new, new.spec.get("requestBody")) or {}
        label = f"{where} request body"
        if not before and after:
            required = bool(after.get("required"))
            self.note(required, label, "added, required" if required else "added, optional")
            return
        if before and not after:
            self.note(True, label, "removed")
            return
        if after.get("required") and not before.get("required"):
            self.note(True, label, "now required")
        self.content(before.get("content", {}), after.get("content", {}), "request", label)

    def responses(self, old: Operation, new: Operation, where: str) -> None:
        before = old.spec.get("responses", {})
        after = new.spec.get("responses", {})
        for code, response in before.items():
            label = f"{where} response {code}"
            if code not in after:
                self.note(True, label, "status code removed")
                continue
            self.content(
                resolve(self.old, response).get("content", {}),
                resolve(self.new, after[code]).get("content", {}),
                "response",
                label,
            )
        for code in after:
            if code not in before:
                self.note(False, f"{where} response {code}", "status code added")

    def content(
        self, before: dict[str, Any], after: dict[str, Any], way: Direction, where: str
    ) -> None:
        for media, body in before.items():
            if media not in after:
                self.note(True, f"{where} {media}", "media type removed")
            else:
                self.schema(body.get("schema", {}), after[media].get("schema", {}), way, where)
        for media in after:
            if media not in before:
                self.note(False, f"{where} {media}", "media type added")

    def schema(self, old: Any, new: Any, way: Direction, where: str) -> None:
        # Each pair of schemas is compared once per direction (and $ref cycles end). The ids are
        # of the documents' own objects, which live as long as the documents do.
        visit = (id(resolve(self.old, old)), id(resolve(self.new, new)), way)
        if visit in self._seen:
            return
        self._seen.add(visit)
        old, new = _flat(self.old, old), _flat(self.new, new)

        if old.get("type") != new.get("type"):
            self.note(True, where, f"type changed from {old.get('type')} to {new.get('type')}")
            return
        self.nullability(old, new, way, where)
        self.enum(old, new, way, where)
        self.constraints(old, new, way, where)
        self.properties(old, new, way, where)
        if "items" in old or "items" in new:
            self.schema(old.get("items", {}), new.get("items", {}), way, f"{where}[]")

    def nullability(
        self, old: dict[str, Any], new: dict[str, Any], way: Direction, where: str
    ) -> None:
        was, now = bool(old.get("nullable")), bool(new.get("nullable"))
        if was and not now:
            self.note(way == "request", where, "no longer nullable")
        elif now and not was:
            self.note(way == "response", where, "now nullable")

    def enum(self, old: dict[str, Any], new: dict[str, Any], way: Direction, where: str) -> None:
        if "enum" not in old and "enum" not in new:
            return
        if "enum" not in old:
            self.note(way == "request", where, f"now restricted to {new['enum']}")
            return
        before, after = old["enum"], new.get("enum")
        removed = [v for v in before if after is not None and v not in after]
        added = [v for v in (after or []) if v not in before]
        if removed:
            self.note(True, where, f"enum values removed: {removed}")
        if added:
            self.note(way == "response", where, f"enum values added: {added}")

    def constraints(
        self, old: dict[str, Any], new: dict[str, Any], way: Direction, where: str
    ) -> None:
        narrowing = way == "request"
        for key in _UPPER:
            if key in new and (key not in old or new[key] < old[key]):
                self.note(narrowing, where, f"{key} lowered to {new[key]}")
            elif key in old and (key not in new or new[key] > old[key]):
                self.note(not narrowing, where, f"{key} raised to {new.get(key, 'unbounded')}")
        for key in _LOWER:
            if key in new and (key not in old or new[key] > old[key]):
                self.note(narrowing, where, f"{key} raised to {new[key]}")
            elif key in old and (key not in new or new[key] < old[key]):
                self.note(not narrowing, where, f"{key} lowered to {new.get(key, 'unbounded')}")
        for key in ("pattern", "format"):
            if old.get(key) != new.get(key) and key in new:
                self.note(narrowing, where, f"{key} changed to {new[key]!r}")
            elif key in old and key not in new:
                self.note(not narrowing, where, f"{key} {old[key]!r} removed")

    def properties(
        self, old: dict[str, Any], new: dict[str, Any], way: Direction, where: str
    ) -> None:
        before, after = old.get("properties", {}), new.get("properties", {})
        old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
        closed = new.get("additionalProperties") is False
        for name, schema in before.items():
            label = f"{where} /{name}"
            if name not in after:
                # A client reading it fails; a client sending it is refused if the object is closed.
                self.note(way == "response" or closed, label, "field removed")
            else:
                self.schema(schema, after[name], way, label)
        for name in after:
            if name not in before:
                required = way == "request" and name in new_required
                self.note(
                    required, f"{where} /{name}", "field added" + (", required" if required else "")
                )
        if way == "request":
            for name in sorted((new_required - old_required) & set(before)):
                self.note(True, f"{where} /{name}", "now required")
        else:
            for name in sorted((old_required - new_required) & set(after)):
                self.note(True, f"{where} /{name}", "no longer always present")
        if way == "request" and closed and old.get("additionalProperties") is not False:
            self.note(True, where, "no longer accepts unknown fields")


def _flat(document: Document, schema: Any) -> dict[str, Any]:
    """schema with its $ref followed and allOf merged into one set of keywords."""
    schema = resolve(document, schema) or {}
    if "allOf" not in schema:
        return dict(schema)
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for part in schema["allOf"]:
        flat = _flat(document, part)
        merged["properties"] = {**flat.pop("properties", {}), **merged.get("properties", {})}
        merged["required"] = sorted({*flat.pop("required", []), *merged.get("required", [])})
        for key, value in flat.items():
            merged.setdefault(key, value)
    if not merged["properties"]:
        del merged["properties"]
    if not merged["required"]:
        del merged["required"]
    return merged


def _secured(document: Document, op: Operation) -> bool:
    requirements: list[dict[str, Any]] = op.spec.get("security", document.get("security")) or []
    return any(requirements)


def diff(old: Document, new: Document) -> list[Change]:
    """Every change from old to new, breaking or not."""
    return _Differ(old, new).run()


def major(document: Document) -> int:
    version = str(document.get("info", {}).get("version", "0"))
    head = version.split(".", 1)[0].lstrip("vV")
    return int(head) if head.isdigit() else 0


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=False)  # noqa: S603, S607


def _at(ref: str, contract: Path) -> str | None:
    """The contract's text at git ref, or None when it did not exist there."""
    top = _git("-C", str(contract.parent), "rev-parse", "--show-toplevel").stdout.strip()
    relative = contract.resolve().relative_to(Path(top).resolve())
    shown = _git("-C", top, "show", f"{ref}:{relative.as_posix()}")
    return shown.stdout if shown.returncode == 0 else None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m contracts.tools.diff BASE [contract]", file=sys.stderr)
        return 2
    base, contract = args[0], Path(args[1]) if len(args) > 1 else CONTRACT
    if _git("-C", str(contract.parent), "rev-parse", "--verify", "--quiet",
            f"{base}^{{commit}}").returncode != 0:  # fmt: skip
        print(f"contract-diff: {base!r} is no commit, branch or tag of this repository",
              file=sys.stderr)  # fmt: skip
        return 2
    before = _at(base, contract)
    if before is None:
        print(f"{contract.name} did not exist at {base}: nothing to compare")
        return 0
    old, new = parse(before), parse(contract.read_text(encoding="utf-8"))
    changes = diff(old, new)
    for change in changes:
        print(change)
    breaking = [c for c in changes if c.breaking]
    bumped = major(new) > major(old)
    print(
        f"{len(changes)} change(s) since {base}, {len(breaking)} breaking"
        + ("; the major version went up, so they are allowed" if breaking and bumped else "")
    )
    return 1 if breaking and not bumped else 0


if __name__ == "__main__":
    raise SystemExit(main())
