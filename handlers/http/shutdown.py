"""Stopping several uvicorn workers without resetting a request a client has already sent.

A client whose kept-alive connection is closed opens a new one and sends its next request on
it; that request must be answered, or the connection refused, never accepted and then reset.
One uvicorn worker gets this right by its order of work: it stops listening first (new
connections are refused), then lets the connections it has finish, answering what arrives on
an idle one with `Connection: close` (handlers/http/protocol.py).

With `--workers N` the parent process holds the listening socket too (it listened before the
workers started, so connections made meanwhile wait in the backlog). While its copy stays open
after the workers have closed theirs, the kernel goes on accepting connections nobody will
serve, and resets them all when the parent exits: one request per kept-alive client. The parent
closes its copy before it tells the workers to stop.
"""

from __future__ import annotations

from uvicorn.supervisors import Multiprocess


class Supervisor(Multiprocess):
    """uvicorn's supervisor of worker processes, closing the listening socket it shares with
    them before it tells them to stop (`terminate_all` is where uvicorn 0.x does that on
    SIGTERM and SIGINT; tests/faults/test_shutdown.py fails if an upgrade stops calling it)."""

    def terminate_all(self) -> None:
        for sock in self.sockets:
            sock.close()
        super().terminate_all()
