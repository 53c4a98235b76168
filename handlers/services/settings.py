"""Typed settings, read from the environment once and refused early when unsafe."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from persistence.database_url import connect_arguments

MIN_SECRET_BYTES = 32
# prometheus-client's: where worker processes keep their metrics (handlers/services/metrics.py)
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
DEV_KEY_FILE = "jwt-secret"

# Values people paste from tutorials and templates; compared with case and punctuation removed.
_PLACEHOLDER_WORDS = (
    "changeme",
    "changethis",
    "replaceme",
    "yoursecret",
    "placeholder",
    "secretkey",
    "supersecret",
    "example",
    "notasecret",
    "insecure",
)

Environment = Literal["development", "production"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
N = TypeVar("N", int, float)

# What each kind of key source may verify; "none" is never among them.
HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
ASYMMETRIC_ALGORITHMS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)  # fmt: skip
DEFAULT_SECRET_ALGORITHMS = ("HS256",)
DEFAULT_JWKS_ALGORITHMS = ("RS256", "ES256", "EdDSA")
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# An ALLOWED_HOSTS entry: a name or IPv4 address, or a bracketed IPv6 one, with :port or :*.
_HOST = re.compile(r"(?:[a-z0-9.-]+|\[[0-9a-f:.]+\])(?::(?:[0-9]{1,5}|\*))?")
# A CORS_ORIGINS entry: an origin as a browser serializes it (RFC 6454 §6.2), so one that can
# never match (a path, a trailing slash, capitals, `null`) is refused at start.
_ORIGIN = re.compile(r"https?://(?:[a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?")


def project_home() -> Path | None:
    """The source checkout this code runs from (`make install` installs it in place), if it
    does: where `make run` keeps `.data/` and reads `.env`, whatever the working directory of a
    `tasks-api` command (an agent host starts `tasks-api mcp` from its own)."""
    root = Path(__file__).resolve().parents[2]  # handlers/services/settings.py
    return root if (root / "pyproject.toml").is_file() and (root / "Makefile").is_file() else None


def home_for(path: Path) -> Path:
    """A relative path from the settings (DATA_DIR), taken from the project's folder in a
    checkout, else from the working directory."""
    return path if path.is_absolute() else (project_home() or Path.cwd()) / path


def trusted_networks(entries: Iterable[str]) -> tuple[Network, ...] | None:
    """FORWARDED_ALLOW_IPS as networks (an address is a network of one), or None for `*`
    (every peer); ValueError names an entry that is neither."""
    networks: list[Network] = []
    for entry in entries:
        if entry == "*":
            return None
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(
                f"FORWARDED_ALLOW_IPS entry {entry[:60]!r} is not an IP address or network"
            ) from None
    return tuple(networks)


def variable(field_name: str) -> str:
    """The environment variable a Settings field is read from: its name in capitals (the
    environment field is APP_ENV)."""
    return "APP_ENV" if field_name == "environment" else field_name.upper()


def variables() -> tuple[str, ...]:
    """Every variable the server reads, from the one list there is: Settings' fields. The
    configuration reference, .env.example and the tests' environment scrub are checked
    against it (tests/unit/test_release.py)."""
    from dataclasses import fields

    return tuple(variable(f.name) for f in fields(Settings))


class SettingsError(ValueError):
    """The environment does not describe a server that is safe to start."""


@dataclass(frozen=True)
class Settings:
    """Everything the server reads from its environment."""

    environment: Environment = "production"
    database_url: str | None = None
    jwt_secret: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_leeway_seconds: int = 30
    jwt_jwks_url: str | None = None
    jwt_algorithms: tuple[str, ...] | None = None
    jwt_authorized_parties: tuple[str, ...] = ()
    jwt_jwks_cache_seconds: int = 300
    jwt_jwks_cooldown_seconds: int = 30
    jwt_jwks_timeout_seconds: float = 3.0
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = field(default_factory=lambda: home_for(Path(".data")))
    db_pool_size: int = 10
    log_level: str = "info"
    access_log: bool = True
    log_format: Literal["json", "text"] = "json"
    validate_responses: bool = False
    migrate_on_start: bool = False
    cursor_secret: str | None = None
    require_if_match: bool = False
    require_idempotency_key: bool = False
    idempotency_key_ttl_seconds: int = 86400
    header_timeout_seconds: float = 10.0
    graceful_timeout_seconds: int = 10
    public_url: str | None = None
    mcp_enabled: bool = True
    workers: int = 1
    rate_limit_per_minute: int = 600
    auth_failure_limit_per_minute: int = 60
    # How processes count requests against the shared limits (handlers/services/rate_counter.py).
    rate_limit_mode: Literal["batched", "exact"] = "batched"
    rate_limit_sync_ms: int = 100
    metrics_token: str | None = None
    server: Literal["uvicorn", "granian"] = "uvicorn"
    # Peers whose X-Forwarded-For (or Forwarded) names the client; none by default.
    forwarded_allow_ips: tuple[str, ...] = ()
    forwarded_header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for"
    # Host header values /mcp accepts besides loopback and PUBLIC_URL's (DNS-rebinding guard).
    allowed_hosts: tuple[str, ...] = ()
    # Origins whose pages may call the API from a browser (handlers/http/cors.py); none by default.
    cors_origins: tuple[str, ...] = ()
    cors_allow_credentials: bool = False
    cors_max_age_seconds: int = 600

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and check the settings; raise SettingsError with every problem at once."""
        env = dict(os.environ if environ is None else environ)
        errors: list[str] = []

        def text(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        def numeric(name: str, default: N, low: N, high: N) -> N:
            """A number in [low, high], of the type of default; default when unset or bad."""
            raw = text(name)
            if raw is None:
                return default
            kind = type(default)
            try:
                value = kind(raw)
            except ValueError:
                noun = "an integer" if kind is int else "a number"
                errors.append(f"{name} must be {noun}, got {raw[:20]!r}")
                return default
            if not low <= value <= high:
                errors.append(f"{name} must be between {low:g} and {high:g}")
                return default
            return value

        def words(name: str) -> tuple[str, ...]:
            return tuple(w.strip() for w in (text(name) or "").split(",") if w.strip())

        def flag(name: str, default: bool) -> bool:
            raw = text(name)
            if raw is None:
                return default
            if raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.lower() in {"0", "false", "no", "off"}:
                return False
            errors.append(f"{name} must be true or false")
            return default

        def choice(name: str, allowed: tuple[str, ...], default: str) -> Any:
            """One of allowed (in any case), default when unset or not one of them."""
            value = (text(name) or default).lower()
            if value in allowed:
                return value
            errors.append(f"{name} must be {' or '.join(repr(a) for a in allowed)}")
            return default

        environment = choice("APP_ENV", ("development", "production"), "production")
        log_format = choice(
            "LOG_FORMAT", ("json", "text"), "text" if environment == "development" else "json"
        )
        server = choice("SERVER", ("uvicorn", "granian"), "uvicorn")
        forwarded_header = choice("FORWARDED_HEADER", ("x-forwarded-for", "forwarded"),
                                  "x-forwarded-for")  # fmt: skip

        settings = cls(
            environment=environment,
            database_url=text("DATABASE_URL"),
            jwt_secret=text("JWT_SECRET"),
            jwt_issuer=text("JWT_ISSUER"),
            jwt_audience=text("JWT_AUDIENCE"),
            jwt_leeway_seconds=numeric("JWT_LEEWAY_SECONDS", 30, 0, 300),
            jwt_jwks_url=text("JWT_JWKS_URL"),
            jwt_algorithms=words("JWT_ALGORITHMS") or None,
            jwt_authorized_parties=words("JWT_AUTHORIZED_PARTIES"),
            jwt_jwks_cache_seconds=numeric("JWT_JWKS_CACHE_SECONDS", 300, 1, 86400),
            jwt_jwks_cooldown_seconds=numeric("JWT_JWKS_COOLDOWN_SECONDS", 30, 1, 3600),
            jwt_jwks_timeout_seconds=numeric("JWT_JWKS_TIMEOUT_SECONDS", 3.0, 0.1, 30.0),
            host=text("HOST") or "127.0.0.1",
            port=numeric("PORT", 8000, 1, 65535),
            data_dir=home_for(Path(text("DATA_DIR") or ".data")),
            db_pool_size=numeric("DB_POOL_SIZE", 10, 1, 200),
            log_level=(text("LOG_LEVEL") or "info").lower(),
            access_log=flag("ACCESS_LOG", True),
            log_format=log_format,
            validate_responses=flag("VALIDATE_RESPONSES", False),
            migrate_on_start=flag("MIGRATE_ON_START", False),
            cursor_secret=text("CURSOR_SECRET"),
            require_if_match=flag("REQUIRE_IF_MATCH", False),
            require_idempotency_key=flag("REQUIRE_IDEMPOTENCY_KEY", False),
            idempotency_key_ttl_seconds=numeric("IDEMPOTENCY_KEY_TTL_SECONDS", 86400, 60, 2592000),
            header_timeout_seconds=numeric("HEADER_TIMEOUT_SECONDS", 10.0, 0.1, 300.0),
            graceful_timeout_seconds=numeric("GRACEFUL_TIMEOUT_SECONDS", 10, 1, 600),
            public_url=(text("PUBLIC_URL") or "").rstrip("/") or None,
            mcp_enabled=flag("MCP_ENABLED", True),
            workers=numeric("WORKERS", 1, 1, 64),
            rate_limit_per_minute=numeric("RATE_LIMIT_PER_MINUTE", 600, 0, 1_000_000),
            auth_failure_limit_per_minute=numeric(
                "AUTH_FAILURE_LIMIT_PER_MINUTE", 60, 0, 1_000_000
            ),
            rate_limit_mode=choice("RATE_LIMIT_MODE", ("batched", "exact"), "batched"),
            rate_limit_sync_ms=numeric("RATE_LIMIT_SYNC_MS", 100, 10, 10_000),
            metrics_token=text("METRICS_TOKEN"),
            server=server,
            forwarded_allow_ips=words("FORWARDED_ALLOW_IPS"),
            forwarded_header=forwarded_header,
            allowed_hosts=tuple(h.lower() for h in words("ALLOWED_HOSTS")),
            cors_origins=words("CORS_ORIGINS"),
            cors_allow_credentials=flag("CORS_ALLOW_CREDENTIALS", False),
            cors_max_age_seconds=numeric("CORS_MAX_AGE_SECONDS", 600, 0, 86400),
        )
        errors.extend(settings.problems())
        if errors:
            raise SettingsError("; ".join(errors))
        return settings

    def problems(self) -> list[str]:
        """What is wrong with the values themselves, whatever the command."""
        found = [] if self.jwt_secret is None else secret_problems(self.jwt_secret)
        if self.cursor_secret is not None:
            found += secret_problems(self.cursor_secret, "CURSOR_SECRET")
        if self.metrics_token is not None:
            found += secret_problems(self.metrics_token, "METRICS_TOKEN")
        found += self._algorithm_problems()
        if self.database_url is not None:
            found += database_url_problems(self.database_url)
        if self.jwt_jwks_url is not None:
            url = urlsplit(self.jwt_jwks_url)
            if url.scheme != "https" and not (url.scheme == "http" and url.hostname in _LOOPBACK):
                found.append("JWT_JWKS_URL must be an https:// URL (http:// only on loopback)")
        if self.public_url is not None:
            url = urlsplit(self.public_url)
            if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment:
                found.append("PUBLIC_URL must be an http:// or https:// URL with no query")
        try:
            trusted_networks(self.forwarded_allow_ips)
        except ValueError as error:
            found.append(f"{error} (write addresses or CIDR networks, or *)")
        bad_hosts = [h for h in self.allowed_hosts if not _HOST.fullmatch(h)]
        if bad_hosts:
            found.append(
                f"ALLOWED_HOSTS entry {bad_hosts[0][:60]!r} is not a host name or address, "
                "optionally with :port or :*"
            )
        found += self._cors_problems()
        if self.log_level not in {"critical", "error", "warning", "info", "debug"}:
            found.append("LOG_LEVEL must be one of critical, error, warning, info, debug")
        return found

    def _cors_problems(self) -> list[str]:
        """CORS_ORIGINS: exact origins as browsers send them, or `*` alone without credentials."""
        if "*" in self.cors_origins:
            if len(self.cors_origins) > 1:
                return ["CORS_ORIGINS is either * or a list of origins, not both"]
            if self.cors_allow_credentials:
                return ["CORS_ORIGINS=* cannot go with CORS_ALLOW_CREDENTIALS=true; name origins"]
            return []
        bad = [o for o in self.cors_origins if not _ORIGIN.fullmatch(o)]
        if bad:
            return [
                f"CORS_ORIGINS entry {bad[0][:60]!r} is not an origin: write scheme://host[:port]"
                " in lower case, with no path or trailing slash (https://app.example.com)"
            ]
        return []

    def _algorithm_problems(self) -> list[str]:
        if self.jwt_algorithms is None:
            return []
        known = set(HMAC_ALGORITHMS) | set(ASYMMETRIC_ALGORITHMS)
        unknown = [a for a in self.jwt_algorithms if a not in known]
        if unknown:
            return [
                f"JWT_ALGORITHMS has unsupported algorithms {unknown}; use some of {sorted(known)}"
            ]
        found = []
        if self.jwt_secret is not None and not self.secret_algorithms():
            found.append("JWT_ALGORITHMS leaves no HS* algorithm for JWT_SECRET")
        if self.jwt_jwks_url is not None and not self.jwks_algorithms():
            found.append("JWT_ALGORITHMS leaves no RS*/PS*/ES*/EdDSA algorithm for JWT_JWKS_URL")
        return found

    def secret_algorithms(self) -> tuple[str, ...]:
        """What JWT_SECRET may verify: HMAC algorithms only."""
        if self.jwt_algorithms is None:
            return DEFAULT_SECRET_ALGORITHMS
        return tuple(a for a in self.jwt_algorithms if a in HMAC_ALGORITHMS)

    def jwks_algorithms(self) -> tuple[str, ...]:
        """What keys from JWT_JWKS_URL may verify: asymmetric algorithms only."""
        if self.jwt_algorithms is None:
            return DEFAULT_JWKS_ALGORITHMS
        return tuple(a for a in self.jwt_algorithms if a in ASYMMETRIC_ALGORITHMS)

    def require_database(self) -> None:
        """Production names its database; the embedded one is for development."""
        if self.environment == "production" and self.database_url is None:
            raise SettingsError(
                "DATABASE_URL is required when APP_ENV=production, the default outside `make`"
                " (for the embedded PostgreSQL of development, set APP_ENV=development)"
            )

    def require_serving(self) -> None:
        """Everything a server needs before it accepts a request."""
        self.require_database()
        if self.jwt_jwks_url is None:
            self.signing_secret()
        self.cursor_key()

    def base_url(self) -> str:
        """Where clients reach this server: PUBLIC_URL, else http://HOST:PORT (localhost when
        listening on every interface)."""
        if self.public_url is not None:
            return self.public_url
        host = "localhost" if _unspecified(self.host) else self.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def cursor_key(self) -> bytes:
        """The key that signs pagination cursors, the same in every worker and host: a key of
        its own derived one way from CURSOR_SECRET, else from the HS256 secret, else from
        DATABASE_URL (its password), else in development from the secret under DATA_DIR.

        A forged cursor could only move the forger through their own tasks (every query is
        scoped to the token's subject, and decoded cursors are checked in full), so a key from
        the database password is enough where no secret of our own is configured."""
        base = self.cursor_secret or self.shared_secret() or self.database_url
        if base is None:
            base = dev_secret(self.data_dir)
        return hmac.new(base.encode(), b"tasks-api cursor key v1", hashlib.sha256).digest()

    def shared_secret(self) -> str | None:
        """The HMAC secret the server verifies with, if any: JWT_SECRET, else in development
        (when no JWKS is configured either) the one created under DATA_DIR."""
        if self.jwt_secret is not None:
            return self.jwt_secret
        if self.jwt_jwks_url is None and self.environment == "development":
            return dev_secret(self.data_dir)
        return None

    def signing_secret(self) -> str:
        """The HS256 secret for minting tokens; refused when there is none to use."""
        secret = self.shared_secret()
        if secret is None:
            raise SettingsError(
                "JWT_SECRET is required when APP_ENV=production (or set JWT_JWKS_URL)"
                if self.environment == "production"
                else "JWT_SECRET is required to sign tokens when JWT_JWKS_URL is set"
            )
        return secret


def _unspecified(host: str) -> bool:
    """Whether host means every interface (0.0.0.0, ::), which no client can connect to."""
    try:
        return not host or ipaddress.ip_address(host).is_unspecified
    except ValueError:  # a host name
        return False


def database_url_problems(url: str) -> list[str]:
    """Why DATABASE_URL cannot be used, if it cannot (without echoing it: it holds a password)."""
    try:
        connect_arguments(url)
    except ValueError as error:
        return [str(error)]
    except Exception:  # SQLAlchemy's URL parser raises its own error types
        return ["DATABASE_URL is not a valid PostgreSQL URL"]
    return []


def secret_problems(secret: str, name: str = "JWT_SECRET") -> list[str]:
    """Why a configured secret must not be used, if it must not."""
    found = []
    if len(secret.encode()) < MIN_SECRET_BYTES:
        found.append(f"{name} must be at least {MIN_SECRET_BYTES} bytes")
    squashed = re.sub(r"[^a-z0-9]", "", secret.lower())
    if any(word in squashed for word in _PLACEHOLDER_WORDS) or len(set(secret)) < 8:
        found.append(f"{name} looks like a placeholder; generate a random one")
    return found


def dev_secret(data_dir: Path) -> str:
    """The development signing secret under data_dir, created once with owner-only access.

    Written to a private temporary file and linked into place, so concurrent starts agree on
    one secret and nobody reads a half-written file.
    """
    path = data_dir / DEV_KEY_FILE
    if not path.is_file():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=data_dir, prefix=".jwt-secret-")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process won the race; use its secret
        finally:
            os.unlink(temporary)
    return path.read_text().strip()
