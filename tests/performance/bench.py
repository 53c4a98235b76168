"""`make bench`: tasks-api against the usual stack and the overhead floor, in one run.

All three serve the same embedded PostgreSQL with the same data (100 users x 200 tasks), one
uvicorn worker each, no access log, driven by wrk (64 connections, 2 threads, an HS256 token per
request) on 127.0.0.1, interleaved A B C over the rounds so drift hits all alike. Reports req/s,
p50/p99 latency, server CPU ms per request and peak RSS (medians), our ratio to each baseline,
and whether each target holds, as a table and as JSON.

    python -m tests.performance.bench [--rounds 3] [--duration 5] [--scale] [--json PATH]

--scale then grows the table to 2,000,000 rows across users and measures list latency again,
and page 1 against page 1,000 of one user's 25,000 tasks, by cursor and by offset.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import psutil

from handlers.services.security import mint_token
from persistence.database_url import connect_arguments
from persistence.embedded import start
from persistence.schema import upgrade
from tests.live import REPO, TASKS_API, LiveServer, environment, free_port
from tests.tracing.receiver import Receiver

USERS, TASKS_PER_USER = 100, 200
SECRET = "bench-" + uuid.uuid4().hex + uuid.uuid4().hex
# Each simulated user reuses one token (as a browser session does): the default scenarios. The
# "cold" ones send a token never seen before with every request, so no server's token cache
# (tasks-api remembers verified HS256 tokens) can answer; their tokens are minted anew per run.
SCENARIOS = ("list", "get", "create", "replace", "complete", "list cold", "create cold")
# The same operations as MCP tool calls (Streamable HTTP, protocol 2026-07-28: one POST each),
# on tasks-api only, against its REST operation in the same run.
MCP_SCENARIOS = {"mcp add_task": "create", "mcp list_tasks": "list"}
MCP_VERSION = "2026-07-28"
COLD_TOKENS = 30_000  # more than any server answers in one run
SERVERS = ("tasks-api", "usual", "floor")
# Where the traced servers export: replaced by the addresses of a sink and of a closed port.
COLLECTOR, DOWN = "{collector}", "{collector down}"
TRACED = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
# tasks-api as operators may run it instead (docs/operating.md), and with its rate limiter off or
# exact, to measure what the limiter costs, on list and create only.
VARIANTS = {
    "tasks-api granian": {"SERVER": "granian"},
    "tasks-api 2 workers": {"WORKERS": "2"},
    "tasks-api granian 2 workers": {"SERVER": "granian", "WORKERS": "2"},
    "tasks-api limiter off": {"RATE_LIMIT_PER_MINUTE": "0"},
    "tasks-api 2 workers limiter off": {"WORKERS": "2", "RATE_LIMIT_PER_MINUTE": "0"},
    "tasks-api exact limiter": {"RATE_LIMIT_MODE": "exact"},
    # The same as "tasks-api", served only in the head to head below, so that it and its twin
    # with the limiter off have served the same requests (a server's history moves its speed).
    "tasks-api 1 worker": {},
    # Two servers with the same settings, head to head too: how far apart two identical
    # servers measure is the resolution of the comparisons above.
    "tasks-api twin a": {"RATE_LIMIT_PER_MINUTE": "0"},
    "tasks-api twin b": {"RATE_LIMIT_PER_MINUTE": "0"},
    # Traces at a 10% sampler (issue 22), exported to a collector that takes them (a sink in
    # this process, as cheap as a collector on another host), or to one that is down; against
    # the same server untraced.
    "tasks-api untraced": {},
    "tasks-api traced 10%": {**TRACED, "OTEL_EXPORTER_OTLP_ENDPOINT": COLLECTOR},
    "tasks-api traced 10%, collector down": {**TRACED, "OTEL_EXPORTER_OTLP_ENDPOINT": DOWN},
}
HEAD_TO_HEAD_ONLY = (
    "tasks-api 1 worker", "tasks-api twin a", "tasks-api twin b",
    "tasks-api untraced", "tasks-api traced 10%", "tasks-api traced 10%, collector down",
)  # fmt: skip
VARIANT_SCENARIOS = ("list", "create")
# What the limiter costs and what a second worker costs, each pair run alternately, more
# rounds of shorter runs than the main table: differences of a few percent need them.
HEAD_TO_HEAD = (
    ("tasks-api 1 worker", "tasks-api limiter off"),
    ("tasks-api 2 workers", "tasks-api 2 workers limiter off"),
    ("tasks-api twin a", "tasks-api twin b"),
    ("tasks-api untraced", "tasks-api traced 10%"),
    ("tasks-api untraced", "tasks-api traced 10%, collector down"),
)
HEAD_TO_HEAD_ROUNDS, HEAD_TO_HEAD_SECONDS = 6, 4
# Targets (issue 20): against the usual stack, the floor, and tasks-api itself.
USUAL_TARGET, FLOOR_TARGET, P99_TARGET_MS = 3.0, 0.5, 150.0
LIMITER_TARGET, WORKERS_CPU_TARGET, RSS_TARGET_MB = 0.03, 0.10, 100.0
TRACING_TARGET = 0.05  # issue 22: tracing at a 10% sampler costs at most 5% of throughput
SCALE_ROWS, DEEP_TASKS, SMALL_TASKS, PAGE = 2_000_000, 100_000, 20, 20
MAX_CONNECTIONS = 400  # every server's pool at once, with room to spare
SCALE_CONNECTIONS = 16  # a user's list compared at a load below saturation
UVICORN = [sys.executable, "-m", "uvicorn", "--log-level", "info", "--no-access-log"]


@dataclass
class Run:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float
    errors: int


@dataclass
class Results:
    runs: dict[str, dict[str, list[Run]]] = field(default_factory=dict)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    pss_per_worker_mb: dict[str, float] = field(default_factory=dict)
    scale: dict[str, float] = field(default_factory=dict)

    def add(self, server: str, scenario: str, run: Run) -> None:
        self.runs.setdefault(server, {}).setdefault(scenario, []).append(run)

    def median(self, server: str, scenario: str, metric: str) -> float:
        return float(statistics.median(getattr(r, metric) for r in self.runs[server][scenario]))


# --- the data ---------------------------------------------------------------------------------


async def allow_connections(url: str, count: int) -> None:
    """max_connections for the next start of the server at url."""
    connection = await asyncpg.connect(**connect_arguments(url))
    try:
        await connection.execute(f"ALTER SYSTEM SET max_connections = {int(count)}")
    finally:
        await connection.close()


async def seed(url: str) -> dict[str, list[str]]:
    """USERS x TASKS_PER_USER tasks; returns one task id per user, for get/replace/complete."""
    connection = await asyncpg.connect(**connect_arguments(url))
    try:
        await connection.execute(
            "INSERT INTO tasks (user_id, title, description, priority, due_date) "
            "SELECT 'bench-' || (g % $1), 'task ' || g, 'notes for task ' || g, "
            "(ARRAY['low','medium','high'])[1 + g % 3]::task_priority, "
            "now() + g * interval '1 minute' FROM generate_series(1, $2) AS g",
            USERS,
            USERS * TASKS_PER_USER,
        )
        await connection.execute("ANALYZE tasks")
        rows = await connection.fetch(
            "SELECT DISTINCT ON (user_id) user_id, id FROM tasks ORDER BY user_id, id"
        )
        return {"ids": [f"{r['user_id']}/{r['id']}" for r in rows]}
    finally:
        await connection.close()


async def grow(url: str) -> None:
    """Add users until the table holds SCALE_ROWS, one user with DEEP_TASKS and one with
    SMALL_TASKS (their counts kept by the database's triggers, as for any write)."""
    connection = await asyncpg.connect(**connect_arguments(url), command_timeout=600)
    try:
        have = await connection.fetchval("SELECT count(*) FROM tasks")
        await connection.execute(
            "INSERT INTO tasks (user_id, title, priority) "
            "SELECT 'scale-' || (g % 9900), 'task ' || g, 'medium' FROM generate_series(1, $1) g",
            SCALE_ROWS - have - DEEP_TASKS - SMALL_TASKS,
        )
        await connection.execute(
            "INSERT INTO tasks (user_id, title, priority, created_at) "
            "SELECT 'small', 'task ' || g, 'low', now() - g * interval '1 second' "
            "FROM generate_series(1, $1) g",
            SMALL_TASKS,
        )
        await connection.execute(
            "INSERT INTO tasks (user_id, title, priority, created_at) "
            "SELECT 'deep', 'task ' || g, 'low', now() - g * interval '1 second' "
            "FROM generate_series(1, $1) g",
            DEEP_TASKS,
        )
        await connection.execute("VACUUM ANALYZE tasks")
    finally:
        await connection.close()


# --- the load ---------------------------------------------------------------------------------


def lua(
    requests: list[tuple[str, str, str, str | None]], extra: dict[str, str] | None = None
) -> str:
    """A wrk script cycling through (method, path, token, body) requests, with extra headers."""
    extra_lines = "".join(
        f"  headers[{json.dumps(k)}] = {json.dumps(v)}\n" for k, v in (extra or {}).items()
    )
    entries = ",\n".join(
        "{%s, %s, %s, %s}" % (json.dumps(m), json.dumps(p), json.dumps("Bearer " + t),  # noqa: UP031
                              json.dumps(b) if b is not None else "nil")
        for m, p, t, b in requests
    )  # fmt: skip
    return f"""
local requests = {{
{entries}
}}
local i = 0
request = function()
  i = i + 1
  local r = requests[(i % #requests) + 1]
  local headers = {{["Authorization"] = r[3], ["Content-Type"] = "application/json"}}
{extra_lines}  return wrk.format(r[1], r[2], headers, r[4])
end
"""


def fresh_token(user: str) -> str:
    """A token no server has seen: a unique `jti`, otherwise what mint_token signs."""
    now = int(time.time())
    claims = {"sub": user, "iat": now, "nbf": now, "exp": now + 7200, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def mcp_call(tool: str, arguments: dict[str, Any]) -> str:
    """A tools/call JSON-RPC request in the 2026-07-28 per-request envelope."""
    meta = {"io.modelcontextprotocol/protocolVersion": MCP_VERSION,
            "io.modelcontextprotocol/clientCapabilities": {}}  # fmt: skip
    params = {"name": tool, "arguments": arguments, "_meta": meta}
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params})


def mcp_headers(tool: str) -> dict[str, str]:
    return {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": MCP_VERSION,
            "Mcp-Method": "tools/call", "Mcp-Name": tool}  # fmt: skip


def scenario_requests(name: str, ids: list[str]) -> list[tuple[str, str, str, str | None]]:
    if name.endswith(" cold"):
        warm = scenario_requests(name.removesuffix(" cold"), ids)
        return [(method, path, fresh_token(path.split("/")[2]), body)
                for i in range(COLD_TOKENS)
                for method, path, _, body in [warm[i % len(warm)]]]  # fmt: skip
    token = {f"bench-{i}": mint_token(SECRET, f"bench-{i}", ttl_seconds=7200) for i in range(USERS)}
    if name == "mcp list_tasks":
        return [("POST", "/mcp", t, mcp_call("list_tasks", {})) for t in token.values()]
    if name == "mcp add_task":
        body = mcp_call("add_task", {"title": "Benchmark task", "priority": "high"})
        return [("POST", "/mcp", mint_token(SECRET, f"bench-mcp-{i}", ttl_seconds=7200), body)
                for i in range(USERS)]  # fmt: skip
    if name == "list":
        return [("GET", f"/api/{u}/tasks", t, None) for u, t in token.items()]
    if name == "create":
        makers = [f"bench-create-{i}" for i in range(USERS)]
        body = json.dumps({"title": "Benchmark task", "priority": "high"})
        return [("POST", f"/api/{u}/tasks", mint_token(SECRET, u, ttl_seconds=7200), body)
                for u in makers]  # fmt: skip
    requests: list[tuple[str, str, str, str | None]] = []
    for owned in ids:
        user, task_id = owned.split("/")
        path = f"/api/{user}/tasks/{task_id}"
        if name == "get":
            requests.append(("GET", path, token[user], None))
        elif name == "replace":
            body = json.dumps({"title": "Replaced", "priority": "low", "completed": True})
            requests.append(("PUT", path, token[user], body))
        else:
            requests.append(("PATCH", path + "/complete", token[user], None))
    return requests


def _tree(pid: int) -> list[psutil.Process]:
    """The server's process and its workers (Granian and --workers serve from children)."""
    process = psutil.Process(pid)
    return [process, *process.children(recursive=True)]


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for process in _tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def peak_rss_mb(pid: int) -> float:
    """The largest peak resident size among the server's processes (per worker)."""
    peaks = [0.0]
    for process in _tree(pid):
        with contextlib.suppress(OSError, psutil.NoSuchProcess):
            for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
    return max(peaks)


def memory_per_worker_mb(pid: int, workers: int) -> float:
    """The proportional set size (PSS: each shared page divided among the processes that map
    it) of the server's whole process tree, supervisor included, per worker: what each worker
    costs the machine, where a worker forked from a parent shares that parent's pages."""
    total = 0.0
    for process in _tree(pid):
        with contextlib.suppress(OSError, psutil.NoSuchProcess):
            for line in Path(f"/proc/{process.pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) / 1024
    return total / workers


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def drive(server: LiveServer, script: Path, seconds: int, connections: int) -> Run:
    """One wrk run against server; CPU is read from the server process around it."""
    before = cpu_seconds(server.process.pid)
    output = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
         server.url],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    ).stdout  # fmt: skip
    used = cpu_seconds(server.process.pid) - before
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+(?:us|ms|s))\s*$", output, re.MULTILINE))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return Run(
        requests_per_second=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        p50_ms=_ms(*re.match(r"([\d.]+)(us|ms|s)", latency["50"]).groups()),  # type: ignore[union-attr]
        p99_ms=_ms(*re.match(r"([\d.]+)(us|ms|s)", latency["99"]).groups()),  # type: ignore[union-attr]
        cpu_ms_per_request=used * 1000 / max(total, 1),
        errors=int(errors.group(1)) if errors else 0,
    )


# --- the servers ------------------------------------------------------------------------------


@contextmanager
def servers(url: str, data_dir: Path) -> Iterator[dict[str, LiveServer]]:
    common = {"DATABASE_URL": url, "JWT_SECRET": SECRET}
    collector = Receiver(keep=False)  # answers every export, decodes none
    where = {COLLECTOR: collector.endpoint, DOWN: f"http://127.0.0.1:{free_port()}"}
    commands = {
        "tasks-api": [str(TASKS_API), "serve"],
        "usual": [*UVICORN, "tests.performance.baselines.usual:app"],
        "floor": [*UVICORN, "tests.performance.baselines.floor:app"],
        **{name: [str(TASKS_API), "serve"] for name in VARIANTS},
    }
    with ExitStack() as stack:
        started = {}
        for name, command in commands.items():
            port = str(free_port())
            if not name.startswith("tasks-api"):
                command = [*command, "--port", port]
            env = environment(**{
                **common, "APP_ENV": "production", "PORT": port,
                # Every request counted, none refused: what limits cost, not what they refuse.
                "RATE_LIMIT_PER_MINUTE": "1000000",
                "DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO),
                **{k: where.get(v, v) for k, v in VARIANTS.get(name, {}).items()},
            })  # fmt: skip
            started[name] = LiveServer(command, env, start_timeout=60)
            stack.callback(started[name].stop)
        stack.callback(collector.stop)
        yield started


# --- the run ----------------------------------------------------------------------------------


def check_mcp(url: str) -> None:
    """The MCP requests wrk sends succeed as tool calls (a failed call is still HTTP 200)."""
    token = mint_token(SECRET, "bench-0", ttl_seconds=600)
    for tool, arguments in (("list_tasks", {}), ("add_task", {"title": "check"})):
        response = httpx.post(
            f"{url}/mcp", content=mcp_call(tool, arguments),
            headers={**mcp_headers(tool), "Authorization": f"Bearer {token}",
                     "Content-Type": "application/json"},
        )  # fmt: skip
        result = response.json().get("result", {})
        if response.status_code != 200 or result.get("isError") is not False:
            raise SystemExit(f"MCP {tool} does not succeed: {response.status_code} {response.text}")


def servers_for(scenario: str, round_: int = 1) -> tuple[str, ...]:
    """The servers a round runs scenario on, in an order that moves by one each round (what a
    run does to the database, such as the rows creates add, falls on each server alike)."""
    if scenario in VARIANT_SCENARIOS:
        names = (*SERVERS, *(v for v in VARIANTS if v not in HEAD_TO_HEAD_ONLY))
    else:
        names = SERVERS if scenario in SCENARIOS else ("tasks-api",)
    turn = (round_ - 1) % len(names)
    return names[turn:] + names[:turn]


def head_to_head(running: dict[str, LiveServer], scripts: dict[str, Path], results: Results,
                 connections: int) -> None:  # fmt: skip
    """Each pair of HEAD_TO_HEAD on list and create, alternately, under scenario "h2h <name>"."""
    for round_ in range(1, HEAD_TO_HEAD_ROUNDS + 1):
        for scenario in VARIANT_SCENARIOS:
            for pair in HEAD_TO_HEAD:
                for name in pair if round_ % 2 else pair[::-1]:
                    run = drive(running[name], scripts[scenario], HEAD_TO_HEAD_SECONDS,
                                connections)  # fmt: skip
                    results.add(name, f"h2h {scenario}", run)
                    rate = f"{run.requests_per_second:8.0f} req/s"
                    print(f"head to head {round_} {scenario:6} {name:31} {rate}", file=sys.stderr)


def benchmark(args: argparse.Namespace) -> Results:
    results = Results()
    with tempfile.TemporaryDirectory(prefix="tasks-bench-") as tmp:
        database = start(Path(tmp) / "postgres")
        try:
            # Every server's pool stays open through the run (tasks-api's variants alone hold up
            # to 90 connections): past PostgreSQL's default of 100, the usual stack's requests
            # would fail for want of one.
            asyncio.run(allow_connections(database.url(), MAX_CONNECTIONS))
            database.stop()
            database = start(Path(tmp) / "postgres")
            url = database.url()
            asyncio.run(upgrade(url))
            seeded = asyncio.run(seed(url))
            scripts = {}
            for name in (*SCENARIOS, *MCP_SCENARIOS):
                scripts[name] = Path(tmp) / f"{name.replace(' ', '-')}.lua"
                extra = mcp_headers(name.removeprefix("mcp ")) if name in MCP_SCENARIOS else None
                scripts[name].write_text(lua(scenario_requests(name, seeded["ids"]), extra))
            with servers(url, Path(tmp)) as running:
                for server in running.values():  # warm up
                    drive(server, scripts["list"], 2, args.connections)
                check_mcp(running["tasks-api"].url)
                for round_ in range(1, args.rounds + 1):
                    for scenario in (*SCENARIOS, *MCP_SCENARIOS):
                        for name in servers_for(scenario, round_):
                            if scenario.endswith(" cold"):  # tokens no server has seen yet
                                requests = scenario_requests(scenario, seeded["ids"])
                                scripts[scenario].write_text(lua(requests))
                            run = drive(running[name], scripts[scenario], args.duration,
                                        args.connections)  # fmt: skip
                            results.add(name, scenario, run)
                            rate = f"{run.requests_per_second:8.0f} req/s"
                            print(f"round {round_} {scenario:11} {name:19} {rate}", file=sys.stderr)
                head_to_head(running, scripts, results, args.connections)
                for name, server in running.items():
                    results.peak_rss_mb[name] = peak_rss_mb(server.process.pid)
                    workers = int(VARIANTS.get(name, {}).get("WORKERS", "1"))
                    pss = memory_per_worker_mb(server.process.pid, workers)
                    results.pss_per_worker_mb[name] = pss
                if args.scale:
                    measure_scale(results, running["tasks-api"], url, Path(tmp), args)
        finally:
            database.stop()
    return results


def measure_scale(
    results: Results, server: LiveServer, url: str, tmp: Path, args: argparse.Namespace
) -> None:
    script = tmp / "list.lua"
    results.scale["list_p50_ms_20k"] = statistics.median(
        drive(server, script, args.duration, args.connections).p50_ms for _ in range(3)
    )
    print("growing the table to 2,000,000 rows...", file=sys.stderr)
    asyncio.run(grow(url))
    results.scale["list_p50_ms_2m"] = statistics.median(
        drive(server, script, args.duration, args.connections).p50_ms for _ in range(3)
    )
    token = mint_token(SECRET, "deep", ttl_seconds=7200)
    headers = {"Authorization": f"Bearer {token}"}
    cursor = None
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        for _ in range(999):
            params = {"limit": PAGE, **({"cursor": cursor} if cursor else {})}
            cursor = client.get("/api/deep/tasks", params=params).json()["next_cursor"]
    small = mint_token(SECRET, "small", ttl_seconds=7200)
    # the small user's cursor page: all but its newest task, so both cursor pages decode one
    after_first = httpx.get(
        f"{server.url}/api/small/tasks", params={"limit": 1},
        headers={"Authorization": f"Bearer {small}"}, timeout=30,
    ).json()["next_cursor"]  # fmt: skip
    pages = {
        "small_page1": (f"/api/small/tasks?limit={PAGE}", small),
        "small_cursor": (f"/api/small/tasks?limit={PAGE}&cursor={after_first}", small),
        "page1": (f"/api/deep/tasks?limit={PAGE}", token),
        "page1000_cursor": (f"/api/deep/tasks?limit={PAGE}&cursor={cursor}", token),
        "page1000_offset": (f"/api/deep/tasks?limit={PAGE}&offset={999 * PAGE}", token),
    }
    rounds: dict[str, list[Run]] = {name: [] for name in pages}
    for _ in range(3):  # interleaved, so the machine's moods fall on every page alike
        for name, (path, bearer) in pages.items():
            page_script = tmp / f"{name}.lua"
            page_script.write_text(lua([("GET", path, bearer, None)]))
            rounds[name].append(drive(server, page_script, args.duration, SCALE_CONNECTIONS))
    for name, runs in rounds.items():
        results.scale[f"{name}_p50_ms"] = statistics.median(r.p50_ms for r in runs)
        results.scale[f"{name}_rps"] = statistics.median(r.requests_per_second for r in runs)


# --- the report -------------------------------------------------------------------------------


def report(results: Results) -> tuple[str, dict[str, Any]]:
    lines = [
        "| scenario | server | req/s | p50 ms | p99 ms | CPU ms/req | errors |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    summary: dict[str, Any] = {"scenarios": {}, "peak_rss_mb": results.peak_rss_mb,
                               "pss_per_worker_mb": results.pss_per_worker_mb,
                               "scale": results.scale}  # fmt: skip
    for scenario in SCENARIOS:
        entry: dict[str, Any] = {}
        for name in SERVERS:
            m = {k: results.median(name, scenario, k) for k in
                 ("requests_per_second", "p50_ms", "p99_ms", "cpu_ms_per_request")}  # fmt: skip
            errors = sum(r.errors for r in results.runs[name][scenario])
            entry[name] = {**m, "errors": errors}
            lines.append(
                f"| {scenario} | {name} | {m['requests_per_second']:.0f} | {m['p50_ms']:.1f} | "
                f"{m['p99_ms']:.1f} | {m['cpu_ms_per_request']:.2f} | {errors} |"
            )
        ours = entry["tasks-api"]["requests_per_second"]
        entry["ratio_to_usual"] = ours / entry["usual"]["requests_per_second"]
        entry["ratio_to_floor"] = ours / entry["floor"]["requests_per_second"]
        summary["scenarios"][scenario] = entry
    lines.append("")
    lines.append("| scenario | tasks-api / usual | tasks-api / floor |")
    lines.append("|---|---:|---:|")
    for scenario, entry in summary["scenarios"].items():
        if "ratio_to_usual" not in entry:
            continue
        lines.append(
            f"| {scenario} | {entry['ratio_to_usual']:.2f}x | {entry['ratio_to_floor']:.2f}x |"
        )
    lines += [
        "",
        "| MCP tool | calls/s | p50 ms | p99 ms | CPU ms/call | REST req/s | MCP / REST |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario, operation in MCP_SCENARIOS.items():
        m = {k: results.median("tasks-api", scenario, k) for k in
             ("requests_per_second", "p50_ms", "p99_ms", "cpu_ms_per_request")}  # fmt: skip
        rest = summary["scenarios"][operation]["tasks-api"]["requests_per_second"]
        ratio = m["requests_per_second"] / rest
        summary["scenarios"][scenario] = {"tasks-api": m, "ratio_to_rest": ratio}
        lines.append(
            f"| {scenario.removeprefix('mcp ')} | {m['requests_per_second']:.0f} | "
            f"{m['p50_ms']:.1f} | {m['p99_ms']:.1f} | {m['cpu_ms_per_request']:.2f} | "
            f"{rest:.0f} | {ratio:.2f}x |"
        )
    lines += [
        "",
        "| tasks-api served by | list req/s | p50 ms | p99 ms | CPU ms/req | create req/s "
        "| p50 ms | p99 ms | CPU ms/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    labels = {"tasks-api": "uvicorn, 1 worker", "tasks-api granian": "Granian, 1 worker",
              "tasks-api 2 workers": "uvicorn, 2 workers",
              "tasks-api granian 2 workers": "Granian, 2 workers",
              "tasks-api limiter off": "uvicorn, 1 worker, limiter off",
              "tasks-api 2 workers limiter off": "uvicorn, 2 workers, limiter off",
              "tasks-api exact limiter": "uvicorn, 1 worker, exact limiter"}  # fmt: skip
    summary["servers"] = {}
    for name, label in labels.items():
        cells = []
        for scenario in VARIANT_SCENARIOS:
            m = {k: results.median(name, scenario, k) for k in
                 ("requests_per_second", "p50_ms", "p99_ms", "cpu_ms_per_request")}  # fmt: skip
            summary["servers"].setdefault(label, {})[scenario] = m
            cells.append(f"{m['requests_per_second']:.0f} | {m['p50_ms']:.1f} | "
                         f"{m['p99_ms']:.1f} | {m['cpu_ms_per_request']:.2f}")  # fmt: skip
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    measured = summary["servers"]
    lines += [
        "",
        f"Head to head ({HEAD_TO_HEAD_ROUNDS} alternating rounds of {HEAD_TO_HEAD_SECONDS} s):",
        "",
        "| pair | scenario | req/s | CPU ms/req | req/s | CPU ms/req |",
        "|---|---|---:|---:|---:|---:|",
    ]
    rate: dict[tuple[str, str], float] = {}
    cpu: dict[tuple[str, str], float] = {}
    for scenario in VARIANT_SCENARIOS:
        for pair in HEAD_TO_HEAD:
            for name in pair:
                rate[name, scenario] = results.median(
                    name, f"h2h {scenario}", "requests_per_second"
                )
                cpu[name, scenario] = results.median(name, f"h2h {scenario}", "cpu_ms_per_request")
            first, second = pair
            lines.append(
                f"| {first} / {second} | {scenario} | {rate[first, scenario]:.0f} | "
                f"{cpu[first, scenario]:.2f} | {rate[second, scenario]:.0f} | "
                f"{cpu[second, scenario]:.2f} |"
            )
    lines += ["", "| what | list | create |", "|---|---:|---:|"]
    derived: dict[str, dict[str, float]] = {}
    for scenario in VARIANT_SCENARIOS:
        main = {label: measured[label][scenario]["requests_per_second"] for label in measured}
        derived[scenario] = {
            "limiter cost, 1 worker": 1 - rate["tasks-api 1 worker", scenario]
            / rate["tasks-api limiter off", scenario],
            "limiter cost, 2 workers": 1 - rate["tasks-api 2 workers", scenario]
            / rate["tasks-api 2 workers limiter off", scenario],
            "exact limiter cost, 1 worker (main rounds)": 1
            - main["uvicorn, 1 worker, exact limiter"] / main["uvicorn, 1 worker, limiter off"],
            "CPU per request, 2 workers against 1": cpu["tasks-api 2 workers", scenario]
            / cpu["tasks-api 1 worker", scenario] - 1,
            "twins with the same settings (the resolution of this table)": 1
            - rate["tasks-api twin a", scenario] / rate["tasks-api twin b", scenario],
            "tracing cost at a 10% sampler": 1 - rate["tasks-api traced 10%", scenario]
            / rate["tasks-api untraced", scenario],
            "tracing cost at a 10% sampler, collector down": 1
            - rate["tasks-api traced 10%, collector down", scenario]
            / rate["tasks-api untraced", scenario],
        }  # fmt: skip
    summary["derived"] = derived
    for row in derived["list"]:
        shown = " | ".join(f"{100 * derived[sc][row]:+.1f}%" for sc in VARIANT_SCENARIOS)
        lines.append(f"| {row} | {shown} |")
    lines.append("")
    lines.append(
        "Peak RSS per process (MB): "
        + ", ".join(f"{k} {v:.0f}" for k, v in results.peak_rss_mb.items())
    )
    lines.append(
        "Memory per worker, PSS of the process tree / workers (MB): "
        + ", ".join(f"{k} {v:.0f}" for k, v in results.pss_per_worker_mb.items())
    )
    if results.scale:
        lines.append("Scale: " + ", ".join(f"{k} {v:.1f}" for k, v in results.scale.items()))
    summary["targets"] = targets(summary)
    lines.append("")
    lines += [
        f"{'met    ' if ok else 'NOT MET'}  {name}" for name, ok in summary["targets"].items()
    ]
    return "\n".join(lines), summary


def targets(summary: dict[str, Any]) -> dict[str, bool]:
    s = summary["scenarios"]
    found = {}
    for scenario in ("list", "create", "get", "replace", "complete"):
        ratio = s[scenario]["ratio_to_usual"]
        found[f"{scenario} >= {USUAL_TARGET:g}x the usual stack ({ratio:.2f}x)"] = (
            ratio >= USUAL_TARGET
        )
    for scenario in ("list", "create"):
        ratio, p99 = s[scenario]["ratio_to_floor"], s[scenario]["tasks-api"]["p99_ms"]
        found[f"{scenario} >= {FLOOR_TARGET:g}x the floor ({ratio:.2f}x)"] = ratio >= FLOOR_TARGET
        found[f"{scenario} p99 <= {P99_TARGET_MS:g} ms ({p99:.0f} ms)"] = p99 <= P99_TARGET_MS
    for scenario, derived in summary["derived"].items():
        for workers in ("1 worker", "2 workers"):
            cost = derived[f"limiter cost, {workers}"]
            found[f"{scenario}: the limiter costs <= 3% at {workers} ({100 * cost:+.1f}%)"] = (
                cost <= LIMITER_TARGET
            )
        for row in ("tracing cost at a 10% sampler",
                    "tracing cost at a 10% sampler, collector down"):  # fmt: skip
            cost = derived[row]
            found[f"{scenario}: {row} <= 5% ({100 * cost:+.1f}%)"] = cost <= TRACING_TARGET
        growth = derived["CPU per request, 2 workers against 1"]
        name = f"{scenario}: CPU per request at 2 workers within 10% of 1 ({100 * growth:+.1f}%)"
        found[name] = growth <= WORKERS_CPU_TARGET
    for scenario, operation in MCP_SCENARIOS.items():
        ratio = s[scenario]["ratio_to_rest"]
        found[f"{scenario} >= 0.5x REST {operation} ({ratio:.2f}x)"] = ratio >= 0.5
    rss = {k: v for k, v in summary["peak_rss_mb"].items() if k.startswith("tasks-api")}
    worst = max(rss.values())
    found[f"peak RSS per worker <= {RSS_TARGET_MB:g} MB, every feature on ({worst:.0f} MB)"] = (
        worst <= RSS_TARGET_MB
    )
    pss = summary["pss_per_worker_mb"]
    for name in ("tasks-api 2 workers", "tasks-api granian 2 workers"):
        if name in pss:
            label = f"memory per worker (PSS) <= {RSS_TARGET_MB:g} MB, {name} ({pss[name]:.0f} MB)"
            found[label] = pss[name] <= RSS_TARGET_MB
    scale = summary["scale"]
    if scale:
        found["list p50 at 2M rows within 20% of 20k"] = (
            scale["list_p50_ms_2m"] <= 1.2 * scale["list_p50_ms_20k"]
        )
        small = scale["small_page1_p50_ms"]
        found["page 1 of 100,000 tasks within 20% of a 20-task user's"] = (
            scale["page1_p50_ms"] <= 1.2 * small
        )
        found["page 1,000 by cursor of 100,000 tasks within 20% of a 20-task user's"] = (
            scale["page1000_cursor_p50_ms"] <= 1.2 * scale["small_cursor_p50_ms"]
        )
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--scale", action="store_true", help="also measure at 2M rows")
    parser.add_argument("--json", type=Path, default=REPO / "build" / "bench" / "results.json")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("make bench needs wrk: install it with `apt-get install wrk` (Debian/Ubuntu) "
              "or `brew install wrk` (macOS).", file=sys.stderr)  # fmt: skip
        return 2
    table, summary = report(benchmark(args))
    print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2))
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
