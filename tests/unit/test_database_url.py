"""DATABASE_URL as hosted providers hand it out becomes an asyncpg URL."""

import pytest

from persistence.database import async_url, connect_arguments


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgres://u:p@host/db", "postgresql+asyncpg"),
        ("postgresql://u:p@host/db", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u:p@host/db", "postgresql+asyncpg"),
        ("postgresql+psycopg://u:p@host/db", "postgresql+asyncpg"),
    ],
)
def test_any_postgres_scheme_uses_asyncpg(given: str, driver: str) -> None:
    url = async_url(given)
    assert url.drivername == driver
    assert (url.username, url.password, url.host, url.database) == ("u", "p", "host", "db")


def test_libpq_options_are_translated() -> None:
    url = async_url("postgresql://u@ep-x.neon.tech/db?sslmode=require&channel_binding=require")
    assert dict(url.query) == {"ssl": "require"}


def test_unix_socket_host_is_kept() -> None:
    assert async_url("postgresql://postgres:@/postgres?host=/tmp/pg").query == {"host": "/tmp/pg"}


def test_other_databases_are_refused() -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        async_url("mysql://u@h/db")


def test_password_is_hidden_when_rendered() -> None:
    assert "hunter2" not in repr(async_url("postgresql://u:hunter2@h/db"))


def test_pooler_options_reach_asyncpg_as_numbers() -> None:
    arguments = connect_arguments("postgresql://u@pooler:6543/db?statement_cache_size=0")
    assert arguments["statement_cache_size"] == 0
    assert arguments["port"] == 6543


def test_a_bad_number_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="statement_cache_size must be a whole number"):
        connect_arguments("postgresql://u@pooler/db?statement_cache_size=off")
