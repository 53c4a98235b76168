// What an agent host embedding the official MCP TypeScript SDK 1.x does with tasks-api's /mcp:
// connect over Streamable HTTP with the user's bearer token (the SDK negotiates a handshake-era
// protocol revision), list the tools, call them, and read the envelope from structuredContent
// (the SDK checks it against each tool's output schema). Run with Node against a live server by
// tests/mcp/test_typescript_sdk.py (TASKS_API_URL and TASKS_API_TOKEN in the environment).
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

import { check, setting } from "./env.js";

interface Envelope {
  success: boolean;
  message: string;
  data: unknown;
  suggestion?: string;
}

const transport = new StreamableHTTPClientTransport(new URL(`${setting("TASKS_API_URL")}/mcp`), {
  requestInit: { headers: { Authorization: `Bearer ${setting("TASKS_API_TOKEN")}` } },
});
const client = new Client({ name: "tasks-api-ts-sdk-check", version: "1.0.0" });
await client.connect(transport);

const { tools } = await client.listTools();

async function call(name: string, args: Record<string, unknown>): Promise<[boolean, Envelope]> {
  const result = await client.callTool({ name, arguments: args });
  const envelope = result.structuredContent as unknown as Envelope;
  return [result.isError === true, envelope];
}

const [addFailed, added] = await call("add_task", { title: "From TypeScript", priority: "high" });
check(!addFailed && added.success, "add_task succeeds");
const task = added.data as { id: string; title: string };
const [, listed] = await call("list_tasks", { limit: 5 });
const page = listed.data as { items: { id: string }[] };
check(page.items.some((t) => t.id === task.id), "list_tasks has the new task");
const [missingFailed, missing] = await call("get_task", { task_id: crypto.randomUUID() });
check(missingFailed && !missing.success && missing.suggestion !== undefined, "a failed call");

await client.close();
console.log(JSON.stringify({
  protocol: transport.protocolVersion ?? null,
  tools: tools.map((t) => t.name).sort(),
  added: added.message,
  task: task.id,
  missing: missing.message,
}));
