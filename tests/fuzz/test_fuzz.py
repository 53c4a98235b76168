"""Contract fuzzing of the live server with schemathesis: every check and phase, then a second
user whose every response is checked for the first user's data (`make fuzz`)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from handlers.services.security import mint_token
from tests.live import REPO, LiveServer, environment, serve_tasks_api

CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
RUN_TIMEOUT = 150  # seconds per run; the whole module stays under 3 minutes on 2 cores
SECRET = "fuzz-" + uuid.uuid4().hex + uuid.uuid4().hex


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """uvicorn on the embedded PostgreSQL, validating every response against the contract."""
    live = serve_tasks_api(tmp_path_factory.mktemp("fuzz"), SECRET)
    yield live
    live.stop()


def fuzz(
    server: LiveServer,
    user: str,
    *args: str,
    config: Path = CONFIG,
    foreign: Sequence[str] = (),
) -> None:
    """Run schemathesis as FUZZ_USER; fail on any finding or any server traceback."""
    env = environment(
        FUZZ_USER=user,
        FUZZ_TOKEN=mint_token(SECRET, user, ttl_seconds=3600),
        FUZZ_FOREIGN=",".join(foreign),
    )
    command = [
        str(SCHEMATHESIS), "--config-file", str(config), "--no-color",
        "run", f"{server.url}/openapi.json", "--checks", "all", *args,
    ]  # fmt: skip
    run = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Traceback" not in server.log, server.log


def test_the_server_conforms_to_its_contract(server: LiveServer) -> None:
    fuzz(server, "fuzz-owner")


def test_another_user_never_sees_the_first_users_tasks(server: LiveServer, tmp_path: Path) -> None:
    owner = "fuzz-owner"
    headers = {"Authorization": f"Bearer {mint_token(SECRET, owner)}"}
    marker = f"private-{uuid.uuid4().hex}"
    created = httpx.post(
        f"{server.url}/api/{owner}/tasks", json={"title": marker}, headers=headers
    ).json()
    owned = httpx.get(f"{server.url}/api/{owner}/tasks?limit=100", headers=headers).json()
    foreign = [owner, marker, *(task["id"] for task in owned["items"])]

    # Every task-level request names the owner's task; each must be a 404 that reveals nothing.
    # The run's config is the repository's plus that one parameter.
    base = CONFIG.read_text()
    assert base.rstrip().rsplit("\n[", 1)[-1].startswith("parameters]"), "[parameters] must be last"
    config = tmp_path / "isolation.toml"
    config.write_text(f'{base}"path.task_id" = "{created["id"]}"\n')
    fuzz(
        server,
        "fuzz-intruder",
        "--phases", "examples,coverage,fuzzing",
        "--exclude-checks", "use_after_free,ensure_resource_availability",
        config=config,
        foreign=foreign,
    )  # fmt: skip
