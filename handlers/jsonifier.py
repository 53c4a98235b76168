"""Responses encoded with orjson, through Connexion's own Jsonifier hook."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from connexion.jsonifier import Jsonifier


def _uuid_subclass(value: Any) -> str:
    # orjson encodes uuid.UUID itself but not subclasses, such as the one asyncpg returns.
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class _Orjson:
    """The module-like object Jsonifier expects: orjson, which encodes datetimes as RFC 3339 and
    UUIDs as text itself."""

    @staticmethod
    def dumps(data: Any, **_: Any) -> str:
        return orjson.dumps(data, default=_uuid_subclass).decode()

    @staticmethod
    def loads(data: str | bytes) -> Any:
        return orjson.loads(data)


JSONIFIER = Jsonifier(_Orjson)
