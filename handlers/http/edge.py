"""The first check every request meets: what no route, parser or validator should ever see.

- A path with control characters (`/tasks%0A`) is a 404: Starlette's route patterns end in `$`,
  which also matches before a trailing newline, so such a path would otherwise reach an operation
  by a side door.
- An encoded slash (`%2F`) in a path is a 404: servers decode it before routing, so
  `/api/u%2Ftasks` would be served as `/api/u/tasks`, and no segment of ours holds a `/`.
- A path ending in `/` is a 404, never a redirect: Starlette would redirect to the path without
  it, built from the client's own Host header, before authentication.
- A header that must appear once (Authorization, Content-Type, Idempotency-Key, ...) appearing
  twice is a 400: which one wins would be up to each proxy and parser on the way.
- Content-Type is case-insensitive (RFC 9110 §8.3.1): it is rewritten in lower case, without
  stray spaces, so every later step compares media types as plain strings.
- A request head (request line and headers) over MAX_HEAD_BYTES is a 431. uvicorn's protocol
  (handlers/http/protocol.py) refuses one before it is even parsed; this is the same limit for a
  server that passes larger heads on (Granian does up to about twice that).
- Every answer of the API is JSON (application/json or application/problem+json): a request
  whose Accept admits neither is 406 (RFC 9110 §12.5.1), except for the contract itself and
  its docs, which are served in their own media types.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from handlers.core.errors import BadRequest, NotAcceptable, NotFound, RequestHeadTooLarge
from handlers.services.state import app_path

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENCODED_SLASH = re.compile(rb"%2f", re.IGNORECASE)
MAX_HEAD_BYTES = 64 * 1024
# Connexion serves its docs under this prefix, with the trailing slash of a directory.
DOCS_PREFIX = "/ui/"
# The docs, /openapi.json and /openapi.yaml; /mcp, whose SDK judges Accept by MCP's own rules.
NOT_JSON_PREFIXES = ("/ui", "/openapi.", "/mcp")
JSON_RANGES = frozenset({"*/*", "application/*", "application/json", "application/problem+json"})
# Fields defined as a single value; repeating one is ambiguous, so it is refused.
SINGLETONS = (b"authorization", b"content-type", b"content-length", b"host", b"idempotency-key")


def accepts_json(accept: str) -> bool:
    """Whether an Accept value admits JSON with a q above 0 (an empty one admits anything)."""
    if not accept.strip():
        return True
    for member in accept.split(","):
        media_type, *parameters = member.split(";")
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0
        if quality > 0 and media_type.strip().lower() in JSON_RANGES:
            return True
    return False


def normalize_media_type(value: str) -> str:
    """`Application/JSON ; Charset="UTF-8"` -> `application/json; charset=utf-8`."""
    media_type, *parameters = value.split(";")
    cleaned = [media_type.strip().lower()]
    for parameter in parameters:
        name, _, argument = parameter.partition("=")
        if name.strip():
            argument = argument.strip()
            if name.strip().lower() == "charset":
                argument = argument.strip('"').lower()
            cleaned.append(f"{name.strip().lower()}={argument}")
    return "; ".join(cleaned)


class EdgeMiddleware:
    """Refuses malformed request lines and headers; runs before routing."""

    def __init__(self, next_app: ASGIApp) -> None:
        self.next_app = next_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = self._checked(scope)
        await self.next_app(scope, receive, send)

    @staticmethod
    def _checked(scope: Scope) -> Scope:
        path = app_path(scope)
        raw: bytes = scope.get("raw_path") or b""
        if _CONTROL.search(path) or (path.endswith("/") and path != "/" and
                                     not path.startswith(DOCS_PREFIX)) or (
            b"%" in raw and _ENCODED_SLASH.search(raw)
        ):  # fmt: skip
            raise NotFound("There is no resource at this path.")
        seen: set[bytes] = set()
        rewritten: tuple[int, bytes] | None = None
        accept: list[str] = []
        size = len(raw) + len(scope.get("query_string", b"")) + 16  # the request line
        for index, (name, value) in enumerate(scope["headers"]):
            size += len(name) + len(value) + 4
            if name == b"accept":
                accept.append(value.decode("latin-1"))
            if name not in SINGLETONS:
                continue
            if name in seen:
                field = name.decode("latin-1")
                raise BadRequest(
                    f"The {field} header must appear at most once.",
                    [{"location": "header", "name": field, "detail": "must appear once"}],
                )
            seen.add(name)
            if name == b"content-type":
                normal = normalize_media_type(value.decode("latin-1")).encode("latin-1")
                if normal != value:
                    rewritten = (index, normal)
        if size > MAX_HEAD_BYTES:
            raise RequestHeadTooLarge(
                f"The request line and headers must be at most {MAX_HEAD_BYTES} bytes."
            )
        if accept and not path.startswith(NOT_JSON_PREFIXES) and not accepts_json(",".join(accept)):
            raise NotAcceptable("This API answers in JSON only (application/json).")
        if rewritten is None:
            return scope
        headers = list(scope["headers"])
        headers[rewritten[0]] = (b"content-type", rewritten[1])
        return {**scope, "headers": headers}
