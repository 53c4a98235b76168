"""The HTTP/1.1 server's own limits, which no ASGI middleware can set: how large a request head
(request line and headers) may be, and how long a client may take to send it.

uvicorn's httptools protocol has neither: it buffers a 20 MB header or two million header lines,
and keeps a connection that stops halfway through its headers (or never sends any) open for
ever. This subclass answers 431 past MAX_HEAD_BYTES, counted from the head's first byte whether
it arrives in one piece or in many, and 408 when a head has not arrived within the timeout, then
closes the connection; on shutdown it serves what a kept-alive connection had already sent
instead of resetting it. These answers, and uvicorn's own 400 for a request that is not HTTP,
are problem documents with a request id, as every answer of the app is. Bodies are limited by
the request validator.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from handlers.core.problems import problem_body, problem_json
from handlers.http.edge import MAX_HEAD_BYTES

# On shutdown, how long an idle kept-alive connection may still deliver a request the client
# had already sent: closing at once would reset it unanswered (a POST the client cannot know
# whether to retry). Such a request is served, with `Connection: close`.
SHUTDOWN_GRACE = 0.5


def _problem(status: int, detail: str) -> bytes:
    """A whole response: the problem document the app would send, with a request id of its own
    (no request reached the app to be given one), and the connection closed after it."""
    rid = uuid.uuid4().hex
    body = problem_json({**problem_body(status, detail), "request_id": rid}).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        f"content-type: application/problem+json\r\ncontent-length: {len(body)}\r\n"
        f"x-request-id: {rid}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def too_large() -> bytes:
    return _problem(431, f"The request line and headers must be at most {MAX_HEAD_BYTES} bytes.")


def too_slow() -> bytes:
    return _problem(408, "The request headers did not arrive in time.")


def malformed(detail: str) -> bytes:
    return _problem(400, detail)


def bounded_protocol(head_timeout: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, with a request head of at most MAX_HEAD_BYTES that must
    arrive within head_timeout seconds of the connection opening or the previous response."""

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        # Bytes of the current request's head: its request line and the header fields parsed so
        # far (from the parser, exact), or every byte received since it began while it is still
        # incomplete (a field not yet ended), whichever is more.
        _head_bytes = 0
        _head_received = 0
        _in_head = False
        _too_large = False
        _head_timer: asyncio.TimerHandle | None = None
        _shutting_down = False

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._expect_head()

        def _expect_head(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            self._head_timer = self.loop.call_later(head_timeout, self._refuse, too_slow)

        def _refuse(self, answer: Callable[[], bytes]) -> None:
            """Answer and close, unless a request is being served (its head arrived)."""
            self._head_timer = None
            waiting = self._in_head or self.cycle is None or self.cycle.response_complete
            if waiting and not self.transport.is_closing():
                self.transport.write(answer())
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            began_before = self._in_head
            super().data_received(data)
            if self._in_head:  # still no end of headers after this chunk
                self._head_received = (self._head_received if began_before else 0) + len(data)
                if self._head_received > MAX_HEAD_BYTES:
                    self._too_large = True
            if self._too_large:
                self._refuse(too_large)

        def _counted(self, size: int) -> None:
            self._head_bytes += size
            if self._head_bytes > MAX_HEAD_BYTES:
                self._too_large = True

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head, self._head_bytes, self._head_received = True, 0, 0
            if self._head_timer is None:
                self._expect_head()

        def on_url(self, url: bytes) -> None:
            self._counted(len(url) + 16)  # the method, the version, spaces and CRLF
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._counted(len(name) + len(value) + 4)  # ": " and CRLF
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._in_head = False
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            if self._too_large:  # the whole head came at once: it never reaches the app
                return
            super().on_headers_complete()
            if self._shutting_down and self.cycle is not None:
                self.cycle.keep_alive = False

        def on_body(self, body: bytes) -> None:
            if not self._too_large:
                super().on_body(body)

        def on_message_complete(self) -> None:
            if not self._too_large:
                super().on_message_complete()

        def send_400_response(self, msg: str) -> None:
            """uvicorn's answer to a request it cannot parse (a control character in a header,
            a broken request line), as the problem document every other answer is."""
            if not self.transport.is_closing():
                self.transport.write(malformed(f"The request is not valid HTTP/1.1: {msg}"))
                self.transport.close()

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
            if self._too_large:  # a pipelined head too large, refused once its turn came
                self._refuse(too_large)
            elif not self.transport.is_closing():
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
        from handlers.services.settings import Settings

        return bounded_protocol(Settings.from_env().header_timeout_seconds)
    raise AttributeError(name)
