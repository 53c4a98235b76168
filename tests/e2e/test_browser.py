"""A real browser on another origin: Debian's Chromium, headless, opens a page that uses the
openapi-fetch client generated from the contract (tests/client/typescript/src/browser.ts)
against a live server with CORS_ORIGINS set. What the page could read is reported back to the
page's own server. No browser is mocked: Chromium enforces CORS itself."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from handlers.services.security import mint_token
from tests.client.typescript_package import PACKAGE
from tests.live import LiveServer, serve_tasks_api

SECRET = "browser-" + os.urandom(32).hex()
USER = "browser-user"
TIMEOUT = 60
PAGE = b"""<!doctype html>
<script type="importmap">{"imports": {"openapi-fetch": "/vendor/openapi-fetch.mjs"}}</script>
<script type="module" src="/app/browser.js"></script>
"""
FILES = {
    "/app/browser.js": PACKAGE / "build" / "src" / "browser.js",
    "/vendor/openapi-fetch.mjs": PACKAGE / "node_modules" / "openapi-fetch" / "dist" / "index.mjs",
}


def chromium() -> str:
    """Debian's chromium; `make test-packages` (part of `make test`) installs it."""
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("chromium is not installed: run `make test-packages` (part of `make test`)")
    return found


@contextmanager
def page_server() -> Iterator[tuple[str, queue.Queue[dict[str, Any]]]]:
    """The frontend's own origin: the page, its script, and /report, where the page POSTs what
    it saw (put on the queue)."""
    reports: queue.Queue[dict[str, Any]] = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/":
                body, kind = PAGE, "text/html"
            elif path in FILES:
                body, kind = FILES[path].read_bytes(), "text/javascript"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            reports.put(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", reports
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def open_in_chromium(page: str, reports: queue.Queue[dict[str, Any]], profile: Path) -> Any:
    """Open page in headless Chromium and return what it reports; the browser is stopped."""
    browser = subprocess.Popen(
        [
            chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", page,
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        return reports.get(timeout=TIMEOUT)
    except queue.Empty:
        pytest.fail(f"the page reported nothing within {TIMEOUT} s")
    finally:
        os.killpg(browser.pid, signal.SIGKILL)
        browser.wait()
        assert browser.stderr is not None
        browser.stderr.close()


@pytest.fixture(scope="module")
def frontend() -> Iterator[tuple[str, queue.Queue[dict[str, Any]]]]:
    with page_server() as served:
        yield served


@pytest.fixture(scope="module")
def api(
    typescript_build: Path,
    frontend: tuple[str, queue.Queue[dict[str, Any]]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveServer]:
    origin, _ = frontend
    server = serve_tasks_api(tmp_path_factory.mktemp("browser"), SECRET, CORS_ORIGINS=origin)
    yield server
    server.stop()


def page_url(origin: str, api: LiveServer) -> str:
    query = {"api": api.url, "token": mint_token(SECRET, USER), "user": USER}
    return f"{origin}/?{urlencode(query)}"


def test_a_page_on_an_allowed_origin_reads_every_answer_it_needs(
    frontend: tuple[str, queue.Queue[dict[str, Any]]], api: LiveServer, tmp_path: Path
) -> None:
    origin, reports = frontend
    seen = open_in_chromium(page_url(origin, api), reports, tmp_path / "profile")
    assert "failed" not in seen, seen
    assert seen["created"] == 201
    assert seen["etag"].startswith('"')
    assert seen["location"].endswith(f"/api/{USER}/tasks/{seen['replay_id']}")
    assert seen["request_id"]
    assert (seen["replay"], seen["replayed"]) == (201, "true")
    assert seen["replay_id"] in seen["listed"]
    assert (seen["replaced"], seen["replaced_title"]) == (200, "Changed in a browser")
    assert seen["stale"] == 412
    assert seen["stale_problem"]["status"] == 412
    assert seen["patched"] == "high"
    assert seen["unauthorized"] == 401
    assert seen["unauthorized_problem"]["status"] == 401


def test_the_same_page_on_another_origin_cannot_call_the_api(
    api: LiveServer, tmp_path: Path
) -> None:
    with page_server() as (elsewhere, reports):
        seen = open_in_chromium(page_url(elsewhere, api), reports, tmp_path / "profile")
    assert seen == {"failed": "TypeError: Failed to fetch"}
    # The preflight reached the server and was refused there, not lost on the way.
    api.wait_for(r"method=OPTIONS.*status=400")
