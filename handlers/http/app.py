"""The app factory: the contract, the request pipeline in order, and the lifespan."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any

from connexion import AsyncApp, ConnexionMiddleware
from connexion.jsonifier import Jsonifier
from connexion.middleware import MiddlewarePosition
from connexion.middleware.response_validation import ResponseValidationMiddleware

from contracts.tools.document import load
from handlers.context import STATE_KEY, AppState
from handlers.core.context import Services
from handlers.http.cors import ContractCORS
from handlers.http.docs import AuthoredSpecMiddleware
from handlers.http.edge import EdgeMiddleware
from handlers.http.forwarded import ClientAddressMiddleware
from handlers.http.limits import AuthFailureLimitMiddleware, UserQuota, UserRateLimitMiddleware
from handlers.http.observe import MetricsMiddleware, RequestLogMiddleware
from handlers.http.operations import resolver
from handlers.http.ownership import OwnershipMiddleware
from handlers.http.validation import VALIDATOR_MAP
from handlers.jsonifier import Orjson
from handlers.metrics import Metrics
from handlers.problems import register_problem_handlers
from handlers.security import Clock, TokenVerifier
from handlers.settings import Settings, trusted_networks
from persistence.cursors import Cursors
from persistence.database import connect
from persistence.schema import upgrade

GC_THRESHOLD = 50_000
logger = logging.getLogger(__name__)

# Connexion's own pipeline (ConnexionMiddleware.default_middlewares: errors, docs, routing,
# security, validation, lifespan, context), with ours inserted at its documented positions.
# Every request passes them in order; the handler runs after the last.
OURS = [
    # behind trusted proxies (FORWARDED_ALLOW_IPS only), the client's own address
    # (handlers/http/forwarded.py)
    (ClientAddressMiddleware, MiddlewarePosition.BEFORE_EXCEPTION),
    # X-Request-ID, one log line per request, and its metrics (handlers/http/observe.py)
    (RequestLogMiddleware, MiddlewarePosition.BEFORE_EXCEPTION),
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
    collector of the whole process, so only the server command asks for it."""
    settings.require_serving()
    metrics = Metrics()
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
            ) as database,
            mcp_serving() as mcp_endpoint,
        ):
            if database.trouble is not None:
                logger.warning("database not reachable at start (%s); answering 503 until it is",
                               database.trouble)  # fmt: skip
            if settings.migrate_on_start:
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
                        services=services, verifier=verifier, mcp=mcp_endpoint, metrics=metrics
                    )
                }
            finally:
                metrics.pool_max.set(0)
                await verifier.aclose()

    contract = load()
    quota = UserQuota(settings.rate_limit_per_minute)  # every door's requests count alike
    # Response validation routes every request to an operation; leave it out when it is off.
    pipeline = [
        m
        for m in ConnexionMiddleware.default_middlewares
        if settings.validate_responses or m is not ResponseValidationMiddleware
    ]
    app = AsyncApp(__name__, lifespan=lifespan, middlewares=pipeline, jsonifier=Jsonifier(Orjson))
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
    for middleware, position in OURS:
        if middleware not in (ClientAddressMiddleware, ContractCORS) or middleware in options:
            app.add_middleware(middleware, position=position, **options.get(middleware, {}))
    mcp_serving = _mount_mcp(app, contract, settings, verifier, quota)
    app.add_api(
        contract,
        resolver=resolver(),
        strict_validation=True,
        validate_responses=settings.validate_responses,
        validator_map=VALIDATOR_MAP,
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
    from handlers.logs import configure

    settings = Settings.from_env()
    configure(settings.log_level, settings.log_format)
    return create_app(settings, tune_gc=True)


def app_from_env() -> AsyncApp:
    """Factory for ASGI servers: `uvicorn --factory handlers.http.app:app_from_env`."""
    return create_app(Settings.from_env())
