"""Schemathesis checks of our own, loaded by tests/fuzz/schemathesis.toml."""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis


def _tasks_in(document: Any) -> list[dict[str, Any]]:
    """Every object in a response body that looks like a task."""
    found: list[dict[str, Any]] = []
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "user_id" in item and "id" in item:
                found.append(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


@schemathesis.check
def only_own_tasks(ctx: Any, response: Any, case: Any) -> bool | None:
    """No response to the fuzzing user ever carries another user's task, id or name.

    FUZZ_USER is the user whose token is sent; FUZZ_FOREIGN lists strings (another user's id,
    task ids and titles) that must never appear in a response to FUZZ_USER.
    """
    user = os.environ["FUZZ_USER"]
    foreign = [marker for marker in os.environ.get("FUZZ_FOREIGN", "").split(",") if marker]
    leaked = [marker for marker in foreign if marker in response.text]
    if leaked:
        raise AssertionError(f"A response to {user} contains another user's data: {leaked[:3]}")
    try:
        body = json.loads(response.text) if response.text else None
    except ValueError:
        return None
    owners = {task["user_id"] for task in _tasks_in(body)} - {user}
    if owners:
        raise AssertionError(f"A response to {user} contains tasks of {sorted(owners)}")
    return None


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    """Positive cases carry no cursor: a cursor is opaque and signed, so its schema (a string)
    cannot say which strings are valid, and a generated one is rightly a 400. Negative cases
    keep fuzzing the parameter.
    """
    query = case.query or {}
    meta = getattr(case, "meta", None)
    if "cursor" not in query or meta is None:
        return
    if meta.generation.mode == schemathesis.GenerationMode.POSITIVE:
        del query["cursor"]
