"""The OTEL_* variables: tracing is off unless an endpoint is set, and a value the SDK would
quietly replace with its default stops the server before it starts, saying which."""

from __future__ import annotations

import secrets

import pytest

from handlers.services.settings import SettingsError
from handlers.services.tracing import check, enabled, from_environment
from tests.live import tasks_api

ON = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "tasks"}, False),
        (ON, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({**ON, "OTEL_SDK_DISABLED": "true"}, False),
        ({**ON, "OTEL_SDK_DISABLED": "TRUE "}, False),
        ({**ON, "OTEL_SDK_DISABLED": "false"}, True),
        ({**ON, "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, False),
    ],
)
def test_tracing_is_on_only_with_an_endpoint_and_not_disabled(
    environ: dict[str, str], on: bool
) -> None:
    assert enabled(environ) is on
    made = from_environment(environ, lambda _reason, _count: None)
    assert (made is not None) is on
    if made is not None:
        made.shutdown()


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT must be"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://collector"}, "http:// or https://"),
        ({**ON, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "usually 4318"),
        ({**ON, "OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER must be one of"),
        ({**ON, "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "10%"},
         "a ratio from 0 to 1"),
        ({**ON, "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
          "OTEL_TRACES_SAMPLER_ARG": "1.5"}, "a ratio from 0 to 1"),
        ({**ON, "OTEL_BSP_MAX_QUEUE_SIZE": "-1"}, "OTEL_BSP_MAX_QUEUE_SIZE must be a positive"),
        ({**ON, "OTEL_EXPORTER_OTLP_TIMEOUT": "soon"}, "OTEL_EXPORTER_OTLP_TIMEOUT must be"),
        ({**ON, "OTEL_BSP_MAX_QUEUE_SIZE": "8", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "512"},
         "must not be more than OTEL_BSP_MAX_QUEUE_SIZE"),
    ],
)  # fmt: skip
def test_a_value_the_sdk_would_replace_is_refused(environ: dict[str, str], says: str) -> None:
    with pytest.raises(SettingsError, match=says):
        check(environ)


def test_values_that_are_refused_when_on_are_ignored_when_off() -> None:
    check({"OTEL_TRACES_SAMPLER": "sometimes"})  # no endpoint: nothing is built


def test_the_server_refuses_to_start_and_says_why(database_url: str) -> None:
    run = tasks_api(
        "serve", DATABASE_URL=database_url, JWT_SECRET=secrets.token_hex(32), **ON,
        OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="ten percent",
    )  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.strip() == (
        "tasks-api: OTEL_TRACES_SAMPLER_ARG must be a ratio from 0 to 1, as 0.1"
    )
