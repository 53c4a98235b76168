"""The live server's limits on request heads, under each HTTP server (SERVER): a huge header or
millions of header lines are 431 without the memory to hold them, and a head that never finishes
is closed after HEADER_TIMEOUT_SECONDS (uvicorn, through handlers/http/protocol.py, answers those
with a problem document and 408; Granian answers 431 with no body and closes a slow head
silently)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from handlers.http.edge import MAX_HEAD_BYTES
from handlers.services.security import mint_token
from tests.helpers import TEST_SECRET
from tests.live import TASKS_API, LiveServer, environment, free_port

HEAD_TIMEOUT = 1.0


@pytest.fixture(scope="module", params=["uvicorn", "granian"])
def server(
    request: pytest.FixtureRequest, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    env = environment(
        APP_ENV="production", DATABASE_URL=database_url, JWT_SECRET=TEST_SECRET,
        DATA_DIR=str(tmp_path_factory.mktemp("limits")), PORT=str(free_port()),
        HEADER_TIMEOUT_SECONDS=str(HEAD_TIMEOUT), ACCESS_LOG="false", SERVER=request.param,
    )  # fmt: skip
    live = LiveServer([str(TASKS_API), "serve"], env, start_timeout=60)
    yield live
    live.stop()


def uvicorn(server: LiveServer) -> bool:
    return server.env["SERVER"] == "uvicorn"


def connect(server: LiveServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=30)


def send_head_in_pieces(server: LiveServer, pieces: Iterator[bytes]) -> bytes:
    """Send a request head piece by piece until the server stops reading; its answer."""
    with connect(server) as sock:
        try:
            for piece in pieces:
                sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while we were still sending
        return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def rss(server: LiveServer) -> int:
    """Of the server and its workers (Granian serves from a child process)."""
    process = psutil.Process(server.process.pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])


def test_one_huge_header_is_431_without_buffering_it(server: LiveServer) -> None:
    before = rss(server)

    def pieces() -> Iterator[bytes]:
        yield b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "
        for _ in range(20 * 16):  # 20 MB
            yield b"a" * 65536

    answer = send_head_in_pieces(server, pieces())

    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert (b"application/problem+json" in answer) == uvicorn(server)
    assert rss(server) - before < 10 * 2**20  # well under the 20 MB sent


def test_millions_of_header_lines_are_431(server: LiveServer) -> None:
    def pieces() -> Iterator[bytes]:
        yield b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        for _ in range(2000):  # 2,000,000 lines in all
            yield b"X: y\r\n" * 1000

    answer = send_head_in_pieces(server, pieces())
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]


def test_a_head_that_stops_halfway_is_408_and_closed(server: LiveServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Half: ")
        started = time.monotonic()
        answer = read_all(sock)  # returns when the server closes the connection
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 ") if uvicorn(server) else answer == b""
    assert HEAD_TIMEOUT * 0.9 <= waited < HEAD_TIMEOUT + 5


def test_a_connection_that_sends_nothing_is_closed(server: LiveServer) -> None:
    with connect(server) as sock:
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408 ") if uvicorn(server) else answer == b""


def test_ordinary_requests_and_large_bodies_still_pass(server: LiveServer) -> None:
    headers = {"Authorization": f"Bearer {mint_token(TEST_SECRET, 'limits-user')}"}
    with httpx.Client(base_url=server.url, headers=headers) as http:
        for _ in range(3):  # several requests on one kept-alive connection
            assert http.get("/healthz").status_code == 200
        body = {"title": "x", "description": "d" * 3999}
        created = http.post("/api/limits-user/tasks", json=body)
        assert created.status_code == 201, created.text
        near_limit = {**headers, "X-Padding": "p" * (MAX_HEAD_BYTES // 2)}
        assert http.get("/healthz", headers=near_limit).status_code == 200
    assert "Traceback" not in server.log


@pytest.mark.parametrize("size", [70 * 1024, 128 * 1024])
def test_a_head_past_the_limit_is_431_even_when_it_arrives_at_once(
    server: LiveServer, size: int
) -> None:
    """Counted from the head's first byte: a head that arrives in one read was never counted."""
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n"
    with connect(server) as sock:
        sock.sendall(head)
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    # From uvicorn's protocol; under Granian from the app, up to the point (about 112 KiB)
    # past which Granian answers a bare 431 itself.
    if uvicorn(server) or size < 100 * 1024:
        assert_problem_with_an_id(answer, 431)


def assert_problem_with_an_id(answer: bytes, status: int) -> None:
    """The server's own answer is a problem document with a request id, as the app's are."""
    head, _, body = answer.partition(b"\r\n\r\n")
    fields = dict(line.decode().split(": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line)
    assert fields["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["status"] == status
    assert problem["request_id"] == fields["x-request-id"]
    assert len(problem["request_id"]) == 32


def test_a_request_that_is_not_http_is_400(server: LiveServer) -> None:
    """A control character in a header value: uvicorn's protocol answers with a problem
    document; Granian answers in Rust before Python sees anything (docs/operating.md,
    "Choosing the HTTP server")."""
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n")
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    if uvicorn(server):
        assert_problem_with_an_id(answer, 400)
    else:
        assert answer.endswith(b"\r\n\r\n")  # no body at all


def test_a_late_head_is_a_408_problem_with_an_id_under_uvicorn(server: LiveServer) -> None:
    with connect(server) as sock:  # nothing sent within the header timeout
        answer = read_all(sock)
    if uvicorn(server):
        assert_problem_with_an_id(answer, 408)
    else:
        assert answer == b""  # Granian closes without a word
