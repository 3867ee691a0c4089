import { parseArgs } from "node:util";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import path from "node:path";
import { fleetLoad } from "../src/worker/tracker/load.js";
import { announceBurst } from "./tracker-burst.js";
import type { AnnounceRequest } from "../src/shared/api/announce.js";

/**
 * `npx tsx bench/tracker.ts [--peers 1000,5000,20000] [--seconds 2] [--swarm-module PATH]
 * [--fleet 20000] [--shards 1,64] [--start-window 1] [--fleet-seconds 620]`: the pure tracker
 * logic (`Swarm`) filled with N peers in 4 zones of 2 clusters, then re-announced round robin (1 in
 * 10 a seeder) for a few seconds of CPU: announces per second one core takes, and CPU per announce.
 * `--swarm-module` drives another copy of swarm.ts (e.g. main's, to compare: its constructor and
 * announce are adapted). Then a fleet of `--fleet` hosts starting within `--start-window` seconds
 * against the tracker spread over each of `--shards` objects (bench/tracker-burst.ts, virtual
 * time: a 20 s download, then seeding until `--fleet-seconds`): the peak announces per second one
 * object takes, and the Worker requests the blob's distribution costs. `--fleet 0` skips it.
 */
const { values } = parseArgs({
  options: {
    peers: { type: "string", default: "1000,5000,20000" },
    seconds: { type: "string", default: "2" },
    "swarm-module": { type: "string" },
    fleet: { type: "string", default: "20000" },
    shards: { type: "string", default: "1,64" },
    "start-window": { type: "string", default: "1" },
    "fleet-seconds": { type: "string", default: "620" },
  },
});
const modulePath = values["swarm-module"] ? pathToFileURL(path.resolve(values["swarm-module"])).href : "../src/worker/tracker/swarm.js";
const { Swarm } = (await import(modulePath)) as { Swarm: new (options: Record<string, unknown>) => Record<string, (...args: unknown[]) => unknown> };

const DIGEST = "sha256:" + "a".repeat(64);
const request = (n: number, complete: boolean): AnnounceRequest => ({
  digest: DIGEST,
  peerId: n.toString(16).padStart(40, "0"),
  ip: `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`,
  port: 16001,
  zone: `z${n % 4}`,
  cluster: `c${n % 2}`,
  complete,
  have: complete ? 256 : 0,
  pieceCount: 256,
});

function measure(peers: number, seconds: number): { perSecond: number; microseconds: number } {
  let clock = 0;
  let seed = 1;
  const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  const swarm = new Swarm({ now: () => clock, random, baseIntervalSeconds: 3, maxHandout: 30, intervalSeconds: 3, peerTtlMs: 3_600_000 });
  const legacy = typeof swarm.interval !== "function";
  const announce = (r: AnnounceRequest) => (legacy ? swarm.announce!(r) : swarm.announce!(r, "account:bench"));
  for (let i = 0; i < peers; i++) announce(request(i, i % 10 === 0));
  let done = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  while (performance.now() < deadline) {
    for (let k = 0; k < 200; k++, done++) {
      // Each peer comes round every `peers` announces: the clock moves so that is within its pace.
      clock += 60_000 / peers;
      announce(request(done % peers, done % peers % 10 === 0));
    }
  }
  const elapsed = performance.now() - started;
  return { perSecond: (done / elapsed) * 1000, microseconds: (elapsed * 1000) / done };
}

console.log(`tracker logic (${values["swarm-module"] ?? "this tree"}), one core:`);
for (const peers of values.peers!.split(",").map(Number)) {
  const { perSecond, microseconds } = measure(peers, Number(values.seconds));
  console.log(`  ${String(peers).padStart(6)} peers: ${Math.round(perSecond).toLocaleString("en").padStart(9)} announces/s, ${microseconds.toFixed(1)} µs each`);
}

console.log("\nWorker requests per distributed blob (1 GiB, 256 pieces of 4 MiB, 20 s download, 600 s seed window, 1 cluster):");
console.log("   hosts  interval  announces/host  requests/blob  announces/s per object");
for (const hosts of [16, 1_000, 2_600, 5_000, 20_000]) {
  const fixed = fleetLoad({ hosts, downloadSeconds: 20, seedSeconds: 600, pieces: 256 }, () => 3);
  const grown = fleetLoad({ hosts, downloadSeconds: 20, seedSeconds: 600, pieces: 256 });
  console.log(
    `  ${String(hosts).padStart(6)}  ${String(grown.intervalSeconds).padStart(4)} s    ${String(grown.announcesPerHost).padStart(6)}        ${grown.workerRequests.toLocaleString("en").padStart(10)}     ${Math.round(grown.announcesPerSecondPerObject)}` +
      `   (3 s fixed: ${fixed.workerRequests.toLocaleString("en")} requests, ${Math.round(fixed.announcesPerSecondPerObject)}/s)`,
  );
}

const fleet = Number(values.fleet);
if (fleet > 0) {
  const PIECES = 256;
  const window = Number(values["start-window"]);
  console.log(`\nA fleet of ${fleet.toLocaleString("en")} hosts starting within ${window} s, 1 GiB (${PIECES} pieces), 20 s download, seeding to ${values["fleet-seconds"]} s (virtual time):`);
  console.log("  objects  peak announces/s/object (second)  after the start  announces  hub trades  interval  Worker requests/blob");
  for (const shards of values.shards!.split(",").map(Number)) {
    const r = announceBurst({ hosts: fleet, shards, startWindowSeconds: window, downloadSeconds: 20, seconds: Number(values["fleet-seconds"]) });
    // A Worker request per announce, per host's metainfo read, per web-seed piece (one copy per cluster).
    const requests = r.announces + fleet + PIECES;
    console.log(
      `  ${String(shards).padStart(7)}  ${r.peakPerObject.toLocaleString("en").padStart(12)} (${r.peakAtSecond} s)${" ".repeat(15)}${r.steadyPeakPerObject.toLocaleString("en").padStart(7)}  ${r.announces.toLocaleString("en").padStart(10)}  ${r.exchanges.toLocaleString("en").padStart(10)}  ${String(Math.round(r.interval)).padStart(6)} s  ${requests.toLocaleString("en").padStart(12)} (${(requests / fleet).toFixed(1)} per host)`,
    );
  }
}
