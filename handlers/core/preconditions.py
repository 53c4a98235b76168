"""Conditional requests (RFC 9110 §8.8.3, §13.1), on every operation: strong ETags from row
versions. A task's ETag is its `version` in quotes.

- If-Match (strong comparison; a weak tag matches nothing): on a write, the task must be at one
  of the listed versions (else 412, nothing changed); on a read, its ETag must be listed (else
  412). `*` asks only that the task exist.
- If-None-Match (weak comparison): on a read, a listed ETag (or `*`) is 304; on a write, the task
  must be at none of the listed versions, and `*` (create only if absent) fails for every task
  that exists (412; a task that does not exist is 404, as it would be without the header).
- The task list, the create (whose target is the list) and the probes have no entity tag:
  If-Match with tags never matches (412), `*` does; If-None-Match `*` never holds (304 on GET,
  412 otherwise).

If-Modified-Since and If-Unmodified-Since are ignored, as RFC 9110 asks of a resource that sends
no Last-Modified; If-Range needs Range, which no operation serves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from handlers.core.context import Context
from handlers.core.errors import PreconditionFailed, PreconditionRequired
from persistence.tasks import Versions

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

    def versions(self, *, strong: bool) -> tuple[int, ...]:
        """The row versions the listed tags name (weak ones left out under strong comparison;
        a tag no version of ours could have names none)."""
        return tuple(
            int(opaque) for weak, opaque in self.tags
            if not (strong and weak) and opaque.isdigit() and opaque.isascii()
            and len(opaque) <= MAX_VERSION_DIGITS
        )  # fmt: skip


def condition(value: str | None) -> Condition | None:
    """A condition (If-Match or If-None-Match), None when absent. A member that is not an
    entity tag is left out: it can match no ETag of ours."""
    if value is None:
        return None
    if value.strip() == "*":
        return Condition(any=True)
    matches = (_TAG.fullmatch(part) for part in value.split(","))
    return Condition(any=False, tags=tuple((m[1] is not None, m[2]) for m in matches if m))


def for_write(ctx: Context) -> Versions:
    """The versions a write may change, from If-Match and If-None-Match."""
    match, none_match = condition(ctx.if_match), condition(ctx.if_none_match)
    if match is None and ctx.services.require_if_match:
        raise PreconditionRequired("This server requires If-Match on writes: send the task's ETag.")
    at = None if match is None or match.any else match.versions(strong=True)
    if none_match is None:
        return Versions(at=at)
    if none_match.any:  # "only if it does not exist": never so for a task that does
        return Versions(at=())
    return Versions(at=at, not_at=none_match.versions(strong=False))


def check_read(ctx: Context, tag: str) -> bool:
    """For a read of a representation whose ETag is tag: PreconditionFailed when If-Match does
    not list it; whether If-None-Match does (the answer is then 304)."""
    match = condition(ctx.if_match)
    if (
        match is not None
        and not match.any
        and tag.strip('"') not in {opaque for weak, opaque in match.tags if not weak}
    ):
        raise PreconditionFailed("The task's ETag is not one If-Match lists.")
    none_match = condition(ctx.if_none_match)
    if none_match is None:
        return False
    return none_match.any or any(f'"{opaque}"' == tag for _, opaque in none_match.tags)


def check_untagged(ctx: Context, *, read: bool) -> bool:
    """For an operation whose target has no entity tag (the task list, the create, the probes):
    PreconditionFailed when If-Match lists tags (none can match) or when If-None-Match is `*`
    on a write; whether the answer is 304 instead (If-None-Match `*` on a read). A read checks
    this once it has its answer, so a failure such as /readyz's 503 wins (RFC 9110 §13.2.1); a
    write, before it changes anything."""
    match, none_match = condition(ctx.if_match), condition(ctx.if_none_match)
    if (match is not None and not match.any) or (none_match is not None and none_match.any
                                                 and not read):  # fmt: skip
        raise PreconditionFailed(
            "This resource has no entity tag, so the request's If-Match or If-None-Match fails."
        )
    return none_match is not None and none_match.any
