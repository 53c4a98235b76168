"""Words for agents: what a tool call did, and on failure what to do next.

Success messages are written per tool, the way a person would say it; a tool the contract gains
later gets a plain one until it has its own. Failures use the problem document's own detail.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from handlers.core.errors import type_name
from handlers.mcp.tools import Tool

Task = Mapping[str, Any]


def _title(task: Task) -> str:
    return f"'{task.get('title', '')}'"


def _due(task: Task) -> str | None:
    due = task.get("due_date")
    if not isinstance(due, str):
        return None
    instant = datetime.fromisoformat(due)
    day = f"{instant.day} {instant:%b %Y}"
    return (
        f"due {day}"
        if (instant.hour, instant.minute) == (0, 0)
        else f"due {day} {instant:%H:%M} UTC"
    )


def _details(task: Task) -> str:
    parts = [f"{task.get('priority')} priority"]
    if due := _due(task):
        parts.append(due)
    return f"({', '.join(parts)})"


def _added(_arguments: Mapping[str, Any], task: Task) -> str:
    return f"Added {_title(task)} {_details(task)}."


def _got(_arguments: Mapping[str, Any], task: Task) -> str:
    state = "done" if task.get("completed") else "not done yet"
    return f"{_title(task)} is {state} {_details(task)}."


def _listed(_arguments: Mapping[str, Any], page: Task) -> str:
    items, total = page.get("items", []), page.get("total", 0)
    if not total:
        return "No tasks match."
    if not items:
        return f"{total} tasks match, none on this page (offset {page.get('offset')})."
    first = page.get("offset", 0) + 1
    shown = (
        f"{total} task{'s' if total != 1 else ''} match; showing {first}-{first + len(items) - 1}"
    )
    more = ": pass next_cursor as cursor for the next page" if page.get("next_cursor") else ""
    return f"{shown}{more}."


def _updated(arguments: Mapping[str, Any], task: Task) -> str:
    fields = [name for name in arguments if name != "task_id"]
    return f"Updated {_title(task)}: {', '.join(fields)} changed."


def _completed(_arguments: Mapping[str, Any], task: Task) -> str:
    return f"Marked {_title(task)} as {'done' if task.get('completed') else 'not done'}."


def _deleted(arguments: Mapping[str, Any], _body: Any) -> str:
    return f"Deleted task {arguments.get('task_id')}."


SUCCESS: dict[str, Callable[[Mapping[str, Any], Any], str]] = {
    "add_task": _added,
    "get_task": _got,
    "list_tasks": _listed,
    "update_task": _updated,
    "complete_task": _completed,
    "delete_task": _deleted,
}


def success(tool: Tool, arguments: Mapping[str, Any], body: Any) -> str:
    say = SUCCESS.get(tool.name)
    return say(arguments, body) if say else f"{tool.name} succeeded."


def _argument(error: Mapping[str, Any]) -> str:
    """The tool argument an error names: a body field's pointer, or a header's name as the
    argument it is (Idempotency-Key is idempotency_key)."""
    pointer = error.get("pointer")
    if isinstance(pointer, str) and pointer:
        return pointer.removeprefix("/").replace("/", ".")
    name = str(error.get("name") or error.get("location"))
    return name.lower().replace("-", "_") if error.get("location") == "header" else name


def _errors(problem: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [e for e in problem.get("errors") or [] if isinstance(e, Mapping) and "detail" in e]


def failure(tool: Tool, status: int, problem: Mapping[str, Any]) -> str:
    """The problem's detail, with each argument it names."""
    detail = str(problem.get("detail") or f"The operation failed with HTTP status {status}")
    for header, argument in tool.header_arguments:
        detail = detail.replace(header.replace("_", "-").title(), argument)
    fields = [
        f"{_argument(error)}: {error['detail']}"
        for error in _errors(problem)
        if error["detail"] not in detail
    ]
    return f"{detail} {'; '.join(fields)}." if fields else detail


def suggestion(
    tool: Tool, status: int, headers: Mapping[str, str], problem: Mapping[str, Any]
) -> str:
    """What to do next, by the problem's type (the contract's), not its status alone."""
    kind = type_name(str(problem.get("type", "")))
    missing = [
        _argument(e) for e in _errors(problem)
        if e.get("location") == "header" and "required" in str(e["detail"])
    ]  # fmt: skip
    if "idempotency_key" in missing:
        return (
            f"Call {tool.name} again with idempotency_key: a new unique text (a UUID) for this "
            "change, the same one when you retry it."
        )
    if kind == "precondition-required":
        return (
            f"Call get_task for the task's etag, then call {tool.name} again with it as if_match."
        )
    if kind == "not-found" and "task_id" in tool.path_parameters:
        return "Call list_tasks to find the task's id, then try again with it."
    if kind == "idempotency-key-reused":
        return f"Call {tool.name} again with a new idempotency_key: this one was used for another."
    if kind in ("invalid-request", "content-too-large", "request-header-fields-too-large"):
        return "Fix the arguments the message names (see the tool's input schema) and call again."
    if kind in ("unauthorized", "forbidden"):
        return "The user's sign-in is missing, expired or not valid: ask them to sign in again."
    if kind == "precondition-failed":
        return (
            "The task changed meanwhile: call get_task to see it now (and its etag), then decide "
            "again."
        )
    if kind in ("request-in-progress", "too-many-requests", "service-unavailable"):
        wait = headers.get("retry-after", "a few")
        return f"Wait {wait} seconds, then call {tool.name} again with the same arguments."
    return "Something went wrong on the server; try again later, or tell the user."
