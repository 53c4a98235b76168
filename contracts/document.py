"""Reading an OpenAPI 3.0 document: its operations, and its local $refs resolved."""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CONTRACT = Path(__file__).resolve().parent / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

Document = dict[str, Any]


def load(path: Path = CONTRACT) -> Document:
    """The document at path, a copy of its own for the caller to change. Parsed once per
    version of the file (about 80 ms of YAML), however many parts of a process read it."""
    stat = path.stat()
    return copy.deepcopy(_parsed(path, stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=8)
def _parsed(path: Path, _mtime_ns: int, _size: int) -> Document:
    return parse(path.read_text(encoding="utf-8"))


def parse(text: str) -> Document:
    document = yaml.safe_load(text)
    if not isinstance(document, dict):
        raise ValueError("an OpenAPI document must be a mapping")
    return document


@dataclass(frozen=True)
class Operation:
    path: str
    method: str
    spec: dict[str, Any]
    parameters: list[dict[str, Any]]  # path-level and operation-level, refs resolved

    @property
    def label(self) -> str:
        return f"{self.method.upper()} {self.path}"

    @property
    def pointer(self) -> str:
        escaped = self.path.replace("~", "~0").replace("/", "~1")
        return f"/paths/{escaped}/{self.method}"


def operations(document: Document) -> Iterator[Operation]:
    for path, item in (document.get("paths") or {}).items():
        shared = [resolve(document, p) for p in item.get("parameters", [])]
        for method in METHODS:
            if method in item:
                spec = item[method]
                own = [resolve(document, p) for p in spec.get("parameters", [])]
                names = {(p.get("name"), p.get("in")) for p in own}
                merged = [p for p in shared if (p.get("name"), p.get("in")) not in names] + own
                yield Operation(path, method, spec, merged)


def resolve(document: Document, node: Any) -> Any:
    """node with a local $ref followed (repeatedly); other nodes as they are."""
    seen: set[str] = set()
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        ref = node["$ref"]
        if not ref.startswith("#/") or ref in seen:
            raise ValueError(f"unresolvable $ref {ref!r}")
        seen.add(ref)
        target: Any = document
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node
