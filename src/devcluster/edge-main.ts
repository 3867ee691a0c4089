import path from "node:path";
import { startEdgeHost } from "./edge-host.js";
import { edgeSettings, type Env } from "../worker/env.js";

/** One devcluster process: the edge (Worker under miniflare) on 127.0.0.1:15000 by default. */
const home = path.resolve(process.env.SHOAL_HOME ?? ".shoal");
const port = Number(process.env.SHOAL_EDGE_PORT ?? 15000);
const vars: Record<string, string> = {};
// The devcluster's agents announce 127.0.0.1: its tracker accepts loopback peers unless told not to.
vars.SHOAL_TRACKER_ALLOW_LOOPBACK = "true";
for (const name of ["SHOAL_CHUNK_MAX_BYTES", "SHOAL_PUSH_TOKENS", "SHOAL_PULL_AUTH", "SHOAL_AUTH", "SHOAL_TOKEN_KEYS", "SHOAL_AUTH_SERVICE", "SHOAL_TOKEN_TTL_SECONDS", "SHOAL_UPSTREAMS", "SHOAL_REPLICATION", "SHOAL_TRACKER_ALLOW_LOOPBACK", "SHOAL_TRACKER_PEERS_PER_ADDRESS", "SHOAL_GC_GRACE_SECONDS", "SHOAL_GC_RETENTION"]) {
  const value = process.env[name];
  if (value !== undefined) vars[name] = value;
}
// Fail closed before listening: settings the Worker would refuse on every request stop the start, in one line.
try {
  edgeSettings(vars as unknown as Env);
} catch (error) {
  process.stderr.write(`edge: refusing to start: ${(error as Error).message}\n`);
  process.exit(1);
}
const log = (record: Record<string, unknown>) =>
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), component: "edge", ...record })}\n`);

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
