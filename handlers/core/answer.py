"""What an operation returns, whichever door called it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Answer:
    """An operation's answer: its body (None for none), a status as HTTP numbers them, and the
    fields that go with it (ETag, Location, Idempotent-Replayed, Preference-Applied, ...)."""

    body: Any
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    # The ETag of each task in a page, by id: HTTP sends a page without them (a client asks for
    # a task's own ETag with GET); MCP shows each beside its task, for if_match.
    etags: Mapping[str, str] = field(default_factory=dict)
