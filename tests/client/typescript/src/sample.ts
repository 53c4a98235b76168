// What a Next.js frontend writes against tasks-api: openapi-fetch on the types openapi-typescript
// generates from contracts/openapi.yaml. Compiled with tsc --strict, then run with Node against a
// live server by tests/client/test_typescript_client.py (TASKS_API_URL, TASKS_API_TOKEN and
// TASKS_API_USER in the environment). Exits non-zero on the first surprise.
import createClient from "openapi-fetch";

import type { components, paths } from "../build/schema.js";

import { check, setting } from "./env.js";

type Task = components["schemas"]["Task"];
type Problem = components["schemas"]["Problem"];

const user = setting("TASKS_API_USER");
const client = createClient<paths>({
  baseUrl: setting("TASKS_API_URL"),
  headers: { Authorization: `Bearer ${setting("TASKS_API_TOKEN")}` },
});
const owner = { user_id: user };

// Create with the title alone: the other fields are optional, as their defaults say.
const created = await client.POST("/api/{user_id}/tasks", {
  params: { path: owner, header: { "Idempotency-Key": crypto.randomUUID() } },
  body: { title: "Buy milk" },
});
check(created.response.status === 201 && created.data !== undefined, "create is 201");
const task: Task = created.data;
check(task.priority === "medium" && task.completed === false, "defaults are filled in");
const etag = created.response.headers.get("ETag");
check(etag !== null, "an ETag comes with the task");

const page = await client.GET("/api/{user_id}/tasks", {
  params: { path: owner, query: { limit: 10, sort: "-created_at", completed: false } },
});
check(page.data !== undefined && page.data.items.some((t) => t.id === task.id), "list has it");

const read = await client.GET("/api/{user_id}/tasks/{task_id}", {
  params: { path: { ...owner, task_id: task.id } },
});
check(read.data?.title === "Buy milk", "get returns it");

const replaced = await client.PUT("/api/{user_id}/tasks/{task_id}", {
  params: { path: { ...owner, task_id: task.id }, header: { "If-Match": etag } },
  body: { title: "Buy oat milk", priority: "high", due_date: "2026-12-01T09:00:00Z" },
});
check(replaced.data?.title === "Buy oat milk", "replace with If-Match");

const stale = await client.PUT("/api/{user_id}/tasks/{task_id}", {
  params: { path: { ...owner, task_id: task.id }, header: { "If-Match": etag } },
  body: { title: "lost update" },
});
const conflict: Problem | undefined = stale.error;
check(stale.response.status === 412 && conflict?.status === 412, "a stale ETag is a 412 problem");

const completed = await client.PATCH("/api/{user_id}/tasks/{task_id}/complete", {
  params: { path: { ...owner, task_id: task.id } },
  body: { completed: true },
});
check(completed.data?.completed === true, "complete");

const updated = await client.PATCH("/api/{user_id}/tasks/{task_id}", {
  params: { path: { ...owner, task_id: task.id } },
  headers: { "Content-Type": "application/merge-patch+json" },
  body: { description: "2 litres", due_date: null },
});
check(
  updated.data?.description === "2 litres" && updated.data.title === "Buy oat milk",
  "a merge patch changes only what it names",
);

const invalid = await client.POST("/api/{user_id}/tasks", {
  params: { path: owner },
  body: { title: "" },
});
check(invalid.error?.errors?.[0]?.pointer === "/title", "a 400 problem names the field");

const removed = await client.DELETE("/api/{user_id}/tasks/{task_id}", {
  params: { path: { ...owner, task_id: task.id } },
});
check(removed.response.status === 204, "delete is 204");

const gone = await client.GET("/api/{user_id}/tasks/{task_id}", {
  params: { path: { ...owner, task_id: task.id } },
});
check(gone.error?.status === 404, "a deleted task is a 404 problem");

console.log(JSON.stringify({ ok: true, task: task.id }));
