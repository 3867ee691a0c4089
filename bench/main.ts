import { spawnSync } from "node:child_process";
import { parseArgs } from "node:util";
import { benchServe, parseServeArgs } from "./serve.js";
import { benchP2p, parseP2pArgs } from "./p2p.js";
import { benchAgent, parseAgentArgs } from "./agent.js";
import { benchEdge, parseEdgeArgs } from "./edge.js";
import { benchSim, parseSimArgs } from "./sim/cli.js";
import { benchLazy, parseLazyArgs } from "./lazy.js";

/**
 * `npm run bench -- <name> [options]`. Benchmarks print their figures side by side with a
 * baseline measured in the same run, and write them as JSON under --out (default ./bench-out).
 */
const USAGE = `usage: npm run bench -- serve [--size 1GiB] [--readers 8] [--rounds 3] [--out bench-out]
       npm run bench -- p2p [--agents 16] [--size 64MiB] [--agent-bandwidth 6.25MiB/s]
                            [--wan-bandwidth 12.5MiB/s] [--out bench-out] [--sweep]
                            [--modes p2p,direct,registry] [--warmup 1MiB]
       npm run bench -- agent [--size 1GiB] [--seeders 3] [--rounds 3] [--shoal-only] [--out bench-out]
       npm run bench -- edge [--size 64MiB] [--rounds 5] [--requests 200] [--serverless-registry DIR] [--out bench-out]
       npm run bench -- lazy [--size 1GiB] [--reads 32] [--read-size 64KiB] [--tail-samples 5] [--seed 1] [--out bench-out]
       npm run bench -- sim [--hosts 16] [--size 64MiB] [--agent-bandwidth 6.25MiB/s] [--wan-bandwidth 12.5MiB/s]
                            [--edge-bandwidth B] [--clusters 1] [--zones 1] [--churn 0] [--stagger 0] [--slow 0]
                            [--seed 1] [--tuning JSON] [--shards 64] [--web-seed-readers 16] [--web-seed-concurrency 1] [--one-address] [--link-burst 0]
                            [--out bench-out] [--sweep [--hosts 16,64,…]]

  serve   a blob served from a warm agent store to concurrent readers, against
          Debian's docker-registry (distribution 2.8) serving the same blob
  p2p     N agents pull one image at once behind a shared uplink: P2P against
          direct pulls from the edge and skopeo pulls from distribution, with the
          physical bound; --sweep runs N = 4, 8, 16, 32 at a smaller size
  agent   one agent pulls a blob from K seeder agents with no bandwidth limit, against
          aria2 pulling the same bytes from K aria2 seeders (BitTorrent, opentracker):
          MB/s, CPU per GiB received and served, peak RSS
  edge    the edge's data path (GET, Range GET, monolithic and chunked push,
          HEAD blob and GET manifest latency) against distribution, and reads
          against the edge's runtime port directly (what the Node front costs);
          --serverless-registry DIR adds a checkout of cloudflare/serverless-registry
          (dependencies installed) on the same miniflare
  lazy    random Range reads over a layer (lazy pulls): time to first byte and bytes
          fetched, the edge directly vs a cold agent vs an agent whose peer holds the
          pieces; and a 1 MiB read at the end through a cold agent vs one edge piece
  sim     a simulated fleet (the real scheduler and tracker logic, a modelled network):
          completion times against the bound, WAN bytes, tracker load; --sweep over N`;


const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    size: { type: "string" },
    readers: { type: "string" },
    reads: { type: "string" },
    "read-size": { type: "string" },
    "tail-samples": { type: "string" },
    rounds: { type: "string" },
    agents: { type: "string" },
    "agent-bandwidth": { type: "string" },
    warmup: { type: "string" },
    "wan-bandwidth": { type: "string" },
    sweep: { type: "boolean" },
    modes: { type: "string" },
    seeders: { type: "string" },
    "shoal-only": { type: "boolean" },
    requests: { type: "string" },
    "serverless-registry": { type: "string" },
    out: { type: "string" },
    hosts: { type: "string" },
    "edge-bandwidth": { type: "string" },
    clusters: { type: "string" },
    zones: { type: "string" },
    churn: { type: "string" },
    stagger: { type: "string" },
    slow: { type: "string" },
    seed: { type: "string" },
    tuning: { type: "string" },
    common: { type: "string" },
    "pieces-per-peer": { type: "string" },
    "web-seed-concurrency": { type: "string" },
    shards: { type: "string" },
    "one-address": { type: "boolean" },
    "web-seed-readers": { type: "string" },
    "link-burst": { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});

const [name] = positionals;
if (values.help || !name) {
  console.log(USAGE);
  process.exit(values.help ? 0 : 2);
}
switch (name) {
  case "serve":
    await benchServe(parseServeArgs(values));
    break;
  case "edge":
    await benchEdge(parseEdgeArgs(values));
    break;
  case "p2p":
    await benchP2p(parseP2pArgs(values));
    break;
  case "agent":
    await benchAgent(parseAgentArgs(values));
    break;
  case "lazy":
    await benchLazy(parseLazyArgs(values));
    break;
  case "sim":
    // The simulator allocates a closure per message between hosts: a larger young generation cuts
    // the scavenges' share (about 7% of a 260-host run). V8 takes the flag only at start.
    if (!process.execArgv.some((a) => a.startsWith("--max-semi-space-size"))) {
      const child = spawnSync(process.execPath, [...process.execArgv, "--max-semi-space-size=64", ...process.argv.slice(1)], { stdio: "inherit" });
      process.exit(child.status ?? 1);
    }
    await benchSim(parseSimArgs(values));
    break;
  default:
    console.error(`unknown benchmark ${JSON.stringify(name)}\n${USAGE}`);
    process.exit(2);
}
