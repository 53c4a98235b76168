"""The composition root: the one place that builds the process's services (the database, the
token verifier, cursors, metrics, quotas) and mounts the doors on them: the HTTP API (Connexion's
pipeline with ours inserted, in order), /mcp and MCP over stdio, and the HTTP servers that
`tasks-api serve` runs. The doors never import each other; they meet here."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, ExitStack, asynccontextmanager, nullcontext
from typing import Any

from connexion import AsyncApp, ConnexionMiddleware
from connexion.jsonifier import Jsonifier
from connexion.middleware import MiddlewarePosition
from connexion.middleware.context import ContextMiddleware
from connexion.middleware.request_validation import RequestValidationMiddleware
from connexion.middleware.response_validation import ResponseValidationMiddleware
from connexion.middleware.routing import RoutingMiddleware
from connexion.middleware.swagger_ui import SwaggerUIMiddleware

from contracts.document import load
from handlers.core.context import Services
from handlers.http.cors import ContractCORS
from handlers.http.docs import AuthoredSpecMiddleware
from handlers.http.edge import EdgeMiddleware
from handlers.http.forwarded import ClientAddressMiddleware
from handlers.http.limits import AuthFailureLimitMiddleware, UserQuota, UserRateLimitMiddleware
from handlers.http.observe import MetricsMiddleware, RequestLogMiddleware
from handlers.http.operations import OperationsApp, resolver
from handlers.http.ownership import OwnershipMiddleware
from handlers.http.problems import register_problem_handlers
from handlers.http.routing import DocsRouting, OperationRouting
from handlers.http.security import SECURITY_MAP
from handlers.http.tracing import TraceMiddleware, TraceNaming
from handlers.http.validation import VALIDATOR_MAP, ContractValidation
from handlers.services.jsonifier import Orjson
from handlers.services.metrics import Metrics
from handlers.services.rate_counter import counting
from handlers.services.security import Clock, TokenVerifier
from handlers.services.settings import (
    Settings,
    SettingsError,
    trusted_networks,
)
from handlers.services.state import STATE_KEY, AppState
from handlers.services.tracing import from_environment as tracing_from
from persistence.cursors import Cursors
from persistence.database import connect

GC_THRESHOLD = 50_000
logger = logging.getLogger(__name__)

# Connexion's own pipeline (ConnexionMiddleware.default_middlewares: errors, docs, routing,
# security, validation, lifespan, context), with ours inserted at its documented positions.
# Every request passes them in order; the handler runs after the last.
OURS = [
    # behind trusted proxies (FORWARDED_ALLOW_IPS only), the client's own address
    # (handlers/http/forwarded.py)
    (ClientAddressMiddleware, MiddlewarePosition.BEFORE_EXCEPTION),
    # OTEL_* only: the request's trace span, continuing a client's traceparent
    # (handlers/http/tracing.py)
    (TraceMiddleware, MiddlewarePosition.BEFORE_EXCEPTION),
    # X-Request-ID, one log line per request, and its metrics (handlers/http/observe.py)
    (RequestLogMiddleware, MiddlewarePosition.BEFORE_EXCEPTION),
    # OTEL_* only: names the trace span by the operation it was routed to
    (TraceNaming, MiddlewarePosition.BEFORE_EXCEPTION),
    # CORS_ORIGINS only: browser pages on those origins, every answer below included
    # (handlers/http/cors.py)
    (ContractCORS, MiddlewarePosition.BEFORE_EXCEPTION),
    # addresses that keep failing authentication get 429 (handlers/http/limits.py)
    (AuthFailureLimitMiddleware, MiddlewarePosition.BEFORE_EXCEPTION),
    # GET /metrics, for Prometheus; METRICS_TOKEN guards it when set (handlers/http/observe.py)
    (MetricsMiddleware, MiddlewarePosition.BEFORE_EXCEPTION),
    # odd paths, repeated headers, Accept, media-type casing (handlers/http/edge.py)
    (EdgeMiddleware, MiddlewarePosition.BEFORE_SWAGGER),
    # /openapi.json and /openapi.yaml as written (handlers/http/docs.py)
    (AuthoredSpecMiddleware, MiddlewarePosition.BEFORE_SWAGGER),
    # RATE_LIMIT_PER_MINUTE per user, after security (handlers/http/limits.py)
    (UserRateLimitMiddleware, MiddlewarePosition.BEFORE_VALIDATION),
    # path user_id must be the token's subject, after security (handlers/http/ownership.py)
    (OwnershipMiddleware, MiddlewarePosition.BEFORE_VALIDATION),
]


def create_app(
    settings: Settings, *, clock: Clock = time.monotonic, tune_gc: bool = False
) -> AsyncApp:
    """The Tasks API for these settings; nothing is started until the lifespan runs. The clock
    times key caches (tests pass their own to move time). tune_gc changes the garbage
    collector of the whole process, so only the server command asks for it. Traces are as the
    process's OTEL_* variables say (handlers/services/tracing.py), read here, as the app is
    made."""
    settings.require_serving()
    metrics = Metrics()
    contract = load()
    tracing = tracing_from(os.environ, metrics.spans_dropped, str(contract["info"]["version"]))
    verifier = TokenVerifier.from_settings(settings, clock, jwks_fetched=metrics.jwks_fetched)
    cursors = Cursors(settings.cursor_key())

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[dict[str, AppState]]:
        async with (
            connect(
                settings.database_url,
                settings.data_dir,
                pool_size=settings.db_pool_size,
                watcher=metrics,
                tracer=None if tracing is None else tracing.tracer,
            ) as database,
            mcp_serving() as mcp_endpoint,
            counting(
                database, settings.rate_limit_mode, settings.rate_limit_sync_ms / 1000
            ) as counter,
        ):
            if database.trouble is not None:
                logger.warning("database not reachable at start (%s); answering 503 until it is",
                               database.trouble)  # fmt: skip
            if settings.migrate_on_start:
                from persistence.schema import upgrade  # Alembic: about 8 MB, for this only

                await upgrade(database.url)
            metrics.pool_max.set(settings.db_pool_size)
            if tune_gc:
                # What start-up built (the contract, validators, compiled statements) lives as
                # long as the process: keep it out of every later collection, and collect young
                # objects less often, which shortens the pauses that make slow requests slow.
                gc.collect()
                gc.freeze()
                gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
            try:
                services = Services(
                    database=database,
                    cursors=cursors,
                    require_if_match=settings.require_if_match,
                    require_idempotency_key=settings.require_idempotency_key,
                    idempotency_key_ttl_seconds=settings.idempotency_key_ttl_seconds,
                )
                yield {
                    STATE_KEY: AppState(
                        services=services,
                        verifier=verifier,
                        counter=counter,
                        mcp=mcp_endpoint,
                        metrics=metrics,
                    )
                }
            finally:
                metrics.pool_max.set(0)
                await verifier.aclose()
                if tracing is not None:  # what is queued, exported (for at most 2 s)
                    await asyncio.to_thread(tracing.shutdown)

    quota = UserQuota(settings.rate_limit_per_minute)  # every door's requests count alike
    # Response validation routes every request to an operation; leave it out when it is off.
    # Connexion's ContextMiddleware only sets the context variables of its own handler
    # decorators, which OperationsApp replaces.
    pipeline = [
        m
        for m in ConnexionMiddleware.default_middlewares
        if (settings.validate_responses or m is not ResponseValidationMiddleware)
        and m is not ContextMiddleware
    ]
    app = AsyncApp(__name__, lifespan=lifespan, middlewares=pipeline, jsonifier=Jsonifier(Orjson))
    # The operations are called by our innermost app (handlers/http/operations.py); the
    # pipeline is built around it when the app first runs.
    app._middleware_app = app.middleware.app = OperationsApp()
    options: dict[type, dict[str, Any]] = {
        AuthoredSpecMiddleware: {"document": contract},
        RequestLogMiddleware: {"log_requests": settings.access_log, "metrics": metrics},
        MetricsMiddleware: {"metrics": metrics, "token": settings.metrics_token},
        AuthFailureLimitMiddleware: {"per_minute": settings.auth_failure_limit_per_minute},
        UserRateLimitMiddleware: {"quota": quota},
    }
    if settings.forwarded_allow_ips:
        options[ClientAddressMiddleware] = {
            "trusted": trusted_networks(settings.forwarded_allow_ips),
            "header": settings.forwarded_header,
        }
    if settings.cors_origins:
        options[ContractCORS] = {
            "contract": contract,
            "origins": settings.cors_origins,
            "allow_credentials": settings.cors_allow_credentials,
            "max_age": settings.cors_max_age_seconds,
            "mcp": settings.mcp_enabled,
        }
    if tracing is not None:
        options[TraceMiddleware] = {"tracing": tracing}
        options[TraceNaming] = {"contract": contract}
    optional = (ClientAddressMiddleware, ContractCORS, TraceMiddleware, TraceNaming)
    for middleware, position in OURS:
        if middleware not in optional or middleware in options:
            app.add_middleware(middleware, position=position, **options.get(middleware, {}))
    mcp_serving = _mount_mcp(app, contract, settings, verifier, quota)
    # Three of Connexion's layers, each with a short way for the usual request: routing
    # (handlers/http/routing.py) and request validation, which builds its validators once per
    # operation rather than per request (handlers/http/validation.py). They take those layers'
    # places once the positions above are taken.
    for theirs, ours in (
        (SwaggerUIMiddleware, DocsRouting),
        (RoutingMiddleware, OperationRouting),
        (RequestValidationMiddleware, ContractValidation),
    ):
        pipeline[pipeline.index(theirs)] = ours
    app.add_api(
        contract,
        resolver=resolver(),
        strict_validation=True,
        validate_responses=settings.validate_responses,
        validator_map=VALIDATOR_MAP,
        security_map=SECURITY_MAP,
    )
    register_problem_handlers(app, contract["paths"])
    return app


def _mount_mcp(
    app: AsyncApp,
    contract: dict[str, Any],
    settings: Settings,
    verifier: TokenVerifier,
    quota: UserQuota,
) -> Callable[[], AbstractAsyncContextManager[Any]]:
    """/mcp: the same operations as MCP tools (handlers/mcp/), beside the docs in the pipeline;
    what the lifespan runs to serve it. With MCP_ENABLED=false the MCP SDK is never imported
    (it costs about 35 MB and a second of start-up per process)."""
    if not settings.mcp_enabled:
        return lambda: nullcontext(None)
    from handlers.mcp import http as mcp_http
    from handlers.mcp.server import create_server

    app.add_middleware(
        mcp_http.McpMiddleware, position=MiddlewarePosition.BEFORE_SWAGGER, settings=settings
    )
    agents = create_server(contract, mcp_http.caller)
    return lambda: mcp_http.serving(agents, settings, verifier, quota.admit)


def worker_app() -> AsyncApp:
    """One worker of `tasks-api serve --workers N`: its own logging, GC tuning and app, from the
    environment the server command prepared."""
    from handlers.services.logs import configure

    settings = Settings.from_env()
    configure(settings.log_level, settings.log_format)
    return create_app(settings, tune_gc=True)


def app_from_env() -> AsyncApp:
    """Factory for ASGI servers: `uvicorn --factory handlers.root:app_from_env`."""
    return create_app(Settings.from_env())


def serve(settings: Settings, workers: int, stack: ExitStack) -> None:
    """`tasks-api serve`: the API and /mcp over HTTP, in `workers` processes, until stopped;
    what they share is released by stack."""
    if settings.server == "granian":
        _serve_granian(settings, workers, stack)
    else:
        _serve_uvicorn(settings, workers, stack)


def serve_stdio(settings: Settings) -> None:
    """`tasks-api mcp`: the MCP tools over stdin and stdout, for the user whose token is in
    TASKS_API_TOKEN, until the host closes stdin."""
    from handlers.mcp import stdio
    from handlers.mcp.server import Caller

    quota = UserQuota(settings.rate_limit_per_minute)  # over stdio too, as for every door

    async def admit(who: Caller) -> None:
        await quota.admit({"state": who.state}, who.subject)

    token = os.environ.get(stdio.TOKEN_VARIABLE)
    asyncio.run(stdio.serve(settings, token, lambda: create_app(settings), admit))


def _serve_uvicorn(settings: Settings, workers: int, stack: ExitStack) -> None:
    import uvicorn

    from handlers.http.protocol import bounded_protocol
    from handlers.root import create_app

    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "log_config": None,  # tasks-api's own (handlers/services/logs.py), set up by main()
        "access_log": False,  # one line per request comes from the app, with more in it
        "server_header": False,
        # The app reads X-Forwarded-For itself, and only from FORWARDED_ALLOW_IPS (uvicorn's
        # own would trust loopback peers by default, and not exist under Granian).
        "proxy_headers": False,
        "timeout_graceful_shutdown": settings.graceful_timeout_seconds,
    }
    if workers == 1:
        app = create_app(settings, tune_gc=True)
        http = bounded_protocol(settings.header_timeout_seconds)
        uvicorn.run(app, http=http, **common)
        return
    from handlers.http.shutdown import Supervisor

    _prepare_workers(settings, stack)
    # Each worker process builds the app from the environment (handlers/root.py).
    config = uvicorn.Config(
        "handlers.root:worker_app", factory=True, workers=workers,
        http="handlers.http.protocol:EnvironmentBoundedProtocol", **common,
    )  # fmt: skip
    sock = config.bind_socket()
    # Listening before the workers start: a connection made while one starts or restarts
    # waits in the backlog for a worker, rather than being refused.
    sock.listen(config.backlog)
    with contextlib.suppress(KeyboardInterrupt):
        Supervisor(config, sockets=[sock]).run()


def _serve_granian(settings: Settings, workers: int, stack: ExitStack) -> None:
    """SERVER=granian: Granian's Rust HTTP server runs the same app (the lifespan included) in
    `workers` processes it starts, restarts when one dies, and stops gracefully on SIGTERM."""
    try:
        from granian.constants import HTTPModes, Interfaces, Loops
        from granian.http import HTTP1Settings
        from granian.log import LogLevels
        from granian.server import Server as Granian
    except ImportError as error:
        raise SettingsError(
            "SERVER=granian needs Granian: install tasks-api[granian]"
            " (`uv sync` installs it in development)"
        ) from error
    from handlers.http.edge import MAX_HEAD_BYTES

    _prepare_workers(settings, stack)
    # Granian's own records go through the root logger, rendered like every other.
    routed = {"handlers": [], "propagate": True}
    server = Granian(
        "handlers.root:worker_app",
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,  # with the lifespan
        workers=workers,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        http1_settings=HTTP1Settings(
            header_read_timeout=int(settings.header_timeout_seconds * 1000),
            max_buffer_size=MAX_HEAD_BYTES,
        ),
        log_level=LogLevels(settings.log_level),
        log_dictconfig={"loggers": {"_granian": dict(routed), "granian.access": dict(routed)}},
        log_access=False,  # one line per request comes from the app
        respawn_failed_workers=True,
        workers_kill_timeout=settings.graceful_timeout_seconds,
    )
    _preload(settings)
    server.serve()


def _preload(settings: Settings) -> None:
    """Granian forks its workers from this process: what each of them would import and parse
    for itself is done here once, and frozen out of the collector's reach, so the workers share
    those pages with this process (copy on write) instead of each holding a copy."""
    load()  # the contract, parsed
    if settings.mcp_enabled:
        import handlers.mcp.http
        import handlers.mcp.server  # noqa: F401 - the MCP SDK, the largest import of all
    gc.collect()
    gc.freeze()


def _prepare_workers(settings: Settings, stack: ExitStack) -> None:
    """What worker processes share, done once here: the embedded database (when no DATABASE_URL),
    the migration, and the development secret; the workers read them from the environment."""
    from handlers.services.settings import dev_secret
    from persistence.embedded import start

    url = settings.database_url
    if url is None:
        server = start(settings.data_dir / "postgres")
        stack.callback(server.stop)
        url = server.url()
        os.environ["DATABASE_URL"] = url
    if settings.migrate_on_start:
        from persistence.schema import upgrade

        asyncio.run(upgrade(url))
    os.environ["MIGRATE_ON_START"] = "false"
    no_key = settings.jwt_secret is None and settings.jwt_jwks_url is None
    if settings.environment == "development" and no_key:
        dev_secret(settings.data_dir)  # made once, before workers race to make it
