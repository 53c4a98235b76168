"""DATABASE_URL as hosted providers hand it out: asyncpg reads the DSN, the options it would
misread are translated, and an option that cannot work stops the server at start, by name."""

from pathlib import Path

import pytest

from handlers.settings import Settings, SettingsError
from persistence.database import CONNECT_TIMEOUT, async_url, connect_arguments


@pytest.mark.parametrize(
    "given",
    [
        "postgres://u:p@host/db",
        "postgresql://u:p@host/db",
        "postgresql+asyncpg://u:p@host/db",
        "postgresql+psycopg://u:p@host/db",
    ],
)
def test_any_postgres_scheme_uses_asyncpg(given: str) -> None:
    url = async_url(given)
    assert url.drivername == "postgresql+asyncpg"
    assert (url.username, url.password, url.host, url.database) == ("u", "p", "host", "db")
    assert connect_arguments(given)["dsn"] == "postgresql://u:p@host/db"


def test_libpq_options_asyncpg_reads_stay_in_the_dsn() -> None:
    arguments = connect_arguments(
        "postgresql://u@ep-x.neon.tech/db?sslmode=require&channel_binding=require"
    )
    assert arguments["dsn"] == "postgresql://u@ep-x.neon.tech/db?sslmode=require"


def test_unix_socket_host_is_kept() -> None:
    arguments = connect_arguments("postgresql://postgres:@/postgres?host=/tmp/pg")
    assert arguments["dsn"] == "postgresql://postgres:@/postgres?host=%2Ftmp%2Fpg"


def test_server_settings_are_passed_through() -> None:
    arguments = connect_arguments(
        "postgresql://u@h/db?application_name=web&options=-c%20search_path%3Dapp%20--work_mem%3D8MB"
    )
    assert arguments["server_settings"] == {
        "application_name": "web",
        "search_path": "app",
        "work_mem": "8MB",
    }
    assert "application_name" not in arguments["dsn"]


def test_connect_timeout_only_shortens_ours() -> None:
    assert connect_arguments("postgresql://u@h/db?connect_timeout=10")["timeout"] == CONNECT_TIMEOUT
    assert connect_arguments("postgresql://u@h/db")["timeout"] == CONNECT_TIMEOUT


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("connect_timeout=soon", "connect_timeout"),
        ("options=search_path%3Dapp", "options"),
        ("sslmode=sometimes", "sslmode"),
        ("sslrootcert=/nonexistent/root.crt", "sslrootcert"),
        ("statement_cache_size=off", "statement_cache_size"),
        ("keepalives=1", "keepalives"),
    ],
)
def test_an_option_that_cannot_work_is_refused_by_name(query: str, named: str) -> None:
    url = f"postgresql://u:hunter2@h/db?{query}"
    with pytest.raises(ValueError, match=named):
        connect_arguments(url)
    with pytest.raises(SettingsError, match=named) as refused:
        Settings.from_env({"APP_ENV": "development", "DATABASE_URL": url})
    assert "hunter2" not in str(refused.value)


def test_sslrootcert_file_is_checked(tmp_path: Path) -> None:
    root = tmp_path / "root.crt"
    root.write_text("-----BEGIN CERTIFICATE-----\n")
    dsn = connect_arguments(f"postgresql://u@h/db?sslrootcert={root}")["dsn"]
    assert "sslrootcert=" in dsn
    assert (
        "sslrootcert=system" in connect_arguments("postgresql://u@h/db?sslrootcert=system")["dsn"]
    )


def test_other_databases_are_refused() -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        async_url("mysql://u@h/db")
    with pytest.raises(ValueError, match="PostgreSQL"):
        connect_arguments("mysql://u@h/db")


def test_password_is_hidden_when_rendered() -> None:
    assert "hunter2" not in repr(async_url("postgresql://u:hunter2@h/db"))


def test_pooler_options_reach_asyncpg_as_numbers() -> None:
    arguments = connect_arguments("postgresql://u@pooler:6543/db?statement_cache_size=0")
    assert arguments["statement_cache_size"] == 0
    assert arguments["dsn"] == "postgresql://u@pooler:6543/db"
