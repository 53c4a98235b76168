"""DATABASE_URL as hosted providers hand it out, turned into asyncpg's connection arguments.

asyncpg reads most libpq options from the DSN itself; the ones it would misread are translated,
and an option that cannot be honoured stops the server at start, by name, instead of failing
every request or being quietly dropped:

- `channel_binding=require` (in every Neon connection string) and `gssencmode=require` ask for
  protections asyncpg does not implement (SCRAM-SHA-256-PLUS, GSSAPI encryption): refused, with
  what to use instead. Their `prefer` and `disable` forms are what asyncpg does anyway.
- `sslmode=verify-ca|verify-full` needs a root certificate: one named by `sslrootcert` must
  exist, and without it the one asyncpg would look for (PGSSLROOTCERT, ~/.postgresql/root.crt).
- `sslrootcert=system` (libpq 16) means the system's certificate authorities with
  `sslmode=verify-full`; asyncpg would look for a file called "system", so it is translated.
- `pool_mode=transaction` says a pooler in transaction mode is in front (PgBouncer, Neon's
  pooled URLs, Supabase's pooler, RDS Proxy): no prepared statement outlives its statement and
  no setting goes in the start-up packet, which such poolers refuse (persistence/database.py
  then sets the statement timeout inside each transaction instead).
"""

from __future__ import annotations

import os
import shlex
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy.engine import URL, make_url

# How long a request waits to open a connection before it answers 503 (docs/api.md: "When
# something is wrong"); a URL's connect_timeout may only shorten it.
CONNECT_TIMEOUT = 0.8

# URL options asyncpg reads itself from the DSN.
_DSN_OPTIONS = frozenset({
    "host", "port", "dbname", "database", "user", "password", "passfile", "service",
    "sslmode", "sslcert", "sslkey", "sslrootcert", "sslcrl", "sslpassword", "sslnegotiation",
    "ssl_min_protocol_version", "ssl_max_protocol_version", "target_session_attrs",
    "krbsrvname", "gsslib",
})  # fmt: skip
# libpq options for protections asyncpg does not implement: what each may say (the value that
# asks for the protection is refused with the advice beside it).
_UNSUPPORTED_PROTECTIONS = {
    "channel_binding": (
        "require",
        "asyncpg, tasks-api's PostgreSQL driver, does not implement SCRAM channel binding; "
        "remove channel_binding=require and authenticate the server by its certificate "
        "instead: sslmode=verify-full with sslrootcert=system (or the provider's CA file)",
    ),
    "gssencmode": (
        "require",
        "asyncpg does not implement GSSAPI encryption; use sslmode=verify-full instead",
    ),
}
_DROPPED_VALUES = frozenset({"disable", "prefer"})
# asyncpg options a URL may carry that must reach it as numbers.
_INTEGER_OPTIONS = frozenset({"statement_cache_size", "max_cached_statement_lifetime",
                              "max_cacheable_statement_size"})  # fmt: skip
_TRANSLATED = frozenset({"application_name", "options", "connect_timeout", "pool_mode"})
_SUPPORTED = _DSN_OPTIONS | _INTEGER_OPTIONS | _TRANSLATED | set(_UNSUPPORTED_PROTECTIONS)
_SSLMODES = frozenset({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"})
_VERIFYING = frozenset({"verify-ca", "verify-full"})
_FILE_OPTIONS = ("passfile", "sslcert", "sslkey", "sslrootcert", "sslcrl")
SYSTEM_ROOTS = "system"
PoolMode = Literal["session", "transaction"]


@dataclass(frozen=True)
class Target:
    """A database to connect to: asyncpg.connect()'s arguments, and whether a pooler in
    transaction mode stands in front of it."""

    arguments: dict[str, Any]
    pool_mode: PoolMode = "session"

    @property
    def behind_transaction_pooler(self) -> bool:
        return self.pool_mode == "transaction"


def _postgresql_scheme(url: str) -> str:
    """postgres:// (as Heroku and others write it) spelled postgresql://."""
    return (
        "postgresql://" + url.removeprefix("postgres://") if url.startswith("postgres://") else url
    )


def async_url(url: str) -> URL:
    """A PostgreSQL URL (postgres:// or postgresql://) as SQLAlchemy's asyncpg URL, without
    options: engines take those from target()."""
    url = _postgresql_scheme(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError("DATABASE_URL must be a PostgreSQL URL")
    return parsed.set(drivername="postgresql+asyncpg", query={})


def _server_settings(options: str) -> dict[str, str]:
    """libpq's `options` (`-c name=value`, `--name=value`) as server settings."""
    settings: dict[str, str] = {}
    words = shlex.split(options)
    while words:
        word = words.pop(0)
        if word == "-c" and words:
            word = words.pop(0)
        elif word.startswith("-c") or word.startswith("--"):
            word = word[2:]
        else:
            raise ValueError("DATABASE_URL option options must be `-c name=value` pairs")
        name, equals, value = word.partition("=")
        if not equals or not name:
            raise ValueError("DATABASE_URL option options must be `-c name=value` pairs")
        settings[name.replace("-", "_")] = value
    return settings


def connect_arguments(url: str) -> dict[str, Any]:
    """asyncpg.connect() arguments for a PostgreSQL URL (see target())."""
    return target(url).arguments


def target(url: str) -> Target:
    """The database a PostgreSQL URL names and how to connect to it: the DSN for asyncpg to read,
    with the options it would misread taken out and translated. ValueError names any option
    that cannot work, so a bad URL stops the server at start instead of failing every request
    (never echoing the URL: it holds a password)."""
    url = _postgresql_scheme(url)
    parts = urlsplit(url)
    if parts.scheme.partition("+")[0] != "postgresql":
        raise ValueError("DATABASE_URL must be a PostgreSQL URL")
    kept: list[tuple[str, str]] = []
    arguments: dict[str, Any] = {"timeout": CONNECT_TIMEOUT}
    server_settings: dict[str, str] = {}
    pool_mode: PoolMode = "session"
    given = parse_qsl(parts.query, keep_blank_values=True)
    options = dict(given)
    for name, value in given:
        if name in _UNSUPPORTED_PROTECTIONS:
            _check_protection(name, value)
        elif name in _INTEGER_OPTIONS:
            if not (value.isascii() and value.isdigit()):
                raise ValueError(f"DATABASE_URL option {name} must be a whole number")
            arguments[name] = int(value)
        elif name == "connect_timeout":
            if not (value.isascii() and value.isdigit() and int(value) > 0):
                raise ValueError("DATABASE_URL option connect_timeout must be whole seconds > 0")
            arguments["timeout"] = min(float(value), CONNECT_TIMEOUT)
        elif name == "application_name":
            server_settings["application_name"] = value
        elif name == "options":
            server_settings.update(_server_settings(value))
        elif name == "pool_mode":
            pool_mode = _pool_mode(value)
        elif name in _DSN_OPTIONS:
            _check_dsn_option(name, value)
            if not (name in ("sslrootcert", "sslmode") and options.get("sslrootcert") == "system"):
                kept.append((name, value))
        else:
            supported = ", ".join(sorted(_SUPPORTED))
            raise ValueError(
                f"DATABASE_URL option {name[:40]!r} is not supported; use one of {supported}"
            )
    if options.get("sslrootcert") == SYSTEM_ROOTS:
        arguments["ssl"] = _system_roots(options.get("sslmode"))
    elif "sslrootcert" not in options:
        _check_default_root(options.get("sslmode") or os.environ.get("PGSSLMODE"))
    if pool_mode == "transaction":
        _check_transaction_pooling(arguments, server_settings)
        arguments["statement_cache_size"] = 0
    arguments["dsn"] = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(kept)))
    if server_settings:
        arguments["server_settings"] = server_settings
    return Target(arguments, pool_mode)


def _check_protection(name: str, value: str) -> None:
    refused, advice = _UNSUPPORTED_PROTECTIONS[name]
    if value == refused:
        raise ValueError(f"DATABASE_URL option {name}={refused} cannot be honoured: {advice}")
    if value not in _DROPPED_VALUES:
        raise ValueError(f"DATABASE_URL option {name} must be disable, prefer or {refused}")


def _pool_mode(value: str) -> PoolMode:
    if value == "session":
        return "session"
    if value == "transaction":
        return "transaction"
    if value == "statement":
        raise ValueError(
            "DATABASE_URL option pool_mode=statement cannot work: a write and its idempotency "
            "key are one transaction of several statements; use the pooler's transaction mode"
        )
    raise ValueError("DATABASE_URL option pool_mode must be session or transaction")


def _check_transaction_pooling(arguments: dict[str, Any], server_settings: dict[str, str]) -> None:
    """What a pooler in transaction mode cannot carry from one transaction to the next."""
    if arguments.get("statement_cache_size", 0) != 0:
        raise ValueError(
            "DATABASE_URL option statement_cache_size must be 0 with pool_mode=transaction "
            "(a prepared statement would not follow the client to its next server connection)"
        )
    refused = sorted(set(server_settings) - {"application_name"})
    if refused:
        raise ValueError(
            "DATABASE_URL option options cannot be used with pool_mode=transaction: poolers in "
            f"transaction mode refuse start-up settings ({', '.join(refused)}); set them on "
            "the database role instead (ALTER ROLE ... SET)"
        )


def _check_dsn_option(name: str, value: str) -> None:
    if name == "sslmode" and value not in _SSLMODES:
        raise ValueError(
            f"DATABASE_URL option sslmode must be one of {', '.join(sorted(_SSLMODES))}"
        )
    system_roots = name == "sslrootcert" and value == SYSTEM_ROOTS
    if name in _FILE_OPTIONS and not system_roots and not Path(value).expanduser().is_file():
        raise ValueError(f"DATABASE_URL option {name} names a file that does not exist")


def _system_roots(sslmode: str | None) -> ssl.SSLContext:
    """sslrootcert=system as libpq 16 reads it: the system's CAs, the server's name checked."""
    if sslmode not in (None, "verify-full"):
        raise ValueError(
            "DATABASE_URL option sslrootcert=system needs sslmode=verify-full (or no sslmode), "
            "as libpq requires"
        )
    return ssl.create_default_context()


def _check_default_root(sslmode: str | None) -> None:
    """A verifying sslmode with no sslrootcert: asyncpg reads PGSSLROOTCERT, else
    ~/.postgresql/root.crt, and fails every connection when neither exists."""
    if sslmode not in _VERIFYING:
        return
    configured = os.environ.get("PGSSLROOTCERT")
    path = Path(configured or "~/.postgresql/root.crt").expanduser()  # as asyncpg finds it
    if not path.is_file():
        where = "PGSSLROOTCERT" if configured else "~/.postgresql/root.crt"
        raise ValueError(
            f"DATABASE_URL has sslmode={sslmode} but no root certificate: {where} ({path}) "
            "does not exist; add sslrootcert=<the provider's CA file>, or sslrootcert=system "
            "for the system's certificate authorities"
        )
