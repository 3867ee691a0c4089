import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { Agent, fetch } from "undici";
import { startEdgeHost } from "../src/devcluster/edge-host.js";
import { DEFAULT_TRACKER_SHARDS } from "../src/worker/env.js";
import { shardOf } from "../src/worker/tracker/shard-router.js";

/**
 * `npx tsx bench/tracker-edge.ts [--peers 1000,5000,20000] [--concurrency 32] [--seconds 5]
 * [--shards 64]`: the tracker through the devcluster's edge (miniflare, the real Worker and Durable
 * Objects): one swarm filled with N peers, then re-announced round robin by `concurrency`
 * announcers for a few seconds. Prints announces/s, the median latency, and the busiest object's
 * share (the swarm is spread over `--shards` objects by peer id; all of them run in this one
 * process, so the total is this machine's, and an object takes its share of it). Issue 19
 * measured the previous tracker so: 691/s at 1,000 peers, 370/s at 5,000, 291/s at 20,000.
 */
const { values } = parseArgs({
  options: {
    peers: { type: "string", default: "1000,5000,20000" },
    concurrency: { type: "string", default: "32" },
    seconds: { type: "string", default: "5" },
    shards: { type: "string", default: String(DEFAULT_TRACKER_SHARDS) },
  },
});
const concurrency = Number(values.concurrency);
const TOKEN = "bench:bench-token-0123456789";

const body = (digest: string, n: number) =>
  JSON.stringify({
    digest,
    peerId: peerId(n),
    ip: `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`,
    port: 16001,
    zone: `z${n % 4}`,
    cluster: `c${n % 2}`,
    complete: n % 10 === 0,
    have: n % 10 === 0 ? 64 : 0,
    pieceCount: 64,
  });

const dir = await mkdtemp(path.join(os.tmpdir(), "shoal-tracker-bench-"));
// An account's announces (a fleet shares one token): held to the object's cap, not an address's.
const shards = Number(values.shards);
const edge = await startEdgeHost({ stateDir: dir, port: 0, vars: { SHOAL_PUSH_TOKENS: TOKEN, SHOAL_TRACKER_SHARDS: String(shards) } });
const peerId = (n: number) => n.toString(16).padStart(40, "0");
const dispatcher = new Agent({ connections: concurrency * 2 });
const headers = { "Content-Type": "application/json", Authorization: `Basic ${Buffer.from(TOKEN).toString("base64")}` };
const announce = async (digest: string, n: number): Promise<{ status: number; ms: number }> => {
  const started = performance.now();
  const res = await fetch(`${edge.url}/shoal/v1/announce`, { method: "POST", body: body(digest, n), headers, dispatcher });
  await res.arrayBuffer();
  return { status: res.status, ms: performance.now() - started };
};

try {
  for (const [round, peers] of values.peers!.split(",").map(Number).entries()) {
    const digest = "sha256:" + round.toString(16).padStart(64, "0");
    let next = 0;
    const fill = async () => {
      while (next < peers) await announce(digest, next++);
    };
    await Promise.all(Array.from({ length: concurrency }, fill));
    const latencies: number[] = [];
    const perObject = new Map<number, number>();
    const statuses = new Map<number, number>();
    const deadline = performance.now() + Number(values.seconds) * 1000;
    let k = 0;
    const started = performance.now();
    const load = async () => {
      while (performance.now() < deadline) {
        const n = k++ % peers;
        const { status, ms } = await announce(digest, n);
        const object = shardOf(peerId(n), "account:bench", shards);
        perObject.set(object, (perObject.get(object) ?? 0) + 1);
        latencies.push(ms);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, load));
    const elapsed = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    const p50 = latencies[Math.floor(latencies.length / 2)] ?? 0;
    const busiest = Math.max(...perObject.values()) / elapsed;
    console.log(
      `${String(peers).padStart(6)} peers: ${Math.round(latencies.length / elapsed)} announces/s, p50 ${p50.toFixed(0)} ms, statuses ${JSON.stringify(Object.fromEntries(statuses))}, ${shards} objects, busiest ${Math.round(busiest)}/s`,
    );
  }
} finally {
  await edge.close();
  await dispatcher.close();
  await rm(dir, { recursive: true, force: true });
}
