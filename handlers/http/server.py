"""The HTTP/1.1 server's own limits, which no ASGI middleware can set: how large a request head
(request line and headers) may be, and how long a client may take to send it.

uvicorn's httptools protocol has neither: it buffers a 20 MB header or two million header lines,
and keeps a connection that stops halfway through its headers (or never sends any) open for
ever. This subclass answers 431 past MAX_HEAD_BYTES and 408 when a head has not arrived within
the timeout, then closes the connection, and on shutdown serves what a kept-alive connection
had already sent instead of resetting it. Bodies are limited by the request validator.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024
# On shutdown, how long an idle kept-alive connection may still deliver a request the client
# had already sent: closing at once would reset it unanswered (a POST the client cannot know
# whether to retry). Such a request is served, with `Connection: close`.
SHUTDOWN_GRACE = 0.5


def _problem(status: int, reason: str, detail: str) -> bytes:
    problem = {"type": "about:blank", "title": reason, "status": status, "detail": detail}
    body = json.dumps(problem).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


TOO_LARGE = _problem(
    431,
    "Request Header Fields Too Large",
    f"The request line and headers must be at most {MAX_HEAD_BYTES} bytes.",
)
TOO_SLOW = _problem(408, "Request Timeout", "The request headers did not arrive in time.")


def bounded_protocol(head_timeout: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, with a request head of at most MAX_HEAD_BYTES that must
    arrive within head_timeout seconds of the connection opening or the previous response."""

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        _head_bytes = 0
        _in_head = False
        _head_timer: asyncio.TimerHandle | None = None
        _shutting_down = False

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._expect_head()

        def _expect_head(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            self._head_timer = self.loop.call_later(head_timeout, self._refuse, TOO_SLOW)

        def _refuse(self, answer: bytes) -> None:
            """Answer and close, unless a request is being served (its head arrived)."""
            self._head_timer = None
            waiting = self._in_head or self.cycle is None or self.cycle.response_complete
            if waiting and not self.transport.is_closing():
                self.transport.write(answer)
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._in_head:  # still no end of headers after this chunk
                self._head_bytes += len(data)
                if self._head_bytes > MAX_HEAD_BYTES:
                    self._refuse(TOO_LARGE)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head, self._head_bytes = True, 0
            if self._head_timer is None:
                self._expect_head()

        def on_headers_complete(self) -> None:
            self._in_head = False
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            super().on_headers_complete()
            if self._shutting_down and self.cycle is not None:
                self.cycle.keep_alive = False

        def _idle(self) -> bool:
            finished = self.cycle is None or self.cycle.response_complete
            return finished and not self._in_head

        def shutdown(self) -> None:
            self._shutting_down = True
            if self._idle():
                self.loop.call_later(SHUTDOWN_GRACE, self._close_if_idle)
            elif self.cycle is not None and not self._in_head:
                self.cycle.keep_alive = False

        def _close_if_idle(self) -> None:
            if self._idle() and not self.transport.is_closing():
                self.transport.close()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._expect_head()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            super().connection_lost(exc)

    return BoundedHttpToolsProtocol


def __getattr__(name: str) -> Any:
    """`EnvironmentBoundedProtocol`: bounded_protocol with HEADER_TIMEOUT_SECONDS from the
    environment, for worker processes, which import their protocol by name."""
    if name == "EnvironmentBoundedProtocol":
        from handlers.settings import Settings

        return bounded_protocol(Settings.from_env().header_timeout_seconds)
    raise AttributeError(name)
