"""JSON as every answer is written: orjson (datetimes as RFC 3339, UUIDs as text), a newline at
the end. `Orjson` is also the module-like object Connexion's Jsonifier hook takes
(handlers/root.py), so the HTTP door writes the same bytes."""

from __future__ import annotations

import uuid
from typing import Any

import orjson


def _uuid_subclass(value: Any) -> str:
    # orjson encodes uuid.UUID itself but not subclasses, such as the one asyncpg returns.
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class Orjson:
    """dumps and loads, as the json module spells them."""

    @staticmethod
    def dumps(data: Any, **_: Any) -> str:
        return orjson.dumps(data, default=_uuid_subclass).decode()

    @staticmethod
    def loads(data: str | bytes) -> Any:
        return orjson.loads(data)


def encode(data: Any) -> bytes:
    """data as an answer's body: JSON and a newline, in UTF-8."""
    return orjson.dumps(data, default=_uuid_subclass) + b"\n"


def dumps(data: Any) -> str:
    """data as an answer's body: JSON and a newline."""
    return encode(data).decode()
