import path from "node:path";
import { startEdgeHost } from "./edge-host.js";
import { createLogger } from "../agent-node/cli/logger.js";
import { WATCHDOG_REQUEST_ID_PREFIX } from "./watchdog.js";
import { edgeSettings, type Env } from "../worker/env.js";

/** One devcluster process: the edge (Worker under miniflare) on 127.0.0.1:15000 by default. */
const home = path.resolve(process.env.SHOAL_HOME ?? ".shoal");
const port = Number(process.env.SHOAL_EDGE_PORT ?? 15000);
const vars: Record<string, string> = {};
// The devcluster's agents announce 127.0.0.1: its tracker accepts loopback peers unless told not to.
vars.SHOAL_TRACKER_ALLOW_LOOPBACK = "true";
for (const name of ["SHOAL_CHUNK_MAX_BYTES", "SHOAL_PUSH_TOKENS", "SHOAL_PULL_AUTH", "SHOAL_AUTH", "SHOAL_TOKEN_KEYS", "SHOAL_AUTH_SERVICE", "SHOAL_TOKEN_TTL_SECONDS", "SHOAL_UPSTREAMS", "SHOAL_REPLICATION", "SHOAL_UPSTREAM_ANONYMOUS_BYTES_PER_DAY", "SHOAL_TRACKER_ALLOW_LOOPBACK", "SHOAL_TRACKER_PEERS_PER_ADDRESS", "SHOAL_TRACKER_SHARDS", "SHOAL_GC_GRACE_SECONDS", "SHOAL_GC_RETENTION"]) {
  const value = process.env[name];
  if (value !== undefined) vars[name] = value;
}
// Fail closed before listening: settings the Worker would refuse on every request stop the start, in one line.
try {
  edgeSettings(vars as unknown as Env);
} catch (error) {
  process.stderr.write(`edge: refusing to start: ${(error as Error).message}\n`);
  process.exit(2);
}
const logger = createLogger({ component: "edge", instance: "edge" });
type Level = "trace" | "debug" | "info" | "warn" | "error" | "fatal";
const LEVELS = new Set<string>(["trace", "debug", "info", "warn", "error", "fatal"]);
/** The front's records and the Worker's own JSON lines, in the agents' format (their time and level become pino's). */
const log = (record: Record<string, unknown>) => {
  const { level, time: _time, msg, ...rest } = record;
  let method: Level = typeof level === "string" && LEVELS.has(level) ? (level as Level) : "info";
  // The devcluster's watchdog asks every few seconds whether the edge answers: not news.
  if (method === "info" && String(rest.requestId ?? "").startsWith(WATCHDOG_REQUEST_ID_PREFIX)) method = "debug";
  logger[method](rest, typeof msg === "string" ? msg : "");
};

const edge = await startEdgeHost({ stateDir: path.join(home, "edge"), port, vars, log });
log({ level: "info", msg: `edge listening on ${edge.url}`, runtime: edge.runtimeUrl, state: path.join(home, "edge") });

let stopping = false;
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  log({ level: "info", msg: `stopping on ${signal}` });
  const timer = setTimeout(() => process.exit(1), 10_000);
  timer.unref();
  await edge.close();
  process.exit(0);
};
process.on("SIGINT", () => void stop("SIGINT"));
process.on("SIGTERM", () => void stop("SIGTERM"));
