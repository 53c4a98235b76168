"""The `tasks-api` command: migrate, token, and refusing to start when unsafe."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import jwt
import pytest
from alembic.script import ScriptDirectory

from handlers.cli import main
from handlers.services.settings import dev_secret
from persistence.schema import alembic_config
from tests.helpers import TEST_SECRET

_SETTINGS = ("APP_ENV", "DATABASE_URL", "JWT_SECRET", "JWT_ISSUER", "JWT_AUDIENCE", "DATA_DIR")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in _SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("UV_NO_ENV_FILE", "1")  # a developer's own .env stays out of these tests


def test_migrate_brings_a_database_to_head(
    create_database: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", create_database("cli_migrate_tests"))

    assert main(["migrate"]) == 0
    assert main(["migrate"]) == 0  # running it again changes nothing

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert capsys.readouterr().out.splitlines() == [f"database at revision {head}"] * 2


def test_distribute_refuses_a_postgresql_without_citus_in_one_line(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What it does on a Citus cluster: tests/citus (`make test-citus`)."""
    monkeypatch.setenv("DATABASE_URL", database_url)

    assert main(["distribute"]) == 2
    said = capsys.readouterr().err
    assert said.count("\n") == 1
    assert "the database has no Citus extension" in said


def test_migrate_in_production_needs_a_database_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate"]) == 2
    assert "DATABASE_URL is required" in capsys.readouterr().err


def test_token_is_signed_with_the_configured_secret_and_claims(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JWT_SECRET", TEST_SECRET)
    monkeypatch.setenv("JWT_ISSUER", "https://auth.example")
    monkeypatch.setenv("JWT_AUDIENCE", "tasks-api")

    assert main(["token", "--sub", "bob", "--ttl", "120"]) == 0

    token = capsys.readouterr().out.strip()
    claims = jwt.decode(
        token,
        TEST_SECRET,
        algorithms=["HS256"],
        audience="tasks-api",
        issuer="https://auth.example",
    )
    assert claims["sub"] == "bob"
    assert claims["exp"] - claims["iat"] == 120


def test_token_uses_the_development_secret_make_run_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dev_secret(tmp_path / "data")  # what `make run` does on its first start
    assert main(["token", "--sub", "carol"]) == 0

    secret = (tmp_path / "data" / "jwt-secret").read_text().strip()
    assert (
        jwt.decode(capsys.readouterr().out.strip(), secret, algorithms=["HS256"])["sub"] == "carol"
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "DATABASE_URL is required"),
        ({"DATABASE_URL": "postgresql://db/x"}, "JWT_SECRET is required"),
        ({"DATABASE_URL": "postgresql://db/x", "JWT_SECRET": "changeme"}, "at least 32 bytes"),
        ({"PORT": "eighty"}, "PORT must be an integer"),
    ],
)
def test_serve_refuses_unsafe_settings(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    message: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["serve"]) == 2
    error = capsys.readouterr().err
    assert message in error
    assert "changeme" not in error  # a rejected secret is never printed


def test_token_never_invents_a_secret_the_server_does_not_have(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["token", "--sub", "carol"]) == 2
    assert "make run" in capsys.readouterr().err
    assert not (tmp_path / "data" / "jwt-secret").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sub", "bad/sub"], "--sub is not a user id the API accepts"),
        (["--sub=-alice"], "--sub is not a user id the API accepts"),
        (["--sub", "a" * 129], "--sub is not a user id the API accepts"),
        (["--sub", "alice", "--ttl", "-5"], "--ttl must be a positive"),
        (["--sub", "alice", "--ttl", "0"], "--ttl must be a positive"),
    ],
)
def test_token_refuses_what_the_server_would_refuse(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    monkeypatch.setenv("JWT_SECRET", TEST_SECRET)
    assert main(["token", *args]) == 2
    assert message in capsys.readouterr().err


def test_every_command_reads_the_checkouts_dot_env_wherever_it_is_started(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    dot_env: Path,
) -> None:
    dot_env.write_text(f"JWT_SECRET={TEST_SECRET}\nJWT_ISSUER=from-dot-env\n")
    (tmp_path / ".env").write_text("JWT_SECRET=not-this-one-from-the-working-directory\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("UV_NO_ENV_FILE")
    monkeypatch.setenv("JWT_ISSUER", "from-environment")  # the environment wins

    assert main(["token", "--sub", "dora"]) == 0

    claims = jwt.decode(capsys.readouterr().out.strip(), TEST_SECRET, algorithms=["HS256"],
                        issuer="from-environment")  # fmt: skip
    assert claims["sub"] == "dora"
