"""A client generated from the contract (openapi-python-client) drives the live server: the
contract is usable as a client's only documentation, typed errors included (`make client`)."""

from __future__ import annotations

import importlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from handlers.services.security import mint_token
from tests.live import REPO, LiveServer, serve_tasks_api

PACKAGE = "tasks_api_client"
SECRET = "client-" + uuid.uuid4().hex + uuid.uuid4().hex


def generate(output: Path) -> None:
    """`make client`, into output: an installable package (tasks_api_client inside)."""
    done = subprocess.run(
        ["make", "--no-print-directory", "client", f"CLIENT_DIR={output}"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("generated")
    generate(output)
    return output


@pytest.fixture(scope="module")
def client_package(generated: Path) -> Iterator[ModuleType]:
    sys.path.insert(0, str(generated))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(generated))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = serve_tasks_api(tmp_path_factory.mktemp("client-server"), SECRET)
    yield live
    live.stop()


class Api:
    """The generated modules, by operation, for one user's authenticated client."""

    def __init__(self, package: ModuleType, server: LiveServer, user: str, secret: str) -> None:
        self.models = importlib.import_module(f"{PACKAGE}.models")
        self.types = importlib.import_module(f"{PACKAGE}.types")
        self.user = user
        self.client = package.AuthenticatedClient(
            base_url=server.url, token=mint_token(secret, user), raise_on_unexpected_status=True
        )

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.get_httpx_client().close()

    def op(self, tag: str, operation: str) -> Any:
        return importlib.import_module(f"{PACKAGE}.api.{tag}.{tag}_{operation}")

    def call(self, operation: str, **kwargs: Any) -> Any:
        return self.op("tasks", operation).sync_detailed(client=self.client, **kwargs)


def test_every_operation_through_the_generated_client(
    client_package: ModuleType, server: LiveServer
) -> None:
    user = f"gen-{uuid.uuid4().hex[:8]}"
    with Api(client_package, server, user, SECRET) as api:
        drive_every_operation(api, user)


def test_the_generated_client_installs_with_pip_and_works(
    generated: Path, server: LiveServer, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=120)
    installed = subprocess.run(
        [venv / "bin" / "pip", "install", "--quiet", "--disable-pip-version-check", generated],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    use = (
        "import sys\n"
        "from tasks_api_client import AuthenticatedClient\n"
        "from tasks_api_client.api.tasks import tasks_list_tasks\n"
        "client = AuthenticatedClient(base_url=sys.argv[1], token=sys.argv[2])\n"
        "print(tasks_list_tasks.sync_detailed(client=client, user_id='pip-user').status_code)\n"
    )
    ran = subprocess.run(
        [venv / "bin" / "python", "-c", use, server.url, mint_token(SECRET, "pip-user")],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert ran.stdout.strip() == "200", ran.stdout + ran.stderr


def drive_every_operation(api: Api, user: str) -> None:
    m = api.models

    health = api.op("health", "check_readiness").sync(client=api.client)
    assert health.status == m.HealthStatusStatus.OK

    created = api.call(
        "create_task",
        user_id=user,
        body=m.TaskCreate(title="Buy milk", priority=m.Priority.HIGH),
    )
    assert created.status_code == 201
    task = created.parsed
    assert isinstance(task, m.Task)
    assert (task.title, task.priority, task.completed) == ("Buy milk", m.Priority.HIGH, False)
    assert created.headers["location"].endswith(str(task.id))

    for i in range(4):
        api.call(
            "create_task", user_id=user, body=m.TaskCreate(title=f"t{i}", completed=i % 2 == 0)
        )
    page = api.call("list_tasks", user_id=user, limit=2, offset=1, sort=m.TaskSort.TITLE).parsed
    assert isinstance(page, m.TaskPage)
    assert (page.total, page.limit, page.offset) == (5, 2, 1)
    assert [t.title for t in page.items] == ["t0", "t1"]
    done = api.call("list_tasks", user_id=user, completed=True).parsed
    assert sorted(t.title for t in done.items) == ["t0", "t2"]

    fetched = api.call("get_task", user_id=user, task_id=task.id).parsed
    assert fetched.to_dict() == task.to_dict()

    replaced = api.call(
        "replace_task",
        user_id=user,
        task_id=task.id,
        body=m.TaskReplace(title="Buy oat milk", description="2 litres"),
    ).parsed
    assert (replaced.title, replaced.description, replaced.priority) == (
        "Buy oat milk", "2 litres", m.Priority.MEDIUM,
    )  # fmt: skip

    patched = api.call(
        "update_task",
        user_id=user,
        task_id=task.id,
        body=m.TaskPatch.from_dict({"priority": "high", "due_date": None}),
    ).parsed
    assert isinstance(patched, m.Task), patched
    assert (patched.title, patched.priority, patched.due_date) == (
        "Buy oat milk", m.Priority.HIGH, None,
    )  # fmt: skip

    toggled = api.call("complete_task", user_id=user, task_id=task.id).parsed
    assert toggled.completed is True
    kept = api.call(
        "complete_task", user_id=user, task_id=task.id, body=m.TaskCompletion(completed=True)
    ).parsed
    assert kept.completed is True

    deleted = api.call("delete_task", user_id=user, task_id=task.id)
    assert deleted.status_code == 204
    assert api.call("get_task", user_id=user, task_id=task.id).status_code == 404


def test_errors_arrive_as_typed_problems(client_package: ModuleType, server: LiveServer) -> None:
    user = f"gen-{uuid.uuid4().hex[:8]}"
    with (
        Api(client_package, server, user, SECRET) as api,
        Api(client_package, server, user, "wrong-" + SECRET) as unauthorized,
    ):
        check_typed_problems(api, unauthorized, user)


def check_typed_problems(api: Api, unauthorized: Api, user: str) -> None:
    m = api.models

    def problem(response: Any, status: int) -> Any:
        assert response.status_code == status
        assert isinstance(response.parsed, m.Problem)
        assert response.parsed.status == status
        return response.parsed

    problem(unauthorized.call("list_tasks", user_id=user), 401)

    problem(api.call("list_tasks", user_id="somebody-else"), 403)
    problem(api.call("get_task", user_id=user, task_id=uuid.uuid4()), 404)

    invalid = problem(
        api.call("create_task", user_id=user, body=m.TaskCreate(title=" ", description="x" * 4001)),
        400,
    )
    errors = {(e.location, e.pointer): e.detail for e in invalid.errors}
    assert set(errors) == {
        (m.FieldErrorLocation.BODY, "/title"),
        (m.FieldErrorLocation.BODY, "/description"),
    }
