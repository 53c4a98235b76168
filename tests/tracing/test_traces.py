"""Traces, as an operator's collector receives them: a real OTLP/HTTP receiver (the protobuf
payload decoded by OpenTelemetry's proto package) gets the spans of requests, tool calls and
statements from a server that OTEL_* variables point at it."""

from __future__ import annotations

import json
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from handlers.services.settings import Settings
from tests.helpers import MODES, TEST_SECRET, bearer, call, parse, serving, token_for, value
from tests.live import TASKS_API, environment, serving_production
from tests.mcp.test_stdio import tool_call
from tests.tracing.receiver import Receiver, Span, receiving, tracing_environment

SERVER, INTERNAL, CLIENT = 2, 1, 3  # OTLP's span kinds
ERROR = 2  # OTLP's status code


def traceparent(sampled: bool = True) -> tuple[str, str, str]:
    """A W3C traceparent a client would send: (header, trace id, parent span id)."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}", trace_id, span_id


def by_name(spans: list[Span], name: str) -> Span:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, f"{name}: {[s.name for s in spans]}"
    return found[0]


def complete(receiver: Receiver, trace_id: str, names: set[str]) -> list[Span]:
    """The spans of trace_id, once all of names and its request's (server) span have arrived
    (the request's ends last, and may come in a later export)."""

    def arrived(_: list[Span]) -> bool:
        spans = receiver.trace(trace_id)
        return names <= {s.name for s in spans} and any(s.kind == SERVER for s in spans)

    receiver.wait_for(arrived, what=f"spans {sorted(names)} of {trace_id}")
    return receiver.trace(trace_id)


def parameters_absent(spans: list[Span], *values: str) -> None:
    """No span carries any of values (what the client sent, the user's id) in any attribute."""
    for span in spans:
        for name, held in span.attributes.items():
            for secret in values:
                assert secret not in str(held), f"{span.name} {name} holds {secret!r}"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with receiving() as received:
        yield received


@pytest.fixture(scope="module")
def traced(settings: Settings, receiver: Receiver) -> Iterator[str]:
    """A server (in this process) tracing every request to receiver, as the SDK does by default
    (parentbased_always_on: a client's decision is followed)."""
    otel = tracing_environment(receiver, OTEL_SERVICE_NAME="tasks-api-test")
    with serving(settings, otel) as url:
        yield url


@pytest.fixture
def user() -> str:
    return f"traced-{uuid.uuid4().hex[:10]}"


def test_a_create_continues_the_clients_trace_down_to_its_statement(
    traced: str, receiver: Receiver, user: str
) -> None:
    header, trace_id, parent = traceparent()
    title = f"secret title {uuid.uuid4().hex}"
    answer = httpx.post(
        f"{traced}/api/{user}/tasks", json={"title": title},
        headers={**bearer(user), "traceparent": header, "tracestate": "vendor=opaque"},
    )  # fmt: skip
    assert answer.status_code == 201

    spans = complete(receiver, trace_id, {"tasks.create_task", "tasks.create"})
    request = next(s for s in spans if s.kind == SERVER)
    operation = next(s for s in spans if s.name == "tasks.create_task" and s.kind == INTERNAL)
    statement = by_name(spans, "tasks.create")
    assert request.name == "tasks.create_task"  # the operation, never the path with its user
    assert request.parent_span_id == parent  # the client's span
    assert request.attributes == {
        "http.request.method": "POST",
        "url.scheme": "http",
        "url.path": f"/api/{user}/tasks",
        "http.route": "/api/{user_id}/tasks",
        "http.response.status_code": 201,
    }
    assert operation.parent_span_id == request.span_id
    assert operation.attributes == {"tasks_api.status": 201}
    assert statement.parent_span_id == operation.span_id
    assert statement.kind == CLIENT
    assert statement.attributes["db.system.name"] == "postgresql"
    assert statement.attributes["db.operation.name"] == "INSERT"
    assert statement.attributes["db.collection.name"] == "tasks"
    assert statement.attributes["db.namespace"]
    assert statement.attributes["db.query.text"].startswith("INSERT INTO tasks")
    assert "$1" in statement.attributes["db.query.text"]  # placeholders, never the values
    parameters_absent(spans, title)
    assert request.resource["service.name"] == "tasks-api-test"
    assert request.resource["service.version"]


def test_an_idempotent_create_shows_its_steps_and_their_statements(
    traced: str, receiver: Receiver, user: str
) -> None:
    key = f"key-{uuid.uuid4().hex}"
    traces = []
    for _ in range(2):  # the first does the work; the second is its replay
        header, trace_id, _ = traceparent()
        answer = httpx.post(
            f"{traced}/api/{user}/tasks", json={"title": "once"},
            headers={**bearer(user), "traceparent": header, "Idempotency-Key": key},
        )  # fmt: skip
        assert answer.status_code == 201
        traces.append(trace_id)

    first = complete(receiver, traces[0], {"idempotency.store", "tasks.create"})
    claim = by_name(first, "idempotency.claim")
    assert claim.attributes == {"tasks_api.replay": False}
    assert {s.name for s in first if s.parent_span_id == claim.span_id} == {
        "idempotency.lock", "idempotency.find",
    }  # fmt: skip
    store = by_name(first, "idempotency.store")
    assert [s.name for s in first if s.parent_span_id == store.span_id] == ["idempotency.remember"]
    replay = complete(receiver, traces[1], {"idempotency.claim", "tasks.create_task"})
    assert by_name(replay, "idempotency.claim").attributes == {"tasks_api.replay": True}
    assert "tasks.create" not in {s.name for s in replay}  # replayed, not written again
    parameters_absent([*first, *replay], key)


def test_a_refusal_is_an_answer_not_a_failure_and_keeps_its_request_id(
    traced: str, receiver: Receiver, user: str
) -> None:
    header, trace_id, _ = traceparent()
    answer = httpx.get(
        f"{traced}/api/{user}/tasks/{uuid.uuid4()}",
        headers={**bearer(user), "traceparent": header, "X-Request-ID": "req-traced-404"},
    )
    assert answer.status_code == 404
    assert answer.json()["request_id"] == "req-traced-404"

    spans = complete(receiver, trace_id, {"tasks.get_task", "tasks.get"})
    request = next(s for s in spans if s.kind == SERVER)
    assert request.attributes["http.response.status_code"] == 404
    assert request.attributes["http.route"] == "/api/{user_id}/tasks/{task_id}"
    operation = next(s for s in spans if s.kind == INTERNAL)
    assert operation.attributes == {"tasks_api.status": 404}
    assert all(s.status_code != ERROR for s in spans)


def test_requests_that_are_no_operation_are_named_without_their_path(
    traced: str, receiver: Receiver, user: str
) -> None:
    names = {}
    for method, path in (("GET", "/metrics"), ("GET", f"/api/{user}/nothing-here")):
        header, trace_id, _ = traceparent()
        httpx.request(method, f"{traced}{path}", headers={"traceparent": header})
        names[path] = trace_id
    assert by_name(complete(receiver, names["/metrics"], {"GET /metrics"}), "GET /metrics")
    unknown = receiver.wait_for(lambda _: bool(receiver.trace(names[f"/api/{user}/nothing-here"])))
    assert [s.name for s in unknown if s.trace_id == names[f"/api/{user}/nothing-here"]] == ["GET"]


def test_the_sampler_decides_whether_a_clients_decision_is_trusted(
    settings: Settings, traced: str, receiver: Receiver, user: str
) -> None:
    # parentbased_always_on (the default): a client that did not sample is followed.
    unsampled, not_followed, _ = traceparent(sampled=False)
    httpx.get(f"{traced}/api/{user}/tasks", headers={**bearer(user), "traceparent": unsampled})
    sampled, followed, _ = traceparent()
    httpx.get(f"{traced}/api/{user}/tasks", headers={**bearer(user), "traceparent": sampled})
    complete(receiver, followed, {"tasks.list_tasks", "tasks.list"})  # exported after the first
    assert receiver.trace(not_followed) == []

    # traceidratio: the server decides (here: all), still continuing the client's trace.
    otel = tracing_environment(receiver, OTEL_TRACES_SAMPLER="traceidratio",
                               OTEL_TRACES_SAMPLER_ARG="1.0")  # fmt: skip
    with serving(settings, otel) as url:
        unsampled, overruled, parent = traceparent(sampled=False)
        answer = httpx.get(
            f"{url}/api/{user}/tasks", headers={**bearer(user), "traceparent": unsampled}
        )
        assert answer.status_code == 200
        spans = complete(receiver, overruled, {"tasks.list_tasks", "tasks.list"})
    assert next(s for s in spans if s.kind == SERVER).parent_span_id == parent


@pytest.mark.parametrize(
    "headers",
    [
        [("traceparent", "00-zzzz-not-a-trace-01")],
        [("traceparent", "00-" + "0" * 32 + "-" + "1" * 16 + "-01")],  # an all-zero trace id
        [("traceparent", "x" * 4000), ("tracestate", "y=" + "z" * 8000)],
        [("traceparent", traceparent()[0]), ("traceparent", traceparent()[0])],
        [("tracestate", ",".join(f"k{i}=v" for i in range(100)))],
    ],
    ids=["garbage", "zero-trace-id", "huge", "repeated", "tracestate-without-parent"],
)
def test_odd_trace_headers_never_fail_a_request(
    traced: str, receiver: Receiver, user: str, headers: list[tuple[str, str]]
) -> None:
    sent = httpx.Headers([*bearer(user).items(), *headers])
    request_id = f"odd-{uuid.uuid4().hex}"
    sent["X-Request-ID"] = request_id
    answer = httpx.get(f"{traced}/api/{user}/tasks", headers=sent)
    assert answer.status_code == 200
    # Traced all the same: a trace of its own, or the first of two parents.
    spans = receiver.wait_for(
        lambda got: any(s.attributes.get("url.path") == f"/api/{user}/tasks" for s in got)
    )
    mine = [s for s in spans if s.attributes.get("url.path") == f"/api/{user}/tasks"]
    assert len(mine) == 1
    assert mine[0].trace_id != "0" * 32


@pytest.mark.parametrize("mode", MODES)
def test_an_mcp_tool_call_is_one_trace_down_to_its_statements(
    traced: str, receiver: Receiver, user: str, mode: str
) -> None:
    title = f"from an agent {uuid.uuid4().hex}"
    header, trace_id, _ = traceparent()
    is_error, content = call(traced, token_for(user), "add_task", {"title": title}, mode,
                             headers={"traceparent": header})  # fmt: skip
    assert not is_error

    spans = complete(receiver, trace_id, {"tools/call add_task", "tasks.create"})
    tool = by_name(spans, "tools/call add_task")
    request = next(s for s in spans if s.span_id == tool.parent_span_id)
    assert request.kind == SERVER
    assert request.name == "POST /mcp"
    assert request.attributes["http.route"] == "/mcp"
    assert tool.attributes == {
        "mcp.method.name": "tools/call",
        "gen_ai.tool.name": "add_task",
        "gen_ai.operation.name": "execute_tool",
        "tasks_api.outcome": "success",
    }
    operation = by_name(spans, "tasks.create_task")
    assert operation.parent_span_id == tool.span_id
    assert by_name(spans, "tasks.create").parent_span_id == operation.span_id
    parameters_absent(spans, title, content["data"]["id"])


def test_a_failed_tool_call_says_so(traced: str, receiver: Receiver, user: str) -> None:
    header, trace_id, _ = traceparent()
    is_error, _ = call(traced, token_for(user), "get_task", {"task_id": str(uuid.uuid4())},
                       headers={"traceparent": header})  # fmt: skip
    assert is_error
    spans = complete(receiver, trace_id, {"tools/call get_task", "tasks.get"})
    tool = by_name(spans, "tools/call get_task")
    assert tool.attributes["tasks_api.outcome"] == "error"
    assert tool.attributes["error.type"] == "tool_error"


def test_the_tools_over_stdio_export_one_trace_per_call_and_log_its_id(
    database_url: str, receiver: Receiver, user: str
) -> None:
    env = environment(
        APP_ENV="production", DATABASE_URL=database_url, JWT_SECRET=TEST_SECRET,
        TASKS_API_TOKEN=token_for(user), LOG_LEVEL="info", LOG_FORMAT="json",
        **tracing_environment(receiver, OTEL_SERVICE_NAME="tasks-api-stdio"),
    )  # fmt: skip
    # A host's lines; stdin closes after them, and the process answers them and exits.
    run = subprocess.run(
        [str(TASKS_API), "mcp"], env=env, capture_output=True, text=True, timeout=60,
        input=tool_call(1, "add_task", {"title": "over stdio, traced"}) + "\n", check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.splitlines()[-1])["result"]["isError"] is False
    # What it had queued, it exported as it stopped: nothing to wait for but the receiver.
    spans = receiver.wait_for(lambda got: bool(_of("tasks-api-stdio", "tasks.create", got)))
    tool = _of("tasks-api-stdio", "tools/call add_task", spans)[0]
    assert tool.kind == SERVER
    assert tool.parent_span_id == ""  # the root of its own trace
    assert tool.attributes["tasks_api.outcome"] == "success"
    trace = receiver.trace(tool.trace_id)
    operation = by_name(trace, "tasks.create_task")
    assert operation.parent_span_id == tool.span_id
    assert by_name(trace, "tasks.create").parent_span_id == operation.span_id
    lines = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    call_line = next(line for line in lines if line.get("event") == "tool call")
    assert call_line["trace_id"] == tool.trace_id
    assert call_line["request_id"]


@pytest.mark.parametrize("server", ["uvicorn", "granian"])
def test_every_worker_exports_and_every_log_line_has_the_trace_id(
    database_url: str, receiver: Receiver, tmp_path: Path, user: str, server: str
) -> None:
    otel = tracing_environment(receiver, OTEL_SERVICE_NAME=f"tasks-api-{server}")
    with serving_production(database_url, TEST_SECRET, tmp_path, "--workers", "2",
                            SERVER=server, **otel) as live:  # fmt: skip
        sent: dict[str, str] = {}
        # A connection per request, so that either worker may take each.
        with httpx.Client(base_url=live.url, headers=bearer(user), timeout=30,
                          limits=httpx.Limits(max_keepalive_connections=0)) as http:  # fmt: skip
            pids: set[int] = set()
            for _ in range(400):  # until both workers have answered (each logs its pid)
                header, trace_id, _ = traceparent()
                answer = http.get(f"/api/{user}/tasks", headers={"traceparent": header})
                assert answer.status_code == 200
                sent[answer.headers["X-Request-ID"]] = trace_id
                pids = {int(p) for p in _pids(live.log)}
                if len(pids) == 2:
                    break
        assert len(pids) == 2
    service = f"tasks-api-{server}"
    exported = receiver.wait_for(
        lambda got: {s.resource.get("process.pid") for s in _of(service, None, got)} >= pids
    )
    assert {s.trace_id for s in exported} >= set(sent.values())
    lines = [json.loads(line) for line in live.log.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("event") == "request"]
    assert {line["request_id"]: line["trace_id"] for line in requests} == sent


def _of(service: str, name: str | None, spans: list[Span]) -> list[Span]:
    """The spans of service (named name, unless None)."""
    return [s for s in spans if s.resource["service.name"] == service and name in (None, s.name)]


def _pids(log: str) -> list[str]:
    return [json.loads(line)["pid"] for line in log.splitlines()
            if line.startswith("{") and '"event":"request"' in line.replace(" ", "")]  # fmt: skip


@pytest.mark.parametrize("trouble", ["stopped", "hanging"])
def test_a_collector_in_trouble_never_holds_up_a_request_and_drops_are_counted(
    settings: Settings, user: str, trouble: str
) -> None:
    with receiving() as collector:
        if trouble == "stopped":
            collector.stop()  # connections refused
        else:
            collector.hang()  # accepted, never answered
        otel = tracing_environment(
            collector, OTEL_BSP_MAX_QUEUE_SIZE="8", OTEL_EXPORTER_OTLP_TIMEOUT="1"
        )
        with serving(settings, otel) as url, httpx.Client(base_url=url, timeout=10) as http:
            for number in range(60):
                answer = http.post(f"/api/{user}/tasks", json={"title": f"t{number}"},
                                   headers=bearer(user))  # fmt: skip
                assert answer.status_code == 201
            # Spans past the queue's 8 were dropped as they ended, and counted at once.
            assert _dropped(http)["queue_full"] > 0
            if trouble == "stopped":
                # The batches that were taken fail within the export timeout (1 s).
                for _ in range(200):  # each scrape is a request: bounded, no sleeping
                    if _dropped(http)["export_failed"] > 0:
                        break
                    http.post(f"/api/{user}/tasks", json={"title": "more"}, headers=bearer(user))
                assert _dropped(http)["export_failed"] > 0
        assert collector.spans == []


def _dropped(http: httpx.Client) -> dict[str, float]:
    samples = parse(http.get("/metrics").text)
    return {
        reason: value(samples, "tasks_api_trace_spans_dropped_total", reason=reason)
        for reason in ("queue_full", "export_failed")
    }


def test_the_rate_limits_steps_are_traced_where_they_touch_the_database(
    settings: Settings, receiver: Receiver, user: str
) -> None:
    otel = tracing_environment(receiver, OTEL_SERVICE_NAME="tasks-api-limits")
    # exact: each request's count is an upsert, under the request
    with serving(settings, otel, rate_limit_per_minute=1000, rate_limit_mode="exact") as url:
        header, trace_id, _ = traceparent()
        answer = httpx.get(f"{url}/api/{user}/tasks",
                           headers={**bearer(user), "traceparent": header})  # fmt: skip
        assert answer.status_code == 200
        spans = complete(receiver, trace_id, {"rate_limit.count", "rate_limits.hit"})
    count = by_name(spans, "rate_limit.count")
    assert next(s for s in spans if s.span_id == count.parent_span_id).kind == SERVER
    assert by_name(spans, "rate_limits.hit").parent_span_id == count.span_id
    # batched (the default): no statement under the request; each sync a trace of its own
    with serving(settings, otel, rate_limit_per_minute=1000, rate_limit_sync_ms=50) as url:
        header, trace_id, _ = traceparent()
        httpx.get(f"{url}/api/{user}/tasks", headers={**bearer(user), "traceparent": header})
        spans = complete(receiver, trace_id, {"tasks.list_tasks", "tasks.list"})
        assert not [s for s in spans if s.name.startswith("rate_limit")]
        synced = receiver.wait_for(
            lambda got: bool(_of("tasks-api-limits", "rate_limits.add", got))
        )
    add = _of("tasks-api-limits", "rate_limits.add", synced)[0]
    sync = next(s for s in synced if s.span_id == add.parent_span_id)
    assert sync.name == "rate_limit.sync"
    assert sync.parent_span_id == ""
    assert sync.attributes == {"tasks_api.buckets": 1}


def test_a_huge_path_or_query_is_cut_short_on_its_span(
    traced: str, receiver: Receiver, user: str
) -> None:
    header, trace_id, _ = traceparent()
    answer = httpx.get(f"{traced}/api/{user}/tasks", params={"cursor": "A" * 20_000},
                       headers={**bearer(user), "traceparent": header})  # fmt: skip
    assert answer.status_code == 400
    request = next(s for s in complete(receiver, trace_id, set()) if s.kind == SERVER)
    assert request.attributes["http.response.status_code"] == 400
    assert len(request.attributes["url.query"]) == 1024
    assert request.attributes["url.query"].endswith("…")
