"""`make bench-citus`: the same tasks-api on a Citus cluster (a coordinator and two workers)
against one plain PostgreSQL of the same build and settings, on the same machine.

Both hold the same data as `make bench` (100 users x 200 tasks; on Citus distributed by
`tasks-api distribute`), each served by one uvicorn worker with every feature on, driven by wrk
(64 connections) on 127.0.0.1, interleaved over the rounds so drift hits both alike. Reports
req/s, p99 latency and the cluster's ratio to the single PostgreSQL, as a table and as JSON.
On one machine every node shares the same cores, so this measures what Citus adds to each
request (a coordinator in front of the shard), not what more machines would give.

    python -m tests.performance.citus [--rounds 3] [--duration 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from persistence.schema import upgrade
from tests.citus.cluster import Cluster
from tests.live import REPO, TASKS_API, LiveServer, environment, free_port, tasks_api
from tests.performance.bench import SECRET, Results, drive, lua, scenario_requests, seed

SCENARIOS = ("list", "get", "create")
DATABASES = ("plain", "citus")


def measure(args: argparse.Namespace) -> Results:
    results = Results()
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="tasks-bench-") as tmp:
        urls = {}
        for name in DATABASES:
            cluster = Cluster(workers=2 if name == "citus" else 0, citus=name == "citus")
            stack.callback(cluster.stop)
            cluster.start()
            urls[name] = cluster.coordinator.url()
            asyncio.run(upgrade(urls[name]))
        distributed = tasks_api("distribute", DATABASE_URL=urls["citus"])
        if distributed.returncode != 0:
            raise SystemExit(distributed.stderr)
        seeded = {name: asyncio.run(seed(url)) for name, url in urls.items()}
        running: dict[str, LiveServer] = {}
        for name, url in urls.items():
            env = environment(
                APP_ENV="production", DATABASE_URL=url, JWT_SECRET=SECRET, PORT=str(free_port()),
                RATE_LIMIT_PER_MINUTE="1000000", DATA_DIR=tmp, PYTHONPATH=str(REPO),
            )  # fmt: skip
            running[name] = LiveServer([str(TASKS_API), "serve"], env, start_timeout=60)
            stack.callback(running[name].stop)
        scripts: dict[tuple[str, str], Path] = {}
        for name in DATABASES:
            for scenario in SCENARIOS:
                script = Path(tmp) / f"{name}-{scenario}.lua"
                script.write_text(lua(scenario_requests(scenario, seeded[name]["ids"])))
                scripts[name, scenario] = script
        for name, server in running.items():  # warm up
            drive(server, scripts[name, "list"], 2, args.connections)
        for round_ in range(1, args.rounds + 1):
            for scenario in SCENARIOS:
                for name in DATABASES if round_ % 2 else DATABASES[::-1]:
                    run = drive(running[name], scripts[name, scenario], args.duration,
                                args.connections)  # fmt: skip
                    results.add(name, scenario, run)
                    rate = f"{run.requests_per_second:8.0f} req/s"
                    print(f"round {round_} {scenario:6} {name:6} {rate}", file=sys.stderr)
    return results


def report(results: Results) -> tuple[str, dict[str, dict[str, float]]]:
    lines = ["| scenario | plain req/s | Citus req/s | Citus / plain | p99 ms, plain / Citus |",
             "|---|---:|---:|---:|---:|"]  # fmt: skip
    summary = {}
    for scenario in SCENARIOS:
        rate = {name: results.median(name, scenario, "requests_per_second") for name in DATABASES}
        p99 = {name: results.median(name, scenario, "p99_ms") for name in DATABASES}
        errors = sum(r.errors for name in DATABASES for r in results.runs[name][scenario])
        ratio = rate["citus"] / rate["plain"]
        summary[scenario] = {"plain": rate["plain"], "citus": rate["citus"], "ratio": ratio,
                             "p99_plain_ms": p99["plain"], "p99_citus_ms": p99["citus"],
                             "errors": errors}  # fmt: skip
        lines.append(f"| {scenario} | {rate['plain']:.0f} | {rate['citus']:.0f} | {ratio:.2f}x "
                     f"| {p99['plain']:.0f} / {p99['citus']:.0f} |")  # fmt: skip
    return "\n".join(lines), summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--json", type=Path, default=REPO / "build" / "bench" / "citus.json")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("make bench-citus needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    table, summary = report(measure(args))
    print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2))
    print(f"\nJSON: {args.json}")
    errors = sum(entry["errors"] for entry in summary.values())
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
