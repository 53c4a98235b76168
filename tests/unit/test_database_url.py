"""DATABASE_URL as hosted providers hand it out: asyncpg reads the DSN, the options it would
misread are translated, and an option that cannot work stops the server at start, by name."""

import ssl
from pathlib import Path

import pytest

from handlers.services.settings import Settings, SettingsError
from persistence.database_url import CONNECT_TIMEOUT, async_url, connect_arguments, target


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
        "postgresql://u@ep-x.neon.tech/db?sslmode=require&channel_binding=prefer"
    )
    assert arguments["dsn"] == "postgresql://u@ep-x.neon.tech/db?sslmode=require"


@pytest.mark.parametrize(
    ("option", "advice"),
    [("channel_binding=require", "sslmode=verify-full"), ("gssencmode=require", "verify-full")],
)
def test_a_protection_asyncpg_cannot_give_is_refused_not_dropped(option: str, advice: str) -> None:
    """Neon's connection strings say channel_binding=require: dropping it would fail open."""
    with pytest.raises(ValueError, match=f"{option} cannot be honoured") as refused:
        connect_arguments(f"postgresql://u:hunter2@ep-x.neon.tech/db?sslmode=require&{option}")
    assert advice in str(refused.value)
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize("value", ["disable", "prefer"])
def test_channel_binding_that_asks_for_nothing_is_accepted(value: str) -> None:
    url = f"postgresql://u@h/db?channel_binding={value}&gssencmode={value}"
    assert connect_arguments(url)["dsn"] == "postgresql://u@h/db"


def test_verify_full_needs_a_root_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("PGSSLROOTCERT", raising=False)
    for mode in ("verify-ca", "verify-full"):
        with pytest.raises(ValueError, match=r"no root certificate: ~/.postgresql/root.crt"):
            connect_arguments(f"postgresql://u@h/db?sslmode={mode}")
    (tmp_path / ".postgresql").mkdir()
    (tmp_path / ".postgresql" / "root.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    assert (
        "sslmode=verify-full" in connect_arguments("postgresql://u@h/db?sslmode=verify-full")["dsn"]
    )
    monkeypatch.setenv("PGSSLROOTCERT", str(tmp_path / "missing.crt"))
    with pytest.raises(ValueError, match="PGSSLROOTCERT"):
        connect_arguments("postgresql://u@h/db?sslmode=verify-full")
    monkeypatch.setenv("PGSSLMODE", "verify-full")
    with pytest.raises(ValueError, match="no root certificate"):
        connect_arguments("postgresql://u@h/db")


def test_sslrootcert_system_is_the_systems_authorities_with_the_name_checked() -> None:
    arguments = connect_arguments("postgresql://u@h/db?sslrootcert=system&sslmode=verify-full")
    assert arguments["dsn"] == "postgresql://u@h/db"  # asyncpg would look for a file "system"
    context = arguments["ssl"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert isinstance(connect_arguments("postgresql://u@h/db?sslrootcert=system")["ssl"],
                      ssl.SSLContext)  # fmt: skip
    with pytest.raises(ValueError, match="needs sslmode=verify-full"):
        connect_arguments("postgresql://u@h/db?sslrootcert=system&sslmode=require")


def test_pool_mode_transaction_keeps_no_session_state() -> None:
    database = target("postgresql://u@pooler:6543/db?pool_mode=transaction&application_name=web")
    assert database.behind_transaction_pooler
    assert database.arguments["statement_cache_size"] == 0
    assert database.arguments["server_settings"] == {"application_name": "web"}
    assert database.arguments["dsn"] == "postgresql://u@pooler:6543/db"
    assert not target("postgresql://u@h/db").behind_transaction_pooler
    assert not target("postgresql://u@h/db?pool_mode=session").behind_transaction_pooler


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("pool_mode=statement", "pool_mode=statement cannot work"),
        ("pool_mode=sometimes", "pool_mode must be session or transaction"),
        ("pool_mode=transaction&statement_cache_size=100", "statement_cache_size must be 0"),
        ("pool_mode=transaction&options=-c%20work_mem%3D8MB", "refuse start-up settings"),
    ],
)
def test_what_a_transaction_pooler_cannot_carry_is_refused(query: str, said: str) -> None:
    with pytest.raises(ValueError, match=said):
        target(f"postgresql://u@pooler/db?{query}")


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
