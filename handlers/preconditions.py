"""Conditional requests (RFC 9110 §8.8.3, §13): strong ETags from row versions, If-Match on
writes and If-None-Match on reads. A task's ETag is its `version` in quotes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from handlers.context import request_header
from handlers.problems import PreconditionRequired

# entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE (RFC 9110 §8.8.3)
_TAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e]*)"\s*')
MAX_VERSION_DIGITS = 18  # a bigint, with room to spare


def etag(version: int) -> str:
    return f'"{version}"'


@dataclass(frozen=True)
class Condition:
    """A parsed If-Match or If-None-Match: `*`, or the (weak, opaque) entity tags it lists."""

    any: bool
    tags: tuple[tuple[bool, str], ...] = ()


def _condition(name: str) -> Condition | None:
    """The request's condition header, None when absent. A member that is not an entity tag is
    left out: it can match no ETag of ours, so a write conditional on it is refused (412) and
    a read is answered in full."""
    value = request_header(name)
    if value is None:
        return None
    if value.strip() == "*":
        return Condition(any=True)
    matches = (_TAG.fullmatch(part) for part in value.split(","))
    return Condition(any=False, tags=tuple((m[1] is not None, m[2]) for m in matches if m))


def if_match(required: bool) -> tuple[int, ...] | None:
    """The versions a write may change (If-Match), or None for any (no header, or `*`: a write
    needs the task to exist anyway). Strong comparison: a weak tag matches nothing."""
    condition = _condition("If-Match")
    if condition is None:
        if required:
            raise PreconditionRequired(
                "This server requires If-Match on writes: send the task's ETag."
            )
        return None
    if condition.any:
        return None
    return tuple(
        int(opaque)
        for weak, opaque in condition.tags
        if not weak and opaque.isdigit() and opaque.isascii()
        and len(opaque) <= MAX_VERSION_DIGITS
    )  # fmt: skip


def none_match(tag: str) -> bool:
    """Whether If-None-Match names this ETag (weak comparison) or is `*`."""
    condition = _condition("If-None-Match")
    if condition is None:
        return False
    return condition.any or any(f'"{opaque}"' == tag for _, opaque in condition.tags)
