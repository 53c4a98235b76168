"""Keyset cursors: opaque to clients, signed so that only a cursor this server issued, for this
user and this sort, is ever used, and checked in full before any I/O.

A cursor is `base64url(payload).base64url(mac)`: the payload is the JSON `[sort, value, id]` of
the last task of a page, and the mac an HMAC-SHA256 of the user id and the payload under a key
every worker shares (derived from the settings), so any worker reads any worker's cursors.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from persistence import timestamps
from persistence.tables import task_priority

MAX_LENGTH = 2048
MAC_BYTES = 16
_NOT_OURS = "is not a cursor this API returned for this user"


class InvalidCursor(ValueError):
    """A cursor this server did not make, or made for another user or sort order."""


@dataclass(frozen=True)
class Position:
    """Where a page resumes: after the task with this sort value and id."""

    value: Any
    task_id: uuid.UUID


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _b64decode(text: str) -> bytes:
    data = text.encode("ascii")  # UnicodeEncodeError is a ValueError
    return base64.b64decode(data + b"=" * (-len(data) % 4), altchars=b"-_", validate=True)


class Cursors:
    """Makes and reads the cursors of one deployment (one key)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, user_id: str, payload: bytes) -> bytes:
        message = user_id.encode("utf-8", "surrogatepass") + b"\x00" + payload
        return hmac.new(self._key, message, hashlib.sha256).digest()[:MAC_BYTES]

    def encode(self, user_id: str, sort: str, task: dict[str, Any]) -> str:
        """The cursor that resumes after task in sort order."""
        value = task[sort.removeprefix("-")]
        if isinstance(value, datetime):
            value = value.isoformat()
        payload = json.dumps(
            [sort, value, str(task["id"])], separators=(",", ":"), ensure_ascii=False
        ).encode()
        return f"{_b64encode(payload)}.{_b64encode(self._mac(user_id, payload))}"

    def decode(self, cursor: str, user_id: str, sort: str) -> Position:
        """Where cursor resumes; InvalidCursor unless this server made it for user_id and sort."""
        try:
            if len(cursor) > MAX_LENGTH:
                raise ValueError("too long")
            encoded_payload, encoded_mac = cursor.split(".")
            payload, mac = _b64decode(encoded_payload), _b64decode(encoded_mac)
        except ValueError:
            raise InvalidCursor(_NOT_OURS) from None
        if not hmac.compare_digest(mac, self._mac(user_id, payload)):
            raise InvalidCursor(_NOT_OURS)
        try:
            cursor_sort, value, task_id = json.loads(payload)
        except (ValueError, TypeError):
            raise InvalidCursor(_NOT_OURS) from None  # signed, but not by this version of us
        if cursor_sort != sort:
            raise InvalidCursor(f"was made for sort={cursor_sort!s:.20}; use the same sort")
        try:
            return Position(_checked(sort, value), uuid.UUID(task_id))
        except (ValueError, TypeError, AttributeError):
            raise InvalidCursor(_NOT_OURS) from None


def _checked(sort: str, value: Any) -> Any:
    """The decoded sort value, as the column holds it; ValueError when it cannot be one."""
    column = sort.removeprefix("-")
    if value is None:
        if column != "due_date":
            raise ValueError("only a due date can be missing")
        return None
    if not isinstance(value, str):
        raise TypeError("sort values are text")
    if "\x00" in value:
        raise ValueError("no column holds a NUL character")  # PostgreSQL's text cannot
    if column in ("created_at", "due_date"):
        return timestamps.parse(value)
    if column == "priority" and value not in task_priority.enums:
        raise ValueError("not a priority")
    return value
