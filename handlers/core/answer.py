"""What an operation returns, whichever door called it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Answer:
    """An operation's answer: its body (None for none), a status as HTTP numbers them, and the
    fields that go with it (ETag, Location, Idempotent-Replayed, Preference-Applied, ...)."""

    body: Any
    status: int
    headers: dict[str, str] = field(default_factory=dict)
