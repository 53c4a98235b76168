"""Connexion with less work per request: the handler's decorator chain built once per operation,
and responses encoded with orjson. Both plug into Connexion's own classes; nothing is forked."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from connexion import AsyncApp
from connexion.apps.asynchronous import AsyncApi, AsyncASGIApp, AsyncOperation
from connexion.jsonifier import Jsonifier


class _OnceBuiltOperation(AsyncOperation):  # type: ignore[misc]
    # Connexion 3.3's AsyncOperation.fn is a property that builds a new decorator chain
    # (StarletteDecorator, argument inspection) for every request; the chain has no per-request
    # state, so build it once.
    @functools.cached_property
    def fn(self) -> Callable[..., Any]:
        built: Callable[..., Any] = AsyncOperation.fn.fget(self)
        return built


class _Api(AsyncApi):  # type: ignore[misc]
    def make_operation(self, operation: Any) -> AsyncOperation:
        return _OnceBuiltOperation.from_operation(
            operation, pythonic_params=self.pythonic_params, jsonifier=self.jsonifier
        )


class _ASGIApp(AsyncASGIApp):  # type: ignore[misc]
    api_cls = _Api


class FastAsyncApp(AsyncApp):  # type: ignore[misc]
    """AsyncApp whose operations build their decorator chain once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # AsyncApp makes its ASGI app in __init__; the middleware builds its stack on the first
        # request, so replacing the app here is in time.
        self._middleware_app = _ASGIApp()
        self.middleware.app = self._middleware_app


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
