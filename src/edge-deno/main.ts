/**
 * `npm run edge:deno -- --port 15000`: the edge's app (the same code the Worker runs) on Deno,
 * self-hosted: blobs, metainfo and upload parts in a bucket with R2's API (files, S3 or FTP: see
 * storage.ts), tag indexes, upload sessions, the catalog and the trackers as the Worker's own
 * Durable Object classes on SQLite files under $SHOAL_HOME/edge-deno.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import worker, * as classes from "../worker/index.js";
import { edgeSettings, type Env } from "../worker/env.js";
import { bucketFromEnv } from "./storage.js";
import { ObjectNamespaces } from "./durable-objects.js";
import { installWorkersGlobals } from "./platform.js";
import { cronsFromToml, startCrons } from "./cron.js";

const VARS = ["SHOAL_CHUNK_MAX_BYTES", "SHOAL_PUSH_TOKENS", "SHOAL_PULL_AUTH", "SHOAL_AUTH", "SHOAL_TOKEN_KEYS", "SHOAL_AUTH_SERVICE", "SHOAL_TOKEN_TTL_SECONDS", "SHOAL_UPSTREAMS", "SHOAL_REPLICATION", "SHOAL_UPSTREAM_ANONYMOUS_BYTES_PER_DAY", "SHOAL_TRACKER_ALLOW_LOOPBACK", "SHOAL_TRACKER_PEERS_PER_ADDRESS", "SHOAL_TRACKER_SHARDS", "SHOAL_GC_GRACE_SECONDS", "SHOAL_GC_RETENTION"];

const log = (record: Record<string, unknown>) => console.log(JSON.stringify({ time: new Date().toISOString(), component: "edge", runtime: "deno", ...record }));

function options(): { port: number; host: string; home: string } {
  const { values } = parseArgs({
    args: Deno.args,
    options: { port: { type: "string", default: Deno.env.get("SHOAL_EDGE_PORT") ?? "15000" }, host: { type: "string", default: "127.0.0.1" } },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`edge:deno: --port must be a port number, not ${JSON.stringify(values.port)}`);
    Deno.exit(2);
  }
  return { port, host: values.host!, home: path.resolve(Deno.env.get("SHOAL_HOME") ?? ".shoal") };
}

const wranglerToml = () => readFile(new URL("../../wrangler.toml", import.meta.url), "utf8");

/** Durable Object bindings as wrangler.toml declares them (binding name → class name). */
async function objectBindings(): Promise<Record<string, string>> {
  const toml = await wranglerToml();
  const bindings: Record<string, string> = {};
  for (const block of toml.split("[[durable_objects.bindings]]").slice(1)) {
    const name = /^\s*name\s*=\s*"([^"]+)"/m.exec(block)?.[1];
    const className = /^\s*class_name\s*=\s*"([^"]+)"/m.exec(block)?.[1];
    if (name && className) bindings[name] = className;
  }
  return bindings;
}

installWorkersGlobals();
const { port, host, home } = options();
const stateDir = path.join(home, "edge-deno");
let storage: Awaited<ReturnType<typeof bucketFromEnv>>;
try {
  storage = await bucketFromEnv((name) => Deno.env.get(name), stateDir);
} catch (error) {
  console.error(`edge:deno: ${(error as Error).message}`);
  Deno.exit(2);
}

// The Worker parses its settings per request; here they are checked once, so a bad one (a token under
// 16 characters) stops the start with one line instead of a server that answers 500 to everything.
try {
  edgeSettings(Deno.env.toObject() as unknown as Env);
} catch (error) {
  console.error(`edge:deno: refusing to start: ${(error as Error).message}`);
  Deno.exit(2);
}
const env: Record<string, unknown> = { BLOBS: storage.bucket };
for (const name of VARS) {
  const value = Deno.env.get(name);
  if (value !== undefined) env[name] = value;
}
const objectClasses = Object.fromEntries(Object.entries(classes).filter(([, value]) => typeof value === "function")) as unknown as ConstructorParameters<typeof ObjectNamespaces>[1];
const objects = new ObjectNamespaces(path.join(stateDir, "objects"), objectClasses, () => env);
for (const [binding, className] of Object.entries(await objectBindings())) env[binding] = objects.namespace(className);
const alarms = await objects.restoreAlarms();

const context = { waitUntil: (promise: Promise<unknown>) => void promise.catch(() => undefined), passThroughOnException: () => undefined, props: {} };
const server = Deno.serve({ port, hostname: host, onListen: (addr) => log({ level: "info", msg: `edge listening on http://${addr.hostname}:${addr.port}`, state: stateDir, storage: storage.describe, alarms }) }, (request, info) => {
  // As Cloudflare does: the client's address, whatever the client says (the tracker binds peer ids to it).
  const headers = new Headers(request.headers);
  headers.set("CF-Connecting-IP", (info.remoteAddr as Deno.NetAddr).hostname);
  const forwarded = new Request(request.url, { method: request.method, headers, body: request.body, redirect: request.redirect, duplex: "half" } as RequestInit);
  return worker.fetch(forwarded as never, env as never, context as never);
});

// The Worker's cron triggers (a daily garbage collection), run here as Cloudflare would run them.
const crons = startCrons(cronsFromToml(await wranglerToml()), (cron, at) => {
  log({ level: "info", msg: "cron trigger", cron });
  void Promise.resolve(worker.scheduled({ cron, scheduledTime: at.getTime(), noRetry: () => undefined } as never, env as never, context as never)).catch((error: Error) =>
    log({ level: "error", msg: "cron trigger failed", cron, error: error.message }),
  );
});

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => {
    log({ level: "info", msg: `stopping on ${signal}` });
    crons.stop();
    void server.shutdown().finally(() => {
      objects.close();
      Deno.exit(0);
    });
  });
}
