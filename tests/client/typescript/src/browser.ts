// What a Next.js page does in the browser against tasks-api on another origin: openapi-fetch on
// the types generated from contracts/openapi.yaml, every answer's headers read as a page reads
// them (only what CORS exposes is visible). Compiled with tsc --strict, loaded by a page that
// tests/e2e/test_browser.py serves and opens in headless Chromium; the page's query names the
// API, the token and the user, and what the page saw is POSTed back to its own origin.
import createClient from "openapi-fetch";

import type { paths } from "../build/schema.js";

type Seen = Record<string, unknown>;

async function drive(api: string, token: string, user: string): Promise<Seen> {
  const client = createClient<paths>({
    baseUrl: api,
    headers: { Authorization: `Bearer ${token}` },
  });
  const owner = { user_id: user };
  const key = crypto.randomUUID();
  const create = () =>
    client.POST("/api/{user_id}/tasks", {
      params: { path: owner, header: { "Idempotency-Key": key } },
      body: { title: "Written in a browser" },
    });
  const created = await create();
  const etag = created.response.headers.get("ETag");
  const id = created.data?.id ?? "";
  const task = { path: { ...owner, task_id: id } };

  const replay = await create();
  const page = await client.GET("/api/{user_id}/tasks", { params: { path: owner } });
  const replaced = await client.PUT("/api/{user_id}/tasks/{task_id}", {
    params: { ...task, header: { "If-Match": etag ?? "" } },
    body: { title: "Changed in a browser" },
  });
  const stale = await client.PUT("/api/{user_id}/tasks/{task_id}", {
    params: { ...task, header: { "If-Match": etag ?? "" } },
    body: { title: "A lost update" },
  });
  const patched = await client.PATCH("/api/{user_id}/tasks/{task_id}", {
    params: task,
    headers: { "Content-Type": "application/merge-patch+json" },
    body: { priority: "high" },
  });
  const anonymous = await createClient<paths>({ baseUrl: api }).GET("/api/{user_id}/tasks", {
    params: { path: owner },
  });
  return {
    created: created.response.status,
    etag,
    location: created.response.headers.get("Location"),
    request_id: created.response.headers.get("X-Request-ID"),
    replay: replay.response.status,
    replayed: replay.response.headers.get("Idempotent-Replayed"),
    replay_id: replay.data?.id,
    listed: page.data?.items.map((t) => t.id) ?? [],
    replaced: replaced.response.status,
    replaced_title: replaced.data?.title,
    stale: stale.response.status,
    stale_problem: stale.error,
    patched: patched.data?.priority,
    unauthorized: anonymous.response.status,
    unauthorized_problem: anonymous.error,
  };
}

const query = new URLSearchParams(location.search);
let seen: Seen;
try {
  seen = await drive(query.get("api") ?? "", query.get("token") ?? "", query.get("user") ?? "");
} catch (error) {
  seen = { failed: String(error) };
}
await fetch("/report", { method: "POST", body: JSON.stringify(seen) });
