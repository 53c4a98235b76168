"""What a live server must do on any database behind it, run against each kind the README
claims (a pooler in tests/e2e/test_pgbouncer.py, a Citus cluster in tests/citus): the CRUD flow,
one idempotency key raced by thirty creates, one ETag raced by twenty writers, and exact totals
after concurrent writes. Each takes the server's URL, a user no other test has used, and the
Authorization header for that user."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx


def crud_flow(server: str, user: str, auth: dict[str, str]) -> None:
    tasks = f"{server}/api/{user}/tasks"
    with httpx.Client(headers=auth, timeout=10) as http:
        created = http.post(tasks, json={"title": "flow", "priority": "high"})
        assert created.status_code == 201, created.text
        task = f"{tasks}/{created.json()['id']}"
        read = http.get(task)
        assert read.json() == created.json()
        assert http.get(task, headers={"If-None-Match": read.headers["etag"]}).status_code == 304
        patched = http.patch(task, json={"title": "changed"},
                             headers={"If-Match": read.headers["etag"],
                                      "Content-Type": "application/merge-patch+json"})  # fmt: skip
        assert patched.status_code == 200, patched.text
        assert patched.json()["title"] == "changed"
        assert http.patch(f"{task}/complete").json()["completed"] is True
        listed = http.get(tasks, params={"completed": "true"}).json()
        assert (listed["total"], [t["id"] for t in listed["items"]]) == (1, [read.json()["id"]])
        assert http.delete(task).status_code == 204
        assert http.get(task).status_code == 404
        assert http.get(tasks).json()["total"] == 0


def one_key_raced(server: str, user: str, auth: dict[str, str]) -> None:
    """Thirty concurrent creates with one Idempotency-Key make one task."""
    tasks = f"{server}/api/{user}/tasks"
    headers = {**auth, "Idempotency-Key": "raced-key"}

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=10) as http:
            return await asyncio.gather(*(
                http.post(tasks, json={"title": "once"}, headers=headers) for _ in range(30)
            ))  # fmt: skip

    answers = asyncio.run(race())
    assert {a.status_code for a in answers} <= {201, 409}, [a.text for a in answers]
    created = [a for a in answers if a.status_code == 201]
    assert len({a.json()["id"] for a in created}) == 1
    assert sum(a.headers.get("idempotent-replayed") != "true" for a in created) == 1
    listed = httpx.get(tasks, headers=auth, timeout=10).json()
    assert listed["total"] == len(listed["items"]) == 1


def one_etag_raced(server: str, user: str, auth: dict[str, str]) -> None:
    """Twenty concurrent writers with one If-Match change the task once."""
    tasks = f"{server}/api/{user}/tasks"
    made = httpx.post(tasks, json={"title": "contested"}, headers=auth, timeout=10)
    task = f"{tasks}/{made.json()['id']}"
    headers = {**auth, "If-Match": made.headers["etag"],
               "Content-Type": "application/merge-patch+json"}  # fmt: skip

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=10) as http:
            return await asyncio.gather(*(
                http.patch(task, content=json.dumps({"title": f"writer {n}"}), headers=headers)
                for n in range(20)
            ))  # fmt: skip

    answers = asyncio.run(race())
    assert sorted(a.status_code for a in answers) == [200] + [412] * 19
    winner = next(a for a in answers if a.status_code == 200)
    now = httpx.get(task, headers=auth, timeout=10)
    assert now.json()["title"] == winner.json()["title"]
    assert now.headers["etag"] == winner.headers["etag"] == '"2"'


def totals_after_concurrent_writes(server: str, user: str, auth: dict[str, str]) -> None:
    """Thirty concurrent creates, then twelve completions and ten deletes at once: every
    total is exact."""
    tasks = f"{server}/api/{user}/tasks"

    async def writes() -> None:
        async with httpx.AsyncClient(headers=auth, timeout=10) as http:
            made = await asyncio.gather(*(
                http.post(tasks, json={"title": f"t{n}", "priority": ("low", "high")[n % 2]})
                for n in range(30)
            ))  # fmt: skip
            ids = [m.json()["id"] for m in made]
            await asyncio.gather(
                *(http.patch(f"{tasks}/{i}/complete") for i in ids[:12]),
                *(http.delete(f"{tasks}/{i}") for i in ids[20:]),
            )

    asyncio.run(writes())
    with httpx.Client(headers=auth, timeout=10) as http:

        def total(**filters: str) -> int:
            count: int = http.get(tasks, params=filters).json()["total"]
            return count

        assert total() == 20
        assert total(completed="true") == 12
        assert total(completed="false", priority="high") == len([n for n in range(12, 20) if n % 2])


Flow = Callable[[str, str, dict[str, str]], None]
EVERY: tuple[Flow, ...] = (crud_flow, one_key_raced, one_etag_raced, totals_after_concurrent_writes)
