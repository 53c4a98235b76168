"""Settings refuse what is unsafe, before anything starts."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from handlers.services.settings import Settings, SettingsError, dev_secret
from tests.live import REPO

GOOD = "k3Jq9vX2mP8rT5wY1zB4nC7eF0hL6sD2aG"


def test_defaults_are_production_and_refuse_to_serve_without_secret_and_database() -> None:
    settings = Settings.from_env({})
    assert settings.environment == "production"
    with pytest.raises(SettingsError, match="DATABASE_URL is required"):
        settings.require_serving()
    with pytest.raises(SettingsError, match="JWT_SECRET is required"):
        Settings.from_env({"DATABASE_URL": "postgresql://db/x"}).require_serving()


def test_production_with_secret_and_database_serves() -> None:
    settings = Settings.from_env({"DATABASE_URL": "postgresql://db/x", "JWT_SECRET": GOOD})
    settings.require_serving()
    assert settings.signing_secret() == GOOD


@pytest.mark.parametrize(
    "secret",
    [
        "short",
        "x" * 31,
        "changeme" * 5,
        "CHANGE-ME-please-0123456789-abcdefgh",
        "a" * 64,
        "your-secret-here-your-secret-here-12345",
        "supersecretsupersecretsupersecret1",
    ],
)
def test_weak_or_placeholder_secrets_are_refused(secret: str) -> None:
    with pytest.raises(SettingsError, match="JWT_SECRET"):
        Settings.from_env({"JWT_SECRET": secret, "APP_ENV": "development"})


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as error:
        Settings.from_env({"PORT": "http", "APP_ENV": "staging", "LOG_LEVEL": "loud"})
    message = str(error.value)
    assert "PORT" in message
    assert "APP_ENV" in message
    assert "LOG_LEVEL" in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "0"),
        ("PORT", "70000"),
        ("JWT_LEEWAY_SECONDS", "-1"),
        ("DB_POOL_SIZE", "x"),
        ("VALIDATE_RESPONSES", "perhaps"),
    ],
)
def test_out_of_range_values_are_refused(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_values_are_read(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "APP_ENV": "Development",
            "PORT": "9001",
            "HOST": "0.0.0.0",
            "DATA_DIR": str(tmp_path),
            "JWT_ISSUER": "https://issuer.example",
            "JWT_AUDIENCE": "tasks",
            "VALIDATE_RESPONSES": "yes",
            "MIGRATE_ON_START": "1",
        }
    )
    assert (settings.environment, settings.port, settings.host) == ("development", 9001, "0.0.0.0")
    assert (settings.jwt_issuer, settings.jwt_audience) == ("https://issuer.example", "tasks")
    assert settings.validate_responses
    assert settings.migrate_on_start
    assert settings.data_dir == tmp_path


def test_development_makes_one_private_secret_and_keeps_it(tmp_path: Path) -> None:
    settings = Settings.from_env({"APP_ENV": "development", "DATA_DIR": str(tmp_path / "d")})
    settings.require_serving()  # no DATABASE_URL needed: the embedded database is used

    first = settings.signing_secret()

    assert len(first.encode()) >= 32
    assert settings.signing_secret() == first
    mode = stat.S_IMODE(os.stat(tmp_path / "d" / "jwt-secret").st_mode)
    assert mode == 0o600
    assert (
        Settings.from_env({"APP_ENV": "development", "JWT_SECRET": GOOD}).signing_secret() == GOOD
    )


def test_concurrent_starts_agree_on_one_secret(tmp_path: Path) -> None:
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(dev_secret(tmp_path))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["jwt-secret"]


JWKS = "https://clerk.example.com/.well-known/jwks.json"


def test_production_may_use_a_jwks_instead_of_a_secret() -> None:
    settings = Settings.from_env({"DATABASE_URL": "postgresql://db/x", "JWT_JWKS_URL": JWKS})
    settings.require_serving()
    assert settings.shared_secret() is None
    assert settings.jwks_algorithms() == ("RS256", "ES256", "EdDSA")


def test_development_with_a_jwks_makes_no_secret(tmp_path: Path) -> None:
    env = {"APP_ENV": "development", "DATA_DIR": str(tmp_path), "JWT_JWKS_URL": JWKS}
    assert Settings.from_env(env).shared_secret() is None
    assert not (tmp_path / "jwt-secret").exists()


@pytest.mark.parametrize(
    "url", ["http://clerk.example.com/jwks", "ftp://x/jwks", "file:///etc/jwks.json"]
)
def test_jwks_url_must_be_https_off_loopback(url: str) -> None:
    with pytest.raises(SettingsError, match="JWT_JWKS_URL must be an https"):
        Settings.from_env({"JWT_JWKS_URL": url})


@pytest.mark.parametrize("url", ["http://127.0.0.1:9000/jwks", "http://localhost/jwks"])
def test_jwks_url_may_be_http_on_loopback(url: str) -> None:
    assert Settings.from_env({"JWT_JWKS_URL": url}).jwt_jwks_url == url


def test_algorithms_split_by_source() -> None:
    env = {"JWT_SECRET": GOOD, "JWT_JWKS_URL": JWKS, "JWT_ALGORITHMS": "HS512, EdDSA ,RS256"}
    settings = Settings.from_env(env)
    assert settings.secret_algorithms() == ("HS512",)
    assert settings.jwks_algorithms() == ("EdDSA", "RS256")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"JWT_ALGORITHMS": "none"}, "unsupported algorithms"),
        ({"JWT_ALGORITHMS": "RS256,HS1"}, "unsupported algorithms"),
        ({"JWT_ALGORITHMS": "RS256", "JWT_SECRET": GOOD}, "no HS\\* algorithm for JWT_SECRET"),
        ({"JWT_ALGORITHMS": "HS256", "JWT_JWKS_URL": JWKS}, "for JWT_JWKS_URL"),
        ({"JWT_JWKS_TIMEOUT_SECONDS": "soon"}, "must be a number"),
        ({"JWT_JWKS_TIMEOUT_SECONDS": "120"}, "between 0.1 and 30"),
    ],
)
def test_unusable_identity_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_identity_settings_are_read() -> None:
    settings = Settings.from_env(
        {
            "JWT_JWKS_URL": JWKS,
            "JWT_AUTHORIZED_PARTIES": "https://a.example, https://b.example",
            "JWT_JWKS_CACHE_SECONDS": "60",
            "JWT_JWKS_COOLDOWN_SECONDS": "10",
            "JWT_JWKS_TIMEOUT_SECONDS": "0.5",
        }
    )
    assert settings.jwt_authorized_parties == ("https://a.example", "https://b.example")
    assert (settings.jwt_jwks_cache_seconds, settings.jwt_jwks_cooldown_seconds) == (60, 10)
    assert settings.jwt_jwks_timeout_seconds == 0.5


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u:hunter2@h/db", "must be a PostgreSQL URL"),
        ("not a url at all", "must be a PostgreSQL URL"),
        ("postgresql://u:hunter2@h/db?statement_cache_size=off", "must be a whole number"),
    ],
)
def test_unusable_database_urls_are_refused_without_echoing_them(url: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message) as error:
        Settings.from_env({"DATABASE_URL": url})
    assert "hunter2" not in str(error.value)


@pytest.mark.parametrize(
    ("environ", "url"),
    [
        ({}, "http://127.0.0.1:8000"),
        ({"HOST": "0.0.0.0", "PORT": "9000"}, "http://localhost:9000"),
        ({"HOST": "::"}, "http://localhost:8000"),
        ({"HOST": "::1"}, "http://[::1]:8000"),
        ({"PUBLIC_URL": "https://tasks.example.com/"}, "https://tasks.example.com"),
    ],
)
def test_the_public_url_is_where_clients_reach_the_server(
    environ: dict[str, str], url: str
) -> None:
    assert Settings.from_env(environ).base_url() == url


@pytest.mark.parametrize(
    "value", ["tasks.example.com", "ftp://x.example", "https://x.example/?a=1"]
)
def test_a_public_url_must_be_a_plain_http_url(value: str) -> None:
    with pytest.raises(SettingsError, match="PUBLIC_URL must be an http"):
        Settings.from_env({"PUBLIC_URL": value})


def test_mcp_can_be_turned_off() -> None:
    assert Settings.from_env({}).mcp_enabled is True
    assert Settings.from_env({"MCP_ENABLED": "false"}).mcp_enabled is False


def test_the_data_directory_is_the_checkouts_whatever_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({}).data_dir == REPO / ".data"
    assert Settings.from_env({"DATA_DIR": "var/dev"}).data_dir == REPO / "var" / "dev"
    assert Settings.from_env({"DATA_DIR": str(tmp_path)}).data_dir == tmp_path
